"""Piece-error reports about the supernode's own pieces (§9.6): re-check the cache, GC if bad.

Reports about other peers only matter to the scheduler (they arrive as failed pull results);
reports naming the supernode mean its cached copy may be damaged. One check per task runs at
a time, at most PIECE_ERROR_QUEUE at once; a damaged task is fully GC'd and refills on its
next registration.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from supernode.errors import InvalidValue, Overloaded
from supernode.protocol import ids
from supernode.protocol.codes import ClientErrorType

if TYPE_CHECKING:
    from supernode.service import SupernodeService

PIECE_ERROR_QUEUE = 100


class PieceErrorChecker:
    def __init__(self, service: SupernodeService) -> None:
        self.service = service
        self._jobs: set[asyncio.Task[None]] = set()
        self._checking: set[str] = set()

    def report(self, query: dict[str, str]) -> None:
        """`GET /peer/piece/error`: raises Overloaded (HTTP 500) when the queue is full."""
        if not ids.is_supernode_cid(query["dst_cid"]):
            return
        task_id = query["task_id"]
        state = self.service.states.get(task_id)
        if state is None or query["error_type"] not in set(ClientErrorType):
            return
        if task_id in self._checking:
            return
        if len(self._jobs) >= PIECE_ERROR_QUEUE:
            raise Overloaded("piece error queue is full")
        try:
            piece_num = (
                self.service.piece_num_of(state.task, query["range"]) if query["range"] else -1
            )
        except InvalidValue:
            return
        self._checking.add(task_id)
        job = asyncio.ensure_future(self._check(task_id, piece_num, query["error_type"]))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _check(self, task_id: str, piece_num: int, error_type: str) -> None:
        service = self.service
        try:
            state = service.states.get(task_id)
            if state is None:
                return
            if error_type == ClientErrorType.FILE_NOT_EXIST:
                bad = service.cdn.data_file(task_id) is None
            else:
                expected = state.progress.piece_md5s.get(piece_num, "")
                bad = piece_num >= 0 and not await service.cdn.check_piece(
                    task_id, piece_num, expected
                )
            if bad and task_id in service.states:
                await service.delete_task(task_id, full=True)
        finally:
            self._checking.discard(task_id)

    def close(self) -> None:
        for job in list(self._jobs):
            job.cancel()
