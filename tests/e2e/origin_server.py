"""A small origin for end-to-end tests and benchmarks: serves the files of a directory with
single-range support, ETag/Last-Modified revalidation and sendfile, and counts per path the
requests, the bytes actually handed to the kernel, and the bodies sent completely, at
`GET /_stats`.

Run: python3 tests/e2e/origin_server.py --dir DIR --port PORT [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

STATS = web.AppKey("stats", dict)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024


def _range(header: str, size: int) -> tuple[int, int] | None:
    """→ (start, end inclusive), None for the whole file; ValueError → 416."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise ValueError(header)
    if not match.group(1):
        start = max(0, size - int(match.group(2)))
        return start, size - 1
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, min(end, size - 1)


def make_app(root: Path) -> web.Application:
    app = web.Application()
    app[STATS] = {
        "requests": collections.Counter(),
        "bytes": collections.Counter(),
        "complete": collections.Counter(),
    }

    async def stats(request: web.Request) -> web.Response:
        data = {k: dict(v) for k, v in request.app[STATS].items()}
        return web.Response(text=json.dumps(data), content_type="application/json")

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (root / name).resolve()
        if root not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        counters = request.app[STATS]
        counters["requests"][name] += 1
        st = path.stat()
        etag = f'"{st.st_size:x}-{int(st.st_mtime_ns):x}"'
        modified = formatdate(int(st.st_mtime), usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified, "Accept-Ranges": "bytes"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        since = request.headers.get("If-Modified-Since")
        if since and "If-None-Match" not in request.headers:
            try:
                if int(st.st_mtime) <= parsedate_to_datetime(since).timestamp():
                    return web.Response(status=304, headers=headers)
            except (TypeError, ValueError):
                pass
        try:
            span = _range(request.headers.get("Range", ""), st.st_size)
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{st.st_size}"})
        start, end = span if span else (0, st.st_size - 1)
        resp = web.StreamResponse(status=206 if span else 200, headers=headers)
        resp.content_type = "application/octet-stream"
        resp.content_length = end - start + 1
        if span:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{st.st_size}"
        await resp.prepare(request)
        if request.method == "HEAD" or end < start:
            if end < start:
                counters["complete"][name] += 1
            return resp
        loop = asyncio.get_running_loop()
        with open(path, "rb") as fobj:
            offset = start
            while offset <= end:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return resp
                sent = await loop.sendfile(transport, fobj, offset, min(_CHUNK, end + 1 - offset))
                counters["bytes"][name] += sent
                offset += sent
        if start == 0 and end == st.st_size - 1:
            counters["complete"][name] += 1
        await resp.write_eof()
        return resp

    app.router.add_get("/_stats", stats)
    app.router.add_get("/{name:.+}", serve)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    root = Path(args.dir).resolve()
    web.run_app(make_app(root), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
