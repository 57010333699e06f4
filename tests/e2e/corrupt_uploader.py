"""`dfget server` whose every served piece has one content byte flipped (fault injection).

Run with the same flags as `dfget server`; a dfget using the same `--home` finds it through
`host.meta` and shares it, so other dfgets download corrupted pieces from that host.
"""

from __future__ import annotations

import os
import sys
from typing import IO

from dfget_client.cli import parse_server_args, setup_server_logging
from dfget_client.http_server import Body
from dfget_client.uploader import Uploader, run_server


class CorruptingUploader(Uploader):
    async def send_content(self, body: Body, fobj: IO[bytes], offset: int, count: int) -> None:
        data = bytearray(os.pread(fobj.fileno(), count, offset))
        if data:
            data[len(data) // 2] ^= 0xFF
        await body.write(bytes(data))


def main() -> int:
    cfg = parse_server_args(sys.argv[1:])
    setup_server_logging(cfg)
    return run_server(cfg, CorruptingUploader)


if __name__ == "__main__":
    sys.exit(main())
