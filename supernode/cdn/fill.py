"""Origin bytes → framed pieces at `n*pieceSize` on disk, hashed off the loop, reported at once.

How it works: received chunks (immutable bytes, never copied) are cut at piece boundaries and
queued in segments of `SEGMENT` bytes. Each segment goes to single-thread executors ("lanes"):
`io` pwrites it while `piece` feeds the piece md5 (header, content, trailer), so writing and
hashing use both cores. Only when a `file_md5` is given does `file` also feed the md5 of the
raw bytes; otherwise the file md5 is read back from disk after the fill, off the hot path. A
lane runs its jobs in order, so a piece is final once `io` has written its last segment and
`piece` has produced its digest; `on_piece` then runs on the loop at once. At most
`MAX_INFLIGHT` bytes wait in the lanes (the loop awaits the oldest job beyond that), so
memory stays flat whatever the file size. The header of a piece is predicted when the piece
starts (exact when the length is known); an unknown-length stream that ends inside a piece
gets that header rewritten and the piece hashed again from disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from supernode.cdn.interface import OriginRequest
from supernode.cdn.source import (
    OriginClient,
    OriginDropped,
    Validators,
    format_http_date,
    task_headers,
)
from supernode.cdn.storage import READ_CHUNK, md5_of_range
from supernode.protocol.pieces import (
    PIECE_HEAD_SIZE,
    PIECE_TAIL,
    PIECE_WRAP_SIZE,
    content_length,
    frame_header,
    parse_frame_header,
    piece_count,
)

MAX_RESUMES = 3  # consecutive drops without progress before giving up
SEGMENT = 512 * 1024
MAX_INFLIGHT = 3 << 20  # counted once per lane: ~1 MiB of received bytes per lane


class FillFailed(Exception):
    """The fill cannot finish; the message is the task's failure reason."""


@dataclass(frozen=True, slots=True)
class Lanes:
    """The ordered executors (one thread each) shared by every fill; only `io` touches fds."""

    io: Executor
    piece: Executor
    file: Executor

    def all(self) -> tuple[Executor, ...]:
        return (self.io, self.piece, self.file)


def pwrite_all(fd: int, buffers: list[Any], offset: int) -> None:
    """pwritev until every byte is written (short writes happen near ENOSPC)."""
    pending = [memoryview(b) for b in buffers if len(b)]
    while pending:
        written = os.pwritev(fd, pending[:1024], offset)
        if written <= 0:
            raise OSError("pwritev wrote nothing")
        offset += written
        while pending and written >= len(pending[0]):
            written -= len(pending[0])
            pending.pop(0)
        if written:
            pending[0] = pending[0][written:]


def _both(
    loop: asyncio.AbstractEventLoop,
    written: asyncio.Future[Any],
    digest: asyncio.Future[str],
    suffix: str,
) -> asyncio.Future[str]:
    """A future for `digest + suffix` that completes once the piece is also on disk."""
    both: asyncio.Future[str] = loop.create_future()

    def settle(_: asyncio.Future[Any]) -> None:
        if both.done() or not (written.done() and digest.done()):
            return
        for part in (written, digest):
            if part.cancelled():
                both.cancel()
                return
            if part.exception() is not None:
                both.set_exception(part.exception())  # type: ignore[arg-type]
                return
        both.set_result(digest.result() + suffix)

    written.add_done_callback(settle)
    digest.add_done_callback(settle)
    return both


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _update_all(hasher: Any, buffers: list[Any]) -> None:
    for buffer in buffers:
        hasher.update(buffer)


class PieceSink:
    """Cuts a raw stream into framed pieces written at their offsets; see the module docstring."""

    def __init__(
        self,
        fd: int,
        piece_size: int,
        http_length: int,
        lanes: Lanes,
        on_piece: Callable[[int, str, float], None],
        *,
        start_piece: int = 0,
        file_md5: Any = None,
        clock: Callable[[], float],
    ) -> None:
        self._fd = fd
        self._ps = piece_size
        self._content = piece_size - PIECE_WRAP_SIZE
        self.http_length = http_length  # −1 while unknown
        self._lanes = lanes
        self._on_piece = on_piece
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self.file_md5 = file_md5  # None: the caller hashes the raw bytes from disk later
        self.piece = start_piece  # the piece being received
        # raw bytes on their way to disk; a resumed file may already hold its short last piece
        self.received = start_piece * self._content
        if http_length >= 0:
            self.received = min(self.received, http_length)
        self._in_piece = 0
        self._started = False
        self._header_len = 0
        self._piece_md5: Any = None
        self._write_at = 0
        self._pending: list[Any] = []
        self._pending_len = 0
        # (job, bytes it holds, and for a piece's last job: the piece and its last byte time)
        self._inflight: deque[tuple[asyncio.Future[Any], int, int, float]] = deque()
        self._next_report = start_piece
        self._inflight_bytes = 0
        self._error: BaseException | None = None
        self.origin_bytes = 0

    async def feed(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self.http_length >= 0 and self.received + len(chunk) > self.http_length:
            raise FillFailed(f"origin sent more than its length of {self.http_length} bytes")
        view = memoryview(chunk)
        while view:
            if not self._started:
                self._start_piece()
            part = view[: self._content - self._in_piece]
            view = view[len(part) :]
            self._pending.append(part)
            self._pending_len += len(part)
            self._in_piece += len(part)
            self.received += len(part)
            if self._in_piece == self._content:
                await self._end_piece()
            elif self._pending_len >= SEGMENT:
                await self._flush()

    async def finish(self) -> None:
        """End of stream: close the last piece (one empty piece for an empty origin)."""
        if self._error is not None:
            raise self._error
        if self._started or self.received == 0:
            if not self._started:
                self._start_piece()
            await self._end_piece()
        await self.drain()

    async def drain(self) -> None:
        while self._inflight:
            await self._wait_oldest()
        if self._error is not None:
            raise self._error

    def close_fd_after_jobs(self) -> None:
        """Close the descriptor once every queued io-lane job has run (safe on cancel)."""
        for future, *_ in self._inflight:  # abandoned jobs: their errors are already moot
            future.add_done_callback(_consume)
        self._inflight.clear()
        try:
            closing = self._loop.run_in_executor(self._lanes.io, os.close, self._fd)
        except RuntimeError:  # lanes already shut down: no job can still use the descriptor
            os.close(self._fd)
        else:
            closing.add_done_callback(_consume)

    def _start_piece(self) -> None:
        self._started = True
        self._in_piece = 0
        if self.http_length >= 0:
            predicted = content_length(self.piece, self.http_length, self._ps)
        else:
            predicted = self._content
        self._header_len = predicted
        self._piece_md5 = hashlib.md5()
        self._write_at = self.piece * self._ps
        self._pending = [frame_header(predicted, self._ps)]
        self._pending_len = 0

    async def _flush(self, *, last: bool = False) -> asyncio.Future[Any]:
        """Queue the pending bytes on the three lanes; the io lane's future comes back."""
        buffers, self._pending = self._pending, []
        size, self._pending_len = self._pending_len, 0
        at_start = self._write_at == self.piece * self._ps
        contents = buffers[1:] if at_start else list(buffers)  # the header is not file content
        if last:
            buffers.append(PIECE_TAIL)
        offset = self._write_at
        self._write_at += sum(len(b) for b in buffers)
        run = self._loop.run_in_executor
        written = run(self._lanes.io, pwrite_all, self._fd, buffers, offset)
        self._submit(written, size)
        self._submit(run(self._lanes.piece, _update_all, self._piece_md5, buffers), size)
        if contents and self.file_md5 is not None:
            self._submit(run(self._lanes.file, _update_all, self.file_md5, contents), size)
        while self._inflight_bytes > MAX_INFLIGHT:
            await self._wait_oldest()
        return written

    async def _end_piece(self) -> None:
        num, content_len, predicted = self.piece, self._in_piece, self._header_len
        hasher, fd, ps = self._piece_md5, self._fd, self._ps
        last_byte_at = self._clock()
        written = await self._flush(last=True)
        run = self._loop.run_in_executor
        if content_len == predicted:
            digest = run(self._lanes.piece, hasher.hexdigest)
            done = _both(self._loop, written, digest, f":{content_len + PIECE_WRAP_SIZE}")
        else:  # unknown length ended inside this piece: fix the header, hash it from disk

            def fix() -> str:
                os.pwrite(fd, frame_header(content_len, ps), num * ps)
                return md5_of_range(fd, num * ps, content_len + PIECE_WRAP_SIZE)

            done = run(self._lanes.io, fix)
        done.add_done_callback(lambda f: self._piece_done(num, f, last_byte_at))
        self._submit(done, 0, num, last_byte_at)
        self.piece += 1
        self._started = False
        self._in_piece = 0

    def _piece_done(self, num: int, future: asyncio.Future[str], last_byte_at: float) -> None:
        """Report a piece the moment its last job ends (from the done callback), or when
        `drain` collects it first; pieces are reported once each, in order."""
        if future.cancelled() or future.exception() is not None or num != self._next_report:
            return
        self._next_report += 1
        self._on_piece(num, future.result(), last_byte_at)

    def _submit(
        self, future: asyncio.Future[Any], size: int, num: int = -1, at: float = 0.0
    ) -> None:
        self._inflight.append((future, size, num, at))
        self._inflight_bytes += size

    async def _wait_oldest(self) -> None:
        future, size, num, at = self._inflight.popleft()
        try:
            await future
            if num >= 0:
                self._piece_done(num, future, at)
        except BaseException as exc:
            if self._error is None and not isinstance(exc, asyncio.CancelledError):
                self._error = exc
            raise
        finally:
            self._inflight_bytes -= size


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a partial data file already holds: its first complete pieces."""

    pieces: int
    piece_md5s: tuple[str, ...]
    file_md5: Any


def scan_pieces(fd: int, piece_size: int, http_length: int) -> ScanResult:
    """Count the leading pieces whose framing is complete (the original's breakNum) and
    rebuild their md5s and the running file md5. Blocking: run it in the io lane."""
    file_md5 = hashlib.md5()
    md5s: list[str] = []
    size = os.fstat(fd).st_size
    for num in range(piece_count(http_length, piece_size)):
        content_len = content_length(num, http_length, piece_size)
        offset = num * piece_size
        if offset + content_len + PIECE_WRAP_SIZE > size:
            break
        head = os.pread(fd, PIECE_HEAD_SIZE, offset)
        tail = os.pread(fd, 1, offset + PIECE_HEAD_SIZE + content_len)
        if len(head) < PIECE_HEAD_SIZE or parse_frame_header(head) != (content_len, piece_size):
            break
        if tail != PIECE_TAIL:
            break
        piece_md5, running = hashlib.md5(head), file_md5.copy()
        position, remaining = offset + PIECE_HEAD_SIZE, content_len
        while remaining:
            data = os.pread(fd, min(READ_CHUNK, remaining), position)
            if not data:
                break
            piece_md5.update(data)
            running.update(data)
            position += len(data)
            remaining -= len(data)
        if remaining:
            break
        file_md5 = running
        piece_md5.update(tail)
        md5s.append(f"{piece_md5.hexdigest()}:{content_len + PIECE_WRAP_SIZE}")
    return ScanResult(len(md5s), tuple(md5s), file_md5)


def scan_finished(
    path: str | os.PathLike[str], piece_size: int, http_length: int, real_md5: str
) -> tuple[str, ...] | None:
    """The piece md5s of a finished data file, when it really holds `real_md5` (blocking)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        scan = scan_pieces(fd, piece_size, http_length)
    finally:
        os.close(fd)
    if scan.pieces != piece_count(http_length, piece_size):
        return None
    return scan.piece_md5s if scan.file_md5.hexdigest() == real_md5 else None


async def pump(
    client: OriginClient,
    origin: OriginRequest,
    sink: PieceSink,
    *,
    on_open: Callable[[Validators], Awaitable[None]],
    if_range: str = "",
) -> None:
    """Stream the origin into `sink` from `sink.received`, resuming with Range after a drop
    when the origin allows it; FillFailed (or OriginError) when the fill cannot complete."""
    user_range = "Range" in task_headers(origin.headers)
    failures = 0
    opened = False
    while True:
        start = sink.received
        if start > 0 and user_range:
            raise FillFailed("cannot resume: the task's own Range header is in the way")
        end = sink.http_length - 1 if start > 0 and sink.http_length > 0 else -1
        body = await client.open(origin, start=start, end=end, if_range=if_range)
        try:
            if start > 0 and not _resumed_at(body.status, body.content_range, start):
                raise FillFailed(
                    f"connection dropped after {start} bytes and the origin does not resume"
                    f" with Range (answered {body.status})"
                )
            if not opened:
                opened = True
                if sink.http_length < 0 and start == 0 and body.content_length >= 0:
                    sink.http_length = body.content_length
                await on_open(body.validators)
                if not if_range:
                    if_range = if_range_value(body.validators)
            try:
                async for chunk in body.chunks():
                    sink.origin_bytes += len(chunk)
                    failures = 0
                    await sink.feed(chunk)
            except OriginDropped as exc:
                failures += 1
                if sink.http_length < 0 or user_range or failures > MAX_RESUMES:
                    raise FillFailed(f"{exc} after {sink.received} bytes") from exc
                await asyncio.sleep(0.05 * failures)
                continue
        finally:
            body.close()
        if 0 <= sink.http_length != sink.received:
            raise FillFailed(
                f"length mismatch: origin length {sink.http_length}, received {sink.received}"
            )
        await sink.finish()
        return


def _resumed_at(status: int, content_range: str, start: int) -> bool:
    """A 206 whose Content-Range starts where we stopped."""
    if status != 206:
        return False
    unit, _, spec = content_range.partition(" ")
    first = spec.partition("-")[0]
    return unit.lower() == "bytes" and first.isdigit() and int(first) == start


def if_range_value(validators: Validators) -> str:
    """A resumed body must be the same version: a strong ETag, else the Last-Modified date."""
    if validators.etag and not validators.etag.startswith("W/"):
        return validators.etag
    if validators.last_modified_ms > 0:
        return format_http_date(validators.last_modified_ms)
    return ""
