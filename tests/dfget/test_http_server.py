"""The uploader's HTTP server over real sockets: keep-alive, routing, garbage, limits."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from dfget_client import http_server
from dfget_client.http_server import Body, HttpServer, Request, Response, text
from tests.e2e.harness import REPO, env


async def echo(request: Request) -> Response:
    return text(200, f"{request.method} {request.tail} {request.query} {len(request.body)}")


async def streamed(request: Request) -> Body:
    body = await request.start(200, 6, "application/octet-stream")
    await body.write(b"abc")
    await body.write(b"def")
    return body


async def broken(request: Request) -> Response:
    raise RuntimeError("boom")


async def short(request: Request) -> Body:
    body = await request.start(200, 10, "application/octet-stream")
    await body.write(b"abc")  # 7 bytes short of what it announced
    return body


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    srv = HttpServer(
        [("GET", "/echo/", echo), ("POST", "/echo/", echo), ("GET", "/stream", streamed),
         ("GET", "/broken", broken), ("GET", "/short", short)]
    )  # fmt: skip
    port = await srv.start("127.0.0.1", 0)
    yield port
    await srv.close()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read(-1)
    finally:
        writer.close()


CLOSING = b"GET PATH HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"


def statuses(raw: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


async def test_keep_alive_serves_several_requests_on_one_connection(server) -> None:  # type: ignore[no-untyped-def]
    raw = (
        b"GET /echo/a%2Fb?x=1&y= HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /echo/p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
        b"GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    out = await exchange(server, raw)
    assert statuses(out) == [200, 200, 200]
    assert b"GET a/b {'x': '1', 'y': ''} 0" in out
    assert b"POST p {} 3" in out
    assert out.endswith(b"\r\n\r\nabcdef")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 6\r\n" in out and b"Date: " in out


async def test_unknown_paths_are_404_and_other_methods_405(server) -> None:  # type: ignore[no-untyped-def]
    out = await exchange(
        server,
        b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"
        b"DELETE /stream HTTP/1.1\r\nHost: h\r\n\r\n"
        b"HEAD /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    assert statuses(out) == [404, 405, 405]
    assert b"404 page not found" in out
    assert out.endswith(b"\r\n\r\n"), "a HEAD answer carries no body"


@pytest.mark.parametrize(
    "raw",
    [b"garbage\r\n\r\n", b"GET / HTTP/x\r\n\r\n", b"GET /echo/x HTTP/1.1\r\n\r\n",
     b"GET /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
     b"GET /echo/x HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n"],
)  # fmt: skip
async def test_garbage_gets_a_4xx_and_the_connection_closes(server, raw) -> None:  # type: ignore[no-untyped-def]
    out = await exchange(server, raw)
    codes = statuses(out)
    assert len(codes) == 1 and 400 <= codes[0] < 500, out


async def test_oversized_heads_and_bodies_are_refused(server) -> None:  # type: ignore[no-untyped-def]
    big_head = b"GET /echo/x HTTP/1.1\r\nHost: h\r\nX: " + b"a" * (http_server.MAX_HEAD + 10)
    assert statuses(await exchange(server, big_head)) == [431]  # no end of head in sight
    declared = f"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: {http_server.MAX_BODY + 1}"
    assert statuses(await exchange(server, declared.encode() + b"\r\n\r\n")) == [413]
    chunked = b"POST /echo/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n" % 40000 + b"z" * 40000 + b"\r\n"
    assert statuses(await exchange(server, chunked + chunk * 2 + b"0\r\n\r\n")) == [413]


async def test_a_failing_handler_is_a_500_and_a_short_body_closes_the_connection(server) -> None:  # type: ignore[no-untyped-def]
    two = b"GET /broken HTTP/1.1\r\nHost: h\r\n\r\n" + CLOSING.replace(b"PATH", b"/echo/z")
    out = await exchange(server, two)
    assert statuses(out) == [500, 200]
    out = await exchange(server, b"GET /short HTTP/1.1\r\nHost: h\r\n\r\n")
    assert statuses(out) == [200] and out.endswith(b"\r\n\r\nabc")  # closed, not kept alive


async def test_idle_connections_are_closed(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(http_server, "IDLE_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        async with asyncio.timeout(5):
            assert await reader.read(-1) == b""
    finally:
        writer.close()


def test_dfget_server_starts_without_the_heavy_modules() -> None:
    """`dfget server` imports neither aiohttp nor prometheus_client (until its first scrape)
    nor the download path: the first dfget of a host waits for it to start."""
    heavy = ("aiohttp", "prometheus_client", "dfget_client.core", "dfget_client.progress",
             "dfget_client.supernode_api")  # fmt: skip
    code = (
        "import sys, dfget_client.cli, dfget_client.uploader\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env(), cwd=REPO,
        check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
