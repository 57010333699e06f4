"""Data-plane HTTP: one framed piece from the CDN or a peer (through `piece_client`'s worker
threads), the origin for back-to-source, and the local uploader's control routes (§6.3,
§6.5, §10). Lower-layer errors come out as PieceError / OriginError only.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dfget_client.control_http import ControlHttp
from dfget_client.errors import OriginError, WriteError
from dfget_client.piece_client import BodySink, PieceClient, PieceJob, WriteAt
from dfget_client.plan import PieceTask
from dfget_client.ratelimit import TokenBucket
from supernode.version import COMPAT_VERSION

BATCH = 1 << 20  # origin bytes handed to the hashing/writing thread at a time
OnBytes = Callable[[int], None]
_SAFE = ":@~-._!$'()*+,;="

if TYPE_CHECKING:
    import aiohttp


class PeerApi:
    """Piece fetches in a bounded thread pool; the uploader's routes over `ControlHttp`; an
    aiohttp session (imported on first use) for back-to-source downloads."""

    def __init__(
        self, *, version: str = COMPAT_VERSION, connect_timeout: float = 2.0, workers: int = 8
    ) -> None:
        self.user_agent = f"dfget/{version}"
        self._pieces = PieceClient(user_agent=self.user_agent, connect_timeout=connect_timeout)
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._session: aiohttp.ClientSession | None = None
        self._control = ControlHttp(workers=2, user_agent=self.user_agent)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp  # only back-to-source needs it (TLS, redirects, any origin)

            self._session = aiohttp.ClientSession(auto_decompress=False, read_bufsize=1 << 18)
        return self._session

    async def close(self) -> None:
        self._control.close()
        self._pieces.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def fetch_piece(
        self,
        piece: PieceTask,
        write_at: WriteAt,
        *,
        timeout: float,
        limiter: TokenBucket | None = None,
        on_bytes: OnBytes | None = None,
        source_mode: bool = False,
        range_end: int | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """Fetch, verify and write one piece; → content bytes written. Raises PieceError."""
        loop = asyncio.get_running_loop()
        notify = None
        if on_bytes is not None:
            callback = on_bytes

            def notify(n: int) -> None:
                loop.call_soon_threadsafe(callback, n)

        job = PieceJob(
            piece=piece,
            write_at=write_at,
            timeout=timeout,
            limiter=limiter,
            on_bytes=notify,
            source_mode=source_mode,
            range_end=range_end,
            extra_headers=extra_headers,
            ssl_context=ssl_context,
        )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="piece")
        try:
            return await loop.run_in_executor(self._pool, self._pieces.fetch, job)
        except asyncio.CancelledError:
            job.abort()
            raise

    async def fetch_origin(
        self,
        url: str,
        write_at: WriteAt,
        *,
        headers: Sequence[tuple[str, str]] = (),
        limiter: TokenBucket | None = None,
        on_bytes: OnBytes | None = None,
        ssl: Any = True,
    ) -> tuple[int, str]:
        """Plain GET of the whole file; any status < 400 is accepted. → (length, md5)."""
        sent = list(headers)
        if not any(k.lower() == "accept-encoding" for k, _ in sent):
            sent.append(("Accept-Encoding", "identity"))  # store the bytes exactly as served
        import aiohttp

        sink = BodySink(write_at, 0, False, hashlib.md5())
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        try:
            async with self._client().get(url, headers=sent, ssl=ssl, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise OriginError(f"origin answered HTTP {resp.status} for {url}")
                batch = bytearray()
                async for chunk in resp.content.iter_any():
                    if limiter is not None:
                        await limiter.acquire(len(chunk))
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    batch += chunk
                    if len(batch) >= BATCH:
                        data, batch = memoryview(bytes(batch)), bytearray()
                        await loop.run_in_executor(None, sink.feed, data)
                if batch:
                    await loop.run_in_executor(None, sink.feed, memoryview(bytes(batch)))
        except WriteError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise OriginError(f"cannot download {url} from the origin: {reason}") from exc
        return sink.total, sink.hasher.hexdigest()

    # ---- the local uploader's control routes ---------------------------------------------

    async def _local_get(
        self,
        ip: str,
        port: int,
        target: str,
        headers: dict[str, str] | None = None,
        *,
        method: str = "GET",
        data: bytes | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, str]:
        """One call to the uploader at ip:port; (0, "") when it cannot be reached."""
        try:
            status, body = await self._control.request(
                method, f"{ip}:{port}", target, headers=headers, body=data, timeout=timeout
            )
        except (TimeoutError, OSError, http.client.HTTPException, ValueError):
            return 0, ""
        return status, body.decode("utf-8", "replace")

    async def uploader_check(
        self, ip: str, port: int, task_file_name: str, data_dir: str, total_limit: int
    ) -> str | None:
        """`/check/<name>` → the name echoed before `@<version>`, None if not our uploader."""
        if port <= 0:
            return None
        target = f"/check/{quote(task_file_name, safe=_SAFE)}"
        status, body = await self._local_get(
            ip, port, target, {"dataDir": data_dir, "totalLimit": str(total_limit)}
        )
        suffix = "@" + COMPAT_VERSION
        if status != 200 or not body.endswith(suffix):
            return None
        return body[: -len(suffix)]

    async def uploader_rate(self, ip: str, port: int, task_file_name: str, rate: int) -> int | None:
        target = f"/rate/{quote(task_file_name, safe=_SAFE)}"
        status, body = await self._local_get(ip, port, target, {"rateLimit": str(rate)})
        return int(body) if status == 200 and body.strip().isdigit() else None

    async def uploader_finish(
        self, ip: str, port: int, *, task_file_name: str, task_id: str, cid: str, node: str
    ) -> bool:
        query = "&".join(
            f"{k}={quote(v, safe=_SAFE)}"
            for k, v in (
                ("taskFileName", task_file_name),
                ("taskID", task_id),
                ("cid", cid),
                ("superNode", node),
            )
        )
        status, _ = await self._local_get(ip, port, f"/client/finish?{query}")
        return status == 200

    async def uploader_stats(self, ip: str, port: int, body: Mapping[str, Any]) -> bool:
        """`POST /client/stats`: this download's figures for the uploader's `/metrics`.

        Short timeout: the download is over and a stale `host.meta` port must not hold us up.
        """
        data = json.dumps(body, separators=(",", ":")).encode()
        status, _ = await self._local_get(
            ip,
            port,
            "/client/stats",
            {"Content-Type": "application/json"},
            method="POST",
            data=data,
            timeout=2.0,
        )
        return status == 200

    async def uploader_ping(self, ip: str, port: int) -> bool:
        status, _ = await self._local_get(ip, port, "/server/ping")
        return status == 200
