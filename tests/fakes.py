"""An in-memory CDN for control-plane tests: real framed pieces, no disk, no network."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from supernode.cdn.interface import (
    FillListener,
    FillOutcome,
    FillSpec,
    OriginAuthRequired,
    OriginNotFound,
    OriginRequest,
    ProbeResult,
)
from supernode.protocol import pieces


@dataclass
class MemoryCdn:
    """Origins are a dict url → bytes (or an int status to answer the probe with).

    A fill frames the origin's bytes exactly as the reference says and reports each piece;
    `gate` (when set) holds the fill before each piece so tests can watch progress."""

    origins: dict[str, bytes | int] = field(default_factory=dict)
    fail_fill: dict[str, str] = field(default_factory=dict)
    gate: asyncio.Semaphore | None = None
    fills: list[FillSpec] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    probes: int = 0
    _jobs: set[asyncio.Task[None]] = field(default_factory=set)

    async def probe(self, origin: OriginRequest) -> ProbeResult:
        self.probes += 1
        body = self.origins.get(origin.url)
        if body is None or body == 404:
            raise OriginNotFound("404 Not Found")
        if body in (401, 407):
            raise OriginAuthRequired(f"{body}")
        if isinstance(body, int):
            return ProbeResult(-1)
        return ProbeResult(len(body), supports_range=True)

    def start_fill(self, spec: FillSpec, listener: FillListener) -> None:
        self.fills.append(spec)
        job = asyncio.ensure_future(self._fill(spec, listener))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _fill(self, spec: FillSpec, listener: FillListener) -> None:
        await asyncio.sleep(0)
        if spec.origin.url in self.fail_fill:
            listener.fill_failed(spec.task_id, self.fail_fill[spec.origin.url])
            return
        body = self.origins.get(spec.origin.url)
        if not isinstance(body, bytes):
            listener.fill_failed(spec.task_id, "origin gone")
            return
        size = spec.piece_size
        content = size - pieces.PIECE_WRAP_SIZE
        count = pieces.piece_count(len(body), size)
        wrapped = bytearray()
        md5s = []
        for num in range(count):
            if self.gate is not None:
                await self.gate.acquire()
            piece = pieces.frame(body[num * content : (num + 1) * content], size)
            wrapped += piece
            md5s.append(pieces.piece_md5(piece))
            listener.piece_ready(spec.task_id, num, md5s[-1])
            await asyncio.sleep(0)
        self.files[spec.task_id] = bytes(wrapped)
        listener.fill_succeeded(
            spec.task_id,
            FillOutcome(
                http_file_length=len(body),
                real_md5=hashlib.md5(body).hexdigest(),
                piece_md5s=tuple(md5s),
                origin_bytes=len(body),
            ),
        )

    def data_file(self, task_id: str) -> Path | None:
        return Path("/nonexistent") / task_id if task_id in self.files else None

    async def check_piece(self, task_id: str, piece_num: int, expected_md5: str) -> bool:
        data = self.files.get(task_id)
        if data is None:
            return False
        size = self.fills[-1].piece_size
        piece = data[piece_num * size : (piece_num + 1) * size]
        return pieces.piece_md5(piece) == expected_md5

    async def content_sha256(self, task_id: str) -> str:
        body = self.origins.get(self.fills[-1].origin.url) if task_id in self.files else None
        return hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else ""

    def gc_sweep(self, live_task_ids: frozenset[str], now: float) -> int:
        return 0

    async def delete(self, task_id: str) -> None:
        self.deleted.append(task_id)
        self.files.pop(task_id, None)

    async def close(self) -> None:
        for job in list(self._jobs):
            job.cancel()
