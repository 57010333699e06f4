"""The uploader's HTTP/1.1 server: h11 for the protocol, asyncio streams for the sockets.

Why not aiohttp.web: `dfget server` is started by the first dfget of a host and that dfget
waits for it. Importing aiohttp costs ~0.2 s of CPU; h11 costs ~15 ms. With eight dfgets
starting at once on two cores that was a sixth of the ideal download time (bench/dfget_swarm).

What it does: keep-alive connections, one request at a time per connection; routes by method
and path prefix (the rest of the decoded path is `Request.tail`); request bodies up to
`MAX_BODY` bytes; answers are either a whole `Response` or streamed through `Request.start`
(`write` for bytes, `sendfile` for file ranges, so piece bytes never pass through Python).
Unknown paths get 404 and other methods 405, as the original's router. Malformed requests
get 400, heads over `MAX_HEAD` 431 and bodies over `MAX_BODY` 413, and the connection is
closed; idle connections are closed after `IDLE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import IO
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

log = logging.getLogger("dfget.server")
MAX_BODY = 64 * 1024
MAX_HEAD = 16 * 1024
IDLE_TIMEOUT = 75.0  # seconds a kept-alive connection may wait for its next request
_READ_SIZE = 64 * 1024
TEXT = "text/plain; charset=utf-8"
_KNOWN_STATUSES = frozenset(int(s) for s in HTTPStatus)


class Headers:
    """Request headers looked up without regard to case (first value wins)."""

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self._map: dict[str, str] = {}
        for name, value in pairs:
            self._map.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def get(self, name: str, default: str = "") -> str:
        return self._map.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT


def text(status: int, message: str, content_type: str = TEXT) -> Response:
    return Response(status, message.encode(), content_type)


class Body:
    """A response being streamed: the head is out, `length` bytes must follow."""

    def __init__(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        self._conn = conn
        self._writer = writer

    async def write(self, data: bytes) -> None:
        if data:
            self._writer.write(self._conn.send(h11.Data(data=data)) or b"")
            await self._writer.drain()

    async def sendfile(self, fobj: IO[bytes], offset: int, count: int) -> int:
        """Send file bytes [offset, offset+count) with sendfile(2); → bytes sent."""
        await self._writer.drain()
        loop = asyncio.get_running_loop()
        sent = await loop.sendfile(self._writer.transport, fobj, offset, count)
        if sent:
            # h11 counts the bytes against Content-Length; it never adds framing to them, and
            # passes the object through (its documented use: data sent by other means)
            self._conn.send_with_data_passthrough(h11.Data(data=_Span(sent)))  # type: ignore[arg-type]
        return sent


class _Span:
    """Stands for bytes already sent by sendfile in h11's accounting."""

    def __init__(self, size: int) -> None:
        self._size = size

    def __len__(self) -> int:
        return self._size


@dataclass(slots=True)
class Request:
    method: str
    path: str  # percent-decoded
    query: dict[str, str]
    headers: Headers
    body: bytes
    remote: str
    sockname: tuple[str, int] | None
    tail: str = ""  # the decoded path after the route's prefix
    _conn: h11.Connection | None = field(default=None, repr=False)
    _writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    _body: Body | None = field(default=None, repr=False)

    async def start(self, status: int, length: int, content_type: str) -> Body:
        """Send the head of a streamed answer of exactly `length` bytes."""
        assert self._conn is not None and self._writer is not None and self._body is None
        self._writer.write(self._conn.send(_head(status, length, content_type)) or b"")
        self._body = Body(self._conn, self._writer)
        return self._body


Handler = Callable[[Request], Awaitable["Response | Body"]]


def _head(status: int, length: int, content_type: str) -> h11.Response:
    return h11.Response(
        status_code=status,
        reason=HTTPStatus(status).phrase if status in _KNOWN_STATUSES else "",
        headers=[
            ("Content-Type", content_type),
            ("Content-Length", str(length)),
            ("Date", formatdate(usegmt=True)),
        ],
    )


class HttpServer:
    """Routes are (method, path prefix, handler); a prefix ending in "/" takes a tail."""

    def __init__(self, routes: list[tuple[str, str, Handler]]) -> None:
        self._routes = routes
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None] | None] = {}

    async def start(self, host: str, port: int, *, backlog: int = 1024) -> int:
        """Listen; → the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, host, port, backlog=backlog)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, close every connection and wait for their handlers to end."""
        if self._server is not None:
            self._server.close()
        handlers = [task for task in self._connections.values() if task is not None]
        for writer in list(self._connections):
            writer.close()
        if handlers:
            await asyncio.wait(handlers, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    def _route(self, method: str, path: str) -> tuple[Handler | None, str, bool]:
        """→ (handler, tail, path known)."""
        known = False
        for route_method, prefix, handler in self._routes:
            tail = _match(prefix, path)
            if tail is None:
                continue
            known = True
            if route_method == method:
                return handler, tail, True
        return None, "", known

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._connections[writer] = asyncio.current_task()
        try:
            while True:
                event = await _next_event(conn, reader)
                if not isinstance(event, h11.Request):
                    break  # the client closed the connection
                request = await self._read_request(conn, reader, writer, event)
                if request is None:
                    await _send_whole(conn, writer, text(413, f"body over {MAX_BODY} bytes\n"))
                    break
                await self._answer(request, conn, writer)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    await _send_whole(conn, writer, text(exc.error_status_hint, f"{exc}\n"))
        except (ConnectionError, TimeoutError, h11.LocalProtocolError):
            pass  # the peer went away, stalled, or a handler broke its own Content-Length
        finally:
            self._connections.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        event: h11.Request,
    ) -> Request | None:
        """The whole request, body included; None when the body is over MAX_BODY."""
        headers = Headers(list(event.headers))
        declared = headers.get("content-length")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            part = await _next_event(conn, reader)
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > MAX_BODY:
                    return None
                chunks.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                raise ConnectionResetError("connection closed inside a request")
        target = urlsplit(event.target.decode("latin-1"))
        peer = writer.get_extra_info("peername")
        sockname = writer.get_extra_info("sockname")
        return Request(
            method=event.method.decode("ascii", "replace"),
            path=unquote(target.path),
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers=headers,
            body=b"".join(chunks),
            remote=peer[0] if isinstance(peer, tuple) else "",
            sockname=sockname if isinstance(sockname, tuple) else None,
            _conn=conn,
            _writer=writer,
        )

    async def _answer(
        self, request: Request, conn: h11.Connection, writer: asyncio.StreamWriter
    ) -> None:
        handler, tail, known = self._route(request.method, request.path)
        if handler is None:
            status = 405 if known else 404
            answer = text(status, f"{status} {_REASONS[status]}\n")
            await _send_whole(conn, writer, answer, head_only=request.method == "HEAD")
            return
        request.tail = tail
        try:
            result = await handler(request)
        except (ConnectionError, h11.LocalProtocolError):
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            if request._body is not None:
                raise ConnectionResetError("handler failed mid-answer") from None
            result = text(500, "500 internal server error\n")
        if isinstance(result, Response):
            await _send_whole(conn, writer, result)
        else:
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()


_REASONS = {404: "page not found", 405: "method not allowed"}


def _match(prefix: str, path: str) -> str | None:
    if prefix.endswith("/"):
        return path[len(prefix) :] if path.startswith(prefix) else None
    return "" if path == prefix else None


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        async with asyncio.timeout(IDLE_TIMEOUT):
            data = await reader.read(_READ_SIZE)
        conn.receive_data(data)  # b"" tells h11 the peer closed


async def _send_whole(
    conn: h11.Connection, writer: asyncio.StreamWriter, resp: Response, *, head_only: bool = False
) -> None:
    out = [conn.send(_head(resp.status, len(resp.body), resp.content_type)) or b""]
    if resp.body and not head_only:  # a HEAD answer declares the length but sends no body
        out.append(conn.send(h11.Data(data=resp.body)) or b"")
    out.append(conn.send(h11.EndOfMessage()) or b"")
    writer.write(b"".join(out))
    await writer.drain()
