"""A real supernode process whose CDN reports every piece at once without moving bytes.

Used by the control-plane benchmark: the scheduler, registries and HTTP stack are the real
ones; only the origin and the disk are left out, so what is measured is the control plane.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from pathlib import Path

from aiohttp import web

from supernode.cdn.interface import FillListener, FillOutcome, FillSpec, OriginRequest, ProbeResult
from supernode.config import load_config
from supernode.protocol import pieces
from supernode.web.app import create_app


class SyntheticCdn:
    def __init__(self, length: int) -> None:
        self.length = length

    async def probe(self, origin: OriginRequest) -> ProbeResult:
        return ProbeResult(self.length, supports_range=True)

    def start_fill(self, spec: FillSpec, listener: FillListener) -> None:
        count = pieces.piece_count(self.length, spec.piece_size)
        md5s = tuple(
            f"{hashlib.md5(str(n).encode()).hexdigest()}:{spec.piece_size}" for n in range(count)
        )
        for n, md5 in enumerate(md5s):
            listener.piece_ready(spec.task_id, n, md5)
        listener.fill_succeeded(
            spec.task_id,
            FillOutcome(http_file_length=self.length, real_md5="0" * 32, piece_md5s=md5s),
        )

    def data_file(self, task_id: str) -> Path | None:
        return None

    async def check_piece(self, task_id: str, piece_num: int, expected_md5: str) -> bool:
        return True

    async def content_sha256(self, task_id: str) -> str:
        return ""

    def gc_sweep(self, live_task_ids: frozenset[str], now: float) -> int:
        return 0

    async def delete(self, task_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home-dir", required=True)
    parser.add_argument("--length", type=int, required=True)
    args = parser.parse_args()
    config = load_config(
        overrides={
            "home_dir": args.home_dir,
            "advertise_ip": "127.0.0.1",
            "listen_port": args.port,
        },
        env={},
    )
    app = create_app(config, cdn=SyntheticCdn(args.length))
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
