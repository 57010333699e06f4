"""What the preheat engine asks of the supernode: warm one URL into the CDN and wait for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class WarmError(Exception):
    """The URL could not be warmed; the message is the reason shown in the job."""


@dataclass(frozen=True, slots=True)
class WarmRequest:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    filter: tuple[str, ...] = ()
    identifier: str = ""
    insecure: bool = False
    root_cas: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class WarmResult:
    task_id: str
    http_file_length: int
    real_md5: str
    cache_hit: bool
    sha256: str = ""  # of the raw content, so preheat can check a blob against its digest


class TaskWarmer(Protocol):
    """Implemented by the supernode service; fills through its own CDN, in-process."""

    def task_id_for(self, request: WarmRequest) -> str:
        """The task id a later `dfget -u url -f filter -i identifier` computes (§8)."""
        ...

    async def warm(self, request: WarmRequest) -> WarmResult:
        """Register the task (no peer), trigger the CDN and wait until the whole file is
        verified on disk; raise WarmError with the reason otherwise."""
        ...

    def progress(self, task_id: str) -> tuple[int, int] | None:
        """(pieces on disk, piece total or 0 when unknown), None for an unknown task."""
        ...
