"""An uploader served on 127.0.0.1 by its real HTTP server, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from dfget_client.http_server import HttpServer
from dfget_client.uploader import Uploader


class UploaderClient:
    """`get`/`post` by path against one running uploader (aiohttp's TestClient shape)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(auto_decompress=False)

    def get(self, path: str, **kw: Any) -> Any:
        return self.session.get(self.base + path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.session.post(self.base + path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.session.request(method, self.base + path, **kw)


@pytest.fixture
async def serve_uploader() -> AsyncIterator[Any]:
    started: list[tuple[HttpServer, UploaderClient]] = []

    async def serve(up: Uploader) -> UploaderClient:
        server = HttpServer(up.routes())
        client = UploaderClient(await server.start("127.0.0.1", 0))
        started.append((server, client))
        return client

    yield serve
    for server, client in started:
        await client.session.close()
        await server.close()
