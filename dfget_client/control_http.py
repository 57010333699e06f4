"""Small HTTP/1.1 calls of the control plane (the supernode API, the local uploader's routes)
over the standard library's `http.client`, in worker threads with keep-alive per thread.

Why not aiohttp here: these are a few hundred small requests per download, and importing
aiohttp's client costs ~0.2 s of CPU per dfget process (its TLS contexts are built at import).
With eight dfgets and their uploaders starting at once on two cores, that start-up time is
what the swarm waits for. aiohttp is still imported, lazily, for back-to-source downloads.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from dfget_client.keepalive import STALE, ThreadConnections


class ControlHttp:
    """`await request(...)` → (status, body); transport errors raise OSError or
    http.client.HTTPException (TimeoutError for a timeout)."""

    def __init__(self, *, workers: int = 4, user_agent: str = "") -> None:
        self._workers = workers
        self._user_agent = user_agent
        self._pool: ThreadPoolExecutor | None = None
        self._connections = ThreadConnections()

    async def request(
        self,
        method: str,
        host_port: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, bytes]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="control")
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            self._pool, self._blocking, method, host_port, target, headers or {}, body, timeout
        )
        async with asyncio.timeout(timeout + 1.0):  # the socket timeout fires first
            return await call

    def close(self) -> None:
        self._connections.close_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _blocking(
        self,
        method: str,
        host_port: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            conn, reused = self._connections.get(
                host_port, lambda: http.client.HTTPConnection(host_port, timeout=timeout)
            )
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.putrequest(method, target, skip_accept_encoding=True)
                sent = {k.lower() for k in headers}
                if self._user_agent and "user-agent" not in sent:
                    conn.putheader("User-Agent", self._user_agent)
                for name, value in headers.items():
                    conn.putheader(name, value)
                if body is not None or method in ("POST", "PUT"):
                    conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body)
                resp = conn.getresponse()
                payload = resp.read()
                if resp.will_close:
                    self._connections.drop(host_port)
                return resp.status, payload
            except STALE:
                self._connections.drop(host_port)
                if reused and attempt == 0:
                    continue  # the server had closed the idle keep-alive connection
                raise
            except BaseException:
                self._connections.drop(host_port)
                raise
        raise AssertionError("unreachable")
