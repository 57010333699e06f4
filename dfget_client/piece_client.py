"""The piece data path of `peer_api`: blocking keep-alive HTTP/1.1 in worker threads (§6.3).

Why threads: a piece body goes socket → one reusable 1 MiB buffer (`readinto`, no
allocation) → md5 → `pwrite` at its raw offset, and all three release the GIL, so pieces
move on both cores while the event loop only schedules. The body is `header(4) | content |
0x7F`: the header is kept aside, the last byte seen is held back until EOF (it is the
trailer), and the md5 covers every byte of the body.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dfget_client.errors import PieceError, PieceErrorKind, WriteError
from dfget_client.keepalive import STALE, ThreadConnections
from dfget_client.plan import PieceTask
from dfget_client.ratelimit import TokenBucket
from supernode.protocol.pieces import (
    PIECE_HEAD_SIZE,
    PIECE_TAIL,
    PIECE_WRAP_SIZE,
    parse_frame_header,
    raw_offset,
)

BUFFER_SIZE = 1 << 20
WriteAt = Callable[[int, Sequence[memoryview | bytes]], None]
OnBytes = Callable[[int], None]


@dataclass(slots=True)
class BodySink:
    """md5 over every body byte; content (header stripped, trailer held back) to `write_at`."""

    write_at: WriteAt
    offset: int
    wrapped: bool
    hasher: Any = None
    head: bytearray = field(default_factory=bytearray)
    held: bytes = b""
    total: int = 0

    def feed(self, chunk: memoryview) -> None:
        self.total += len(chunk)
        if self.hasher is not None:
            self.hasher.update(chunk)
        if self.wrapped and len(self.head) < PIECE_HEAD_SIZE:
            take = PIECE_HEAD_SIZE - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        if not chunk:
            return
        parts: list[memoryview | bytes] = [chunk]
        if self.wrapped:
            parts = [self.held, chunk[:-1]] if self.held else [chunk[:-1]]
            self.held = bytes(chunk[-1:])
        size = sum(len(p) for p in parts)
        if size:
            try:
                self.write_at(self.offset, parts)
            except OSError as exc:
                raise WriteError(f"cannot write at offset {self.offset}: {exc.strerror}") from exc
            self.offset += size

    def verify(self, where: str, expected_md5: str) -> int:
        """After EOF: md5 first, then the framing; → content bytes written."""
        if self.hasher is not None:
            real = self.hasher.hexdigest()
            if real != expected_md5:
                raise PieceError(
                    PieceErrorKind.MD5_MISMATCH,
                    f"{where}: md5 {real} != expected {expected_md5}",
                    real_md5=real,
                    expected_md5=expected_md5,
                )
        if not self.wrapped:
            return self.total
        if self.total < PIECE_WRAP_SIZE or len(self.head) != PIECE_HEAD_SIZE:
            raise PieceError(PieceErrorKind.BAD_FRAME, f"{where}: {self.total} bytes is no piece")
        content_len, _ = parse_frame_header(bytes(self.head))
        if content_len != self.total - PIECE_WRAP_SIZE or self.held != PIECE_TAIL:
            raise PieceError(PieceErrorKind.BAD_FRAME, f"{where}: piece framing does not match")
        return content_len


@dataclass(slots=True)
class PieceJob:
    """One fetch; `abort()` may be called from any thread to stop it promptly."""

    piece: PieceTask
    write_at: WriteAt
    timeout: float
    limiter: TokenBucket | None = None
    on_bytes: OnBytes | None = None
    source_mode: bool = False
    range_end: int | None = None
    extra_headers: Sequence[tuple[str, str]] = ()
    ssl_context: ssl.SSLContext | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None

    def abort(self) -> None:
        self.cancelled.set()
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes a blocked recv; never close cross-thread
                sock.shutdown(socket.SHUT_RDWR)


class PieceClient:
    """Per-thread keep-alive connections and buffers; `fetch` runs in a worker thread."""

    def __init__(self, *, user_agent: str, connect_timeout: float = 2.0) -> None:
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self._connections = ThreadConnections()
        self._local = threading.local()  # the thread's read buffer

    def close(self) -> None:
        self._connections.close_all()

    def _buffer(self) -> bytearray:
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None:  # once per thread: the 1 MiB is reused by every piece after
            buffer = self._local.buffer = bytearray(BUFFER_SIZE)
        return buffer

    def fetch(self, job: PieceJob) -> int:
        piece = job.piece
        url = piece.path if "://" in piece.path else f"http://{piece.peer_addr}{piece.path}"
        parts = urlsplit(url)
        scheme, host = parts.scheme or "http", parts.hostname or piece.peer_ip
        key = (scheme, host, parts.port or (443 if scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        where = f"piece {piece.range} from {piece.peer_addr}"
        drop = self._connections.drop
        for attempt in (0, 1):
            reused = False
            try:
                conn, reused = self._connections.get(key, lambda: self._connect(job, key))
                return self._fetch_once(job, conn, key, target, where)
            except STALE as exc:
                drop(key)
                if reused and attempt == 0 and not job.cancelled.is_set():
                    continue  # the keep-alive connection had been closed by the peer
                raise PieceError(PieceErrorKind.UNREACHABLE, f"{where}: {exc}") from exc
            except (PieceError, WriteError):
                drop(key)
                raise
            except TimeoutError as exc:
                drop(key)
                raise PieceError(PieceErrorKind.TIMEOUT, f"{where}: timed out") from exc
            except (OSError, http.client.HTTPException) as exc:
                drop(key)
                what = "cannot connect" if isinstance(exc, ConnectionRefusedError) else exc
                raise PieceError(PieceErrorKind.UNREACHABLE, f"{where}: {what}") from exc
            finally:
                job.sock = None
        raise AssertionError("unreachable")

    def _connect(self, job: PieceJob, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if key[0] == "https":
            conn = http.client.HTTPSConnection(
                key[1], key[2], timeout=self.connect_timeout, context=job.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(key[1], key[2], timeout=self.connect_timeout)
        conn.connect()
        return conn

    def _fetch_once(
        self,
        job: PieceJob,
        conn: http.client.HTTPConnection,
        key: tuple[str, str, int],
        target: str,
        where: str,
    ) -> int:
        piece = job.piece
        start, _, end = piece.range.partition("-")
        if job.range_end is not None:
            end = str(min(int(end), job.range_end))
        assert conn.sock is not None
        conn.sock.settimeout(job.timeout)
        job.sock = conn.sock
        if job.cancelled.is_set():
            job.abort()
        conn.putrequest("GET", target, skip_accept_encoding=True)
        headers = [
            ("Range", f"bytes={start}-{end}"),
            ("pieceNum", str(piece.piece_num)),
            ("pieceSize", str(piece.piece_size)),
            ("User-Agent", self.user_agent),
        ]
        if job.source_mode:
            headers += [("cdnSource", "source"), *job.extra_headers]
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        if resp.status == 404:
            raise PieceError(PieceErrorKind.NOT_FOUND, f"{where}: HTTP 404")
        if not 200 <= resp.status < 300:
            raise PieceError(PieceErrorKind.HTTP_STATUS, f"{where}: HTTP {resp.status}")
        if resp.length is not None and resp.length > piece.piece_size:
            raise PieceError(PieceErrorKind.BAD_FRAME, f"{where}: body too long")
        expected = piece.expected_md5
        offset = int(start) if job.source_mode else raw_offset(piece.piece_num, piece.piece_size)
        sink = BodySink(
            job.write_at, offset, not job.source_mode, hashlib.md5() if expected else None
        )
        view = memoryview(self._buffer())
        deadline = time.monotonic() + job.timeout
        while True:
            if job.cancelled.is_set():
                raise PieceError(PieceErrorKind.UNREACHABLE, f"{where}: cancelled")
            count = resp.readinto(view)
            if not count:
                break
            if sink.total + count > piece.piece_size:
                raise PieceError(PieceErrorKind.BAD_FRAME, f"{where}: body too long")
            if time.monotonic() > deadline:
                raise PieceError(PieceErrorKind.TIMEOUT, f"{where}: too slow")
            if job.limiter is not None:
                job.limiter.wait_blocking(count, job.cancelled)
            sink.feed(view[:count])
            if job.on_bytes is not None:
                job.on_bytes(count)
        if resp.length:  # http.client does not raise when the body is cut short
            raise PieceError(PieceErrorKind.UNREACHABLE, f"{where}: body cut short")
        if resp.will_close:
            self._connections.drop(key)
        return sink.verify(where, expected)
