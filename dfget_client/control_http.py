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
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class ControlHttp:
    """`await request(...)` → (status, body); transport errors raise OSError or
    http.client.HTTPException (TimeoutError for a timeout)."""

    def __init__(self, *, workers: int = 4, user_agent: str = "") -> None:
        self._workers = workers
        self._user_agent = user_agent
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

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
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _connection(
        self, host_port: str, timeout: float
    ) -> tuple[http.client.HTTPConnection, bool]:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get(host_port)
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        conn = http.client.HTTPConnection(host_port, timeout=timeout)
        pool[host_port] = conn
        with self._lock:
            self._all.append(conn)
        return conn, False

    def _drop(self, host_port: str) -> None:
        conn = self._local.__dict__.get("pool", {}).pop(host_port, None)
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)

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
            conn, reused = self._connection(host_port, timeout)
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
                    self._drop(host_port)
                return resp.status, payload
            except _STALE:
                self._drop(host_port)
                if reused and attempt == 0:
                    continue  # the server had closed the idle keep-alive connection
                raise
            except BaseException:
                self._drop(host_port)
                raise
        raise AssertionError("unreachable")
