"""Keep-alive `http.client` connections for worker threads: one pool per thread (a connection
is never shared between threads), and a registry so that `close_all` reaches every thread's."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Hashable

# What a reused keep-alive connection raises when the server has closed it while idle: the
# request was not processed, so it is sent once more on a new connection.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class ThreadConnections:
    def __init__(self) -> None:
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def _pool(self) -> dict[Hashable, http.client.HTTPConnection]:
        pool: dict[Hashable, http.client.HTTPConnection] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def get(
        self, key: Hashable, connect: Callable[[], http.client.HTTPConnection]
    ) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection for `key` → (connection, reused); `connect` makes one."""
        pool = self._pool()
        conn = pool.get(key)
        if conn is not None:
            return conn, True
        conn = pool[key] = connect()
        with self._lock:
            self._all.add(conn)
        return conn, False

    def drop(self, key: Hashable) -> None:
        conn = self._pool().pop(key, None)
        if conn is not None:
            conn.close()
            with self._lock:
                self._all.discard(conn)

    def close_all(self) -> None:
        with self._lock:
            connections, self._all = self._all, set()
        for conn in connections:
            conn.close()
