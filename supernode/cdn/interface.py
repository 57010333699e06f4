"""What the control plane asks of a CDN, and what a CDN reports back while it fills a task.

How it works: a registration probes the origin (`Cdn.probe`) to learn the length and piece
size, then calls `Cdn.start_fill` once per (re)trigger. The CDN fills in the background and
calls the listener on the event loop: `piece_ready` for every piece the moment it is verified
on disk (so peers can start before the fill ends), then exactly one of `fill_succeeded` or
`fill_failed`. A success whose `real_md5` is "" (no md5 was asked for, so none was computed
on the hot path) is followed by `file_md5_known` once the file md5 is read back from disk.
The control plane never reads cache files itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class OriginError(Exception):
    """The origin could not be used; `reason` is what operators see in task info."""


class OriginAuthRequired(OriginError):
    """The origin answered 401/407 to the probe."""


class OriginNotFound(OriginError):
    """The origin answered 404 to the probe: the URL is refused for `failAccessInterval`."""


@dataclass(frozen=True, slots=True)
class OriginRequest:
    """How to reach the origin: the raw URL, the user's headers and TLS options."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    insecure: bool = False
    root_cas: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """`length` is −1 when unknown (chunked origin, odd status, transport error)."""

    length: int
    supports_range: bool = False


@dataclass(frozen=True, slots=True)
class FillSpec:
    task_id: str
    task_url: str
    origin: OriginRequest
    http_file_length: int
    piece_size: int
    md5: str = ""
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What a finished fill knows: the real length and md5 of the origin's bytes (md5 "" until
    `file_md5_known` when the registration did not ask for one)."""

    http_file_length: int
    real_md5: str
    piece_md5s: tuple[str, ...] = field(default=())
    cache_hit: bool = False
    origin_bytes: int = 0


class FillListener(Protocol):
    def piece_ready(self, task_id: str, piece_num: int, piece_md5: str) -> None: ...

    def fill_succeeded(self, task_id: str, outcome: FillOutcome) -> None: ...

    def fill_failed(self, task_id: str, reason: str) -> None: ...

    def file_md5_known(self, task_id: str, real_md5: str) -> None: ...


class Cdn(Protocol):
    """A CDN backend: the real disk cache (`cdn.manager`) or an in-memory fake in tests."""

    async def probe(self, origin: OriginRequest) -> ProbeResult:
        """GET the origin (≤ 4 s); raise OriginAuthRequired / OriginNotFound; else a length."""
        ...

    def start_fill(self, spec: FillSpec, listener: FillListener) -> None:
        """Start (or restart) filling in the background; returns at once."""
        ...

    def data_file(self, task_id: str) -> Path | None:
        """The wrapped data file of a task, when this backend keeps one."""
        ...

    async def check_piece(self, task_id: str, piece_num: int, expected_md5: str) -> bool:
        """Re-read one piece from disk: True when it still matches its recorded md5 (§9.6)."""
        ...

    async def content_sha256(self, task_id: str) -> str:
        """sha256 hex of the raw (unframed) content of a complete task; "" when unknown."""
        ...

    def gc_sweep(self, live_task_ids: frozenset[str], now: float) -> int:
        """Disk GC (§9.4): remove files of tasks not in memory by the free-space rules and
        LRU order, never a file being filled or served; return the bytes reclaimed."""
        ...

    async def delete(self, task_id: str) -> None:
        """Stop any fill of the task and remove its files."""
        ...

    async def close(self) -> None:
        """Cancel background fills and release client sessions."""
        ...
