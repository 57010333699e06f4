"""Test kit for the CDN: configurable local origins, a listener recorder, an independent framing."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import random
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from supernode.cdn.interface import FillOutcome, FillSpec, OriginRequest
from supernode.protocol.ids import task_id

MIB = 1024 * 1024
PS = 4 * MIB  # the smallest piece size the rule gives


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def reference_pieces(data: bytes, piece_size: int) -> list[bytes]:
    """Framing written from the reference text only: header, content, 0x7F, per piece."""
    content = piece_size - 5
    count = max(1, -(-len(data) // content))
    pieces = []
    for n in range(count):
        chunk = data[n * content : (n + 1) * content]
        pieces.append(struct.pack(">I", len(chunk) | piece_size << 4) + chunk + b"\x7f")
    return pieces


def reference_md5s(data: bytes, piece_size: int) -> list[str]:
    return [f"{hashlib.md5(p).hexdigest()}:{len(p)}" for p in reference_pieces(data, piece_size)]


@dataclass
class Resource:
    """One file of the test origin and how the origin misbehaves for it."""

    data: bytes
    ranges: bool = True
    chunked: bool = False
    etag: str = '"v1"'
    last_modified: float = 1_600_000_000.0
    drops: int = 0  # how many more responses are cut short
    drop_at: int = 0  # bytes of body sent before a cut
    status: int = 0  # forced status (404, 401, 500...)
    conditional: bool = True  # answer 304 to matching validators
    stall_at: int = 0  # with stalls > 0: send this many body bytes, then hang
    stalls: int = 0


@dataclass
class Origin:
    """An aiohttp origin on 127.0.0.1 whose files are `Resource`s; it logs what it served."""

    files: dict[str, Resource] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    body_bytes: int = 0
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        res = self.files.get(name)
        status, start, end = self._decide(request, res)
        self.requests.append((name, dict(request.headers), status))
        if res is None or status >= 300:
            return web.Response(status=status or 404)
        headers = {"ETag": res.etag, "Last-Modified": _http_date(res.last_modified)}
        body = res.data[start : end + 1]
        response = web.StreamResponse(status=status, headers=headers)
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{end}/{len(res.data)}"
        if res.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        cut = res.drops > 0
        if cut:
            res.drops -= 1
            body = body[: res.drop_at]
        stall = res.stalls > 0
        if stall:
            res.stalls -= 1
            body = body[: res.stall_at]
        for offset in range(0, len(body), 256 * 1024):
            part = body[offset : offset + 256 * 1024]
            await response.write(part)
            self.body_bytes += len(part)
        if stall:
            await asyncio.sleep(3600)  # until the client goes away or the server stops
        if cut:
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    def _decide(self, request: web.Request, res: Resource | None) -> tuple[int, int, int]:
        if res is None:
            return 404, 0, 0
        if res.status:
            return res.status, 0, 0
        size = len(res.data)
        if res.conditional:
            if request.headers.get("If-None-Match") == res.etag:
                return 304, 0, 0
            since = request.headers.get("If-Modified-Since")
            if since and email.utils.parsedate_to_datetime(since).timestamp() >= int(
                res.last_modified
            ):
                return 304, 0, 0
        header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if header and res.ranges and (if_range is None or if_range == res.etag):
            first, _, last = header.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            if start >= size:
                return 416, 0, 0
            return 206, start, end
        return 200, 0, size - 1


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


class Recorder:
    """A FillListener that remembers everything and lets a test await the end."""

    def __init__(self) -> None:
        self.pieces: dict[int, str] = {}
        self.order: list[int] = []
        self.outcome: FillOutcome | None = None
        self.file_md5 = ""  # from the outcome, or from file_md5_known after it
        self.reason: str | None = None
        self.ends = 0
        self._done = asyncio.Event()

    def piece_ready(self, task_id: str, piece_num: int, piece_md5: str) -> None:
        self.pieces[piece_num] = piece_md5
        self.order.append(piece_num)

    def fill_succeeded(self, task_id: str, outcome: FillOutcome) -> None:
        self.outcome = outcome
        self.file_md5 = outcome.real_md5
        self.ends += 1
        self._done.set()

    def file_md5_known(self, task_id: str, real_md5: str) -> None:
        assert self.outcome is not None and not self.file_md5, "file md5 reported twice"
        self.file_md5 = real_md5

    def fill_failed(self, task_id: str, reason: str) -> None:
        self.reason = reason
        self.ends += 1
        self._done.set()

    async def wait(self, timeout: float = 30.0) -> Recorder:
        await asyncio.wait_for(self._done.wait(), timeout)
        return self

    async def wait_piece(self, num: int, timeout: float = 30.0) -> None:
        async def poll() -> None:
            while num not in self.pieces:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)


async def fill(cdn: Any, spec: FillSpec) -> Recorder:
    """Start a fill and wait for its end, bookkeeping included."""
    rec = Recorder()
    cdn.start_fill(spec, rec)
    await rec.wait()
    await cdn.wait_fill(spec.task_id)
    return rec


def spec_for(
    url: str,
    length: int,
    *,
    piece_size: int = PS,
    md5: str = "",
    headers: tuple[tuple[str, str], ...] = (),
) -> FillSpec:
    return FillSpec(
        task_id=task_id(url, md5=md5),
        task_url=url,
        origin=OriginRequest(url, headers),
        http_file_length=length,
        piece_size=piece_size,
        md5=md5,
    )
