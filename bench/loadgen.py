"""A lean HTTP/1.1 keep-alive client for load generation (so the client is not the bottleneck)."""

from __future__ import annotations

import asyncio
import time


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body:
            head += (
                f"Content-Type: application/json;charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            )
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Connections shared by many simulated peers; one request per connection at a time."""

    def __init__(self, conns: list[Connection]) -> None:
        self.free: asyncio.Queue[Connection] = asyncio.Queue()
        for conn in conns:
            self.free.put_nowait(conn)

    @classmethod
    async def open(cls, host: str, port: int, size: int) -> Pool:
        return cls([await Connection.open(host, port) for _ in range(size)])

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        status, data, _ = await self.timed(method, path, body)
        return status, data

    async def timed(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, float]:
        """→ (status, body, seconds on the wire): the wait for a free connection is the load
        generator's own queue, not the server's latency, so it is left out."""
        conn = await self.free.get()
        try:
            started = time.perf_counter()
            status, data = await conn.request(method, path, body)
            return status, data, time.perf_counter() - started
        finally:
            self.free.put_nowait(conn)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().close()
