"""The only origin HTTP client: probe, streamed bodies, Range resume, revalidation, rate limit."""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from supernode.cdn.interface import (
    OriginAuthRequired,
    OriginError,
    OriginNotFound,
    OriginRequest,
    ProbeResult,
)

PROBE_TIMEOUT = 4.0
CONNECT_TIMEOUT = 3.0
MAX_REDIRECTS = 10
# Go drops these when a redirect leaves the original host:port.
_SENSITIVE = ("Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class OriginDropped(OriginError):
    """The body stopped before its end (connection reset, truncated payload, read timeout)."""


class RateLimiter:
    """A token bucket shared by every fill; `rate` bytes/s, 0 means unlimited.

    How it works: a caller takes its bytes at once, possibly driving the bucket into debt,
    then sleeps until the debt is repaid, so concurrent fills together never exceed `rate`.
    """

    def __init__(self, rate: int) -> None:
        # The original rounds rates up to a multiple of 1000.
        self.rate = -(-rate // 1000) * 1000 if rate > 0 else 0
        self._burst = max(self.rate * 0.02, 256 * 1024)
        self._tokens = 0.0
        self._stamp = time.monotonic()

    async def acquire(self, count: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= count
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)


@dataclass(frozen=True, slots=True)
class Validators:
    """What identifies one version of the origin file (`Last-Modified` in ms, `ETag`)."""

    last_modified_ms: int = 0
    etag: str = ""


class OriginBody:
    """An open origin response: status, length, validators, and its body as chunks."""

    def __init__(self, response: aiohttp.ClientResponse, limiter: RateLimiter) -> None:
        self._response = response
        self._limiter = limiter
        self.status = response.status
        self.content_length = response.content_length if response.content_length is not None else -1
        self.content_range = response.headers.get("Content-Range", "")
        self.validators = Validators(
            _parse_http_date_ms(response.headers.get("Last-Modified", "")),
            response.headers.get("ETag", ""),
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive, rate-limited; OriginDropped when the body is cut short."""
        try:
            async for data, _ in self._response.content.iter_chunks():
                if data:
                    await self._limiter.acquire(len(data))
                    yield data
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise OriginDropped(f"origin connection dropped: {_describe(exc)}") from exc

    def close(self) -> None:
        self._response.close()


class OriginClient:
    """One aiohttp session for every origin; per-request TLS options; manual redirects."""

    def __init__(self, rate_limit: int, *, read_timeout: float = 120.0) -> None:
        self.limiter = RateLimiter(rate_limit)
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[tuple[bool, tuple[bytes, ...]], ssl.SSLContext | bool] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
                auto_decompress=False,
                # No Accept-Encoding of our own: the cache holds the bytes a plain GET gives.
                skip_auto_headers=("Accept-Encoding",),
                read_bufsize=1 << 20,
                max_line_size=65536,
                max_field_size=65536,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ssl_for(self, origin: OriginRequest) -> ssl.SSLContext | bool:
        key = (origin.insecure, origin.root_cas)
        if key not in self._ssl:
            if origin.insecure:
                self._ssl[key] = False
            elif origin.root_cas:
                context = ssl.create_default_context()
                for pem in origin.root_cas:
                    context.load_verify_locations(cadata=pem.decode("ascii", "replace"))
                self._ssl[key] = context
            else:
                self._ssl[key] = True
        return self._ssl[key]

    async def _get(
        self, origin: OriginRequest, extra: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """GET following up to 10 redirects; credentials are dropped when the host:port changes."""
        headers = task_headers(origin.headers)
        headers.update(extra)
        url = URL(origin.url, encoded=True)
        if url.scheme not in ("http", "https") or not url.host:
            raise OriginError(f"unsupported origin url {origin.url!r}")
        first = url.origin()
        ssl_option = self._ssl_for(origin)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self._client().get(
                    url, headers=headers, allow_redirects=False, ssl=ssl_option, timeout=timeout
                )
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                raise OriginError(f"cannot reach origin {url.host}: {_describe(exc)}") from exc
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response
            response.close()
            try:
                url = url.join(URL(location))
            except ValueError as exc:
                raise OriginError(f"origin redirected to a bad location {location!r}") from exc
            if url.scheme not in ("http", "https"):
                raise OriginError(f"origin redirected to unsupported url {location!r}")
            if url.origin() != first:
                for name in _SENSITIVE:
                    headers.popall(name, None)
        raise OriginError(f"origin {origin.url!r}: stopped after {MAX_REDIRECTS} redirects")

    async def probe(self, origin: OriginRequest) -> ProbeResult:
        """Length and Range support from one GET (≤ 4 s); `bytes=0-0` unless Range is set."""
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        user_range = "Range" in task_headers(origin.headers)
        extra = {} if user_range else {"Range": "bytes=0-0"}
        try:
            response = await self._get(origin, extra, timeout)
            if response.status == 416 and extra:
                response.close()  # e.g. an empty file: ask again without a Range
                response = await self._get(origin, {}, timeout)
        except OriginError:
            return ProbeResult(-1, False)
        try:
            status = response.status
            if status in (401, 407):
                raise OriginAuthRequired(f"origin {origin.url} requires authentication ({status})")
            if status == 404:
                raise OriginNotFound(f"origin {origin.url} not found (404)")
            if status == 206 and extra:
                return ProbeResult(_range_total(response.headers.get("Content-Range", "")), True)
            if status in (200, 206):
                length = response.content_length
                return ProbeResult(length if length is not None else -1, False)
            return ProbeResult(-1, False)
        finally:
            response.close()

    async def supports_range(self, origin: OriginRequest) -> bool:
        """Does the origin answer `Range: bytes=0-0` with 206? (False on any error.)"""
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        try:
            response = await self._get(origin, {"Range": "bytes=0-0"}, timeout)
        except OriginError:
            return False
        response.close()
        return response.status == 206

    async def unchanged(self, origin: OriginRequest, validators: Validators) -> bool:
        """Revalidate (§9.3): True on 304 or on a transport error, False on anything else."""
        extra: dict[str, str] = {}
        if validators.last_modified_ms > 0:
            extra["If-Modified-Since"] = format_http_date(validators.last_modified_ms)
        if validators.etag:
            extra["If-None-Match"] = validators.etag
        if not extra:
            return False
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        try:
            response = await self._get(origin, extra, timeout)
        except OriginError:
            return True
        response.close()
        return response.status == 304

    async def open(
        self, origin: OriginRequest, *, start: int = 0, end: int = -1, if_range: str = ""
    ) -> OriginBody:
        """The body from `start` (a Range request when start > 0); 200/206 or OriginError."""
        extra: dict[str, str] = {}
        if start > 0:
            extra["Range"] = f"bytes={start}-{end if end >= 0 else ''}"
            if if_range:
                extra["If-Range"] = if_range
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=self._read_timeout
        )
        response = await self._get(origin, extra, timeout)
        if response.status not in (200, 206):
            response.close()
            raise OriginError(f"origin answered {response.status} {response.reason or ''}".strip())
        return OriginBody(response, self.limiter)


def task_headers(pairs: tuple[tuple[str, str], ...]) -> CIMultiDict[str]:
    """The task's headers: duplicate names joined with ',', empty values dropped (§9.2)."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for name, value in pairs:
        if not name or not value:
            continue
        merged.setdefault(name.lower(), (name, []))[1].append(value)
    return CIMultiDict((name, ",".join(values)) for name, values in merged.values())


def format_http_date(ms: int) -> str:
    return email.utils.formatdate(ms / 1000.0, usegmt=True)


def _parse_http_date_ms(text: str) -> int:
    if not text:
        return 0
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 0
    return int(parsed.timestamp() * 1000)


def _range_total(content_range: str) -> int:
    """`bytes 0-0/1234` → 1234; −1 for `*` or anything unreadable."""
    _, _, total = content_range.rpartition("/")
    return int(total) if total.isdigit() else -1


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
