"""The download port (:8001): CDN data files at `/download/<id[:3]>/<id>`, single ranges, sendfile.

How it works: the CDN says which prefix of a data file is verified (`DiskCdn.servable`): the
whole file once finished, else the pieces that have landed. A request gets exactly those bytes
or a 4xx: a range reaching past the verified prefix of a file still filling is 416, as is a start
at or past the end. Files are pinned in the CDN while their bytes are being sent, so the disk
GC leaves them alone. Bytes go out with `loop.sendfile`; nothing is compressed.
"""

from __future__ import annotations

import asyncio
import os
import re

from aiohttp import web

from supernode.cdn.manager import DiskCdn
from supernode.protocol.ids import is_task_id

CDN_KEY = web.AppKey("download_cdn", DiskCdn)
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$", re.IGNORECASE)


class BadRange(ValueError):
    pass


def create_download_app(cdn: DiskCdn) -> web.Application:
    """The download port's app; the caller owns `cdn` (and closes it)."""
    app = web.Application()
    app[CDN_KEY] = cdn
    app.router.add_get("/download/{prefix}/{task_id}", _download)
    return app


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` → inclusive (start, end) clipped at EOF;
    BadRange when malformed, inverted, multiple, or unsatisfiable for `size`."""
    match = _RANGE_RE.match(header)
    if not match or not (match.group(1) or match.group(2)):
        raise BadRange(f"unsupported range {header!r}")
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last n bytes
        count = int(last)
        if count == 0 or size == 0:
            raise BadRange("empty suffix range")
        return max(0, size - count), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        raise BadRange(f"inverted range {header!r}")
    if start >= size:
        raise BadRange(f"range starts at {start}, file has {size} bytes")
    return start, min(end, size - 1)


def _error(status: int, text: str, size: int | None = None) -> web.Response:
    headers = {"Content-Range": f"bytes */{size}"} if status == 416 and size is not None else None
    return web.Response(status=status, text=text + "\n", headers=headers)


async def _download(request: web.Request) -> web.StreamResponse:
    prefix, task_id = request.match_info["prefix"], request.match_info["task_id"]
    if not is_task_id(task_id) or prefix != task_id[:3]:
        return _error(400, "invalid task id: want /download/<id[:3]>/<64 lowercase hex id>")
    cdn = request.app[CDN_KEY]
    servable = cdn.servable(task_id)
    if servable is None:
        return _error(404, "not found")
    with cdn.pinned(task_id):
        try:
            handle = open(servable.path, "rb")  # noqa: SIM115 - closed below, after sendfile
        except OSError:
            return _error(404, "not found")
        with handle:
            size = os.fstat(handle.fileno()).st_size
            limit = min(size, servable.limit)
            header = request.headers.get("Range")
            if header is None:
                if not servable.complete or size != servable.limit:
                    return _error(404, "not complete yet")
                start, end, status = 0, size - 1, 200
            else:
                try:
                    start, end = parse_range(header, size)
                except BadRange as exc:
                    return _error(416, str(exc), size)
                if end >= limit:  # not verified yet: never send it
                    return _error(416, "range not available yet", size)
                status = 206
            return await _send(request, handle, start, end, size, status)


async def _send(
    request: web.Request, handle: object, start: int, end: int, size: int, status: int
) -> web.StreamResponse:
    count = end - start + 1 if size else 0
    response = web.StreamResponse(status=status)
    response.content_type = "application/octet-stream"
    response.content_length = count
    response.headers["Accept-Ranges"] = "bytes"
    if status == 206:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    await response.prepare(request)
    if count and request.method != "HEAD":
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away")
        loop = asyncio.get_running_loop()
        await loop.sendfile(transport, handle, start, count)  # type: ignore[arg-type]
    await response.write_eof()
    return response
