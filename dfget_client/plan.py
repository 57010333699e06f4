"""Pure state machine of one P2P download: which pull to send, which pieces to fetch, when to
wait, migrate, finish or give up (§3.2, §3.8, §4). No I/O; time comes in as `now`.

How it works: events go in (`start`, `pull_replied`, `pull_failed`, `piece_done`, `migrated`,
`migration_failed`, `tick`) and commands come out (`SendPull`, `FetchPiece`, `Migrate`,
`Finish`, `GiveUp`). At most one pull is outstanding. The first pull on every supernode is
status 700 / result 502; after that every piece outcome (503 success, 500 failure) rides on
exactly one later pull, oldest first, status 701. A 602 (or 603/200, or a 601 that brings
nothing while nothing runs) schedules a re-poll of the same query after a growing random
back-off; a piece outcome cuts the wait short. A code outside {600,601,602,603,200}, an HTTP
status other than 200, or transport errors past the retry budget make the downloader migrate
to the next supernode (`Migrate`); when none is left the download goes back to source.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dfget_client.errors import BackSourceReason
from supernode.protocol.codes import PieceResult, PullStatus, ResultCode
from supernode.protocol.ids import is_supernode_cid
from supernode.protocol.pieces import parse_range

# Codes after which a Go dfget keeps pulling from the same supernode (§3.8).
_WAIT_CODES = frozenset({ResultCode.PEER_WAIT, ResultCode.PEER_LIMITED, ResultCode.SUCCESS})


class Phase(StrEnum):
    PULLING = "pulling"
    MIGRATING = "migrating"
    FINISHED = "finished"
    FAILED = "failed"


class SourceKind(StrEnum):
    SUPERNODE = "supernode"
    PEER = "peer"
    ORIGIN = "origin"


@dataclass(frozen=True, slots=True)
class PieceTask:
    """One element of a 601 `data` list (§5.2)."""

    range: str
    piece_num: int
    piece_size: int
    piece_md5: str
    cid: str
    peer_ip: str
    peer_port: int
    path: str
    down_link: int = 0

    @property
    def source(self) -> SourceKind:
        return SourceKind.SUPERNODE if is_supernode_cid(self.cid) else SourceKind.PEER

    @property
    def expected_md5(self) -> str:
        """The md5 part of `pieceMd5` (`"<md5>:<len>"`), empty when the supernode has none."""
        return self.piece_md5.partition(":")[0].lower()

    @property
    def peer_addr(self) -> str:
        return f"{self.peer_ip}:{self.peer_port}"

    @classmethod
    def from_wire(cls, item: Mapping[str, Any]) -> PieceTask:
        """Validate one wire item; ValueError when it cannot be used."""
        text = {k: item.get(k) for k in ("range", "pieceMd5", "cid", "peerIp", "path")}
        if not all(isinstance(v, str) for v in text.values()):
            raise ValueError(f"piece item with a non-string field: {item!r}")
        numbers = {k: item.get(k, 0) for k in ("pieceNum", "pieceSize", "peerPort", "downLink")}
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers.values()):
            raise ValueError(f"piece item with a non-integer field: {item!r}")
        start, _ = parse_range(str(text["range"]))
        if numbers["pieceNum"] < 0 or numbers["pieceSize"] <= 5:
            raise ValueError(f"piece item with a bad pieceNum/pieceSize: {item!r}")
        if start != numbers["pieceNum"] * numbers["pieceSize"]:
            # The content is written at pieceNum·(pieceSize−5): both must name the same piece.
            raise ValueError(f"piece item whose range does not match its pieceNum: {item!r}")
        if not 0 < numbers["peerPort"] < 65536 or not text["peerIp"] or not text["path"]:
            raise ValueError(f"piece item without a usable source: {item!r}")
        return cls(
            range=str(text["range"]),
            piece_num=numbers["pieceNum"],
            piece_size=numbers["pieceSize"],
            piece_md5=str(text["pieceMd5"]),
            cid=str(text["cid"]),
            peer_ip=str(text["peerIp"]),
            peer_port=numbers["peerPort"],
            path=str(text["path"]),
            down_link=numbers["downLink"],
        )


@dataclass(frozen=True, slots=True)
class PullQuery:
    """`GET /peer/task` parameters, in the order dfget emits them."""

    src_cid: str
    dst_cid: str
    range: str
    result: int
    status: int
    task_id: str


@dataclass(frozen=True, slots=True)
class PullReply:
    code: int
    pieces: tuple[PieceTask, ...] = ()
    md5: str = ""
    msg: str = ""


@dataclass(frozen=True, slots=True)
class SendPull:
    node: str
    query: PullQuery


@dataclass(frozen=True, slots=True)
class FetchPiece:
    piece: PieceTask
    generation: int


@dataclass(frozen=True, slots=True)
class Migrate:
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    md5: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: BackSourceReason
    message: str


Command = SendPull | FetchPiece | Migrate | Finish | GiveUp


@dataclass(frozen=True, slots=True)
class _Outcome:
    range: str
    dst_cid: str
    result: int


class Plan:
    """See the module docstring. `rng` makes the back-off jitter reproducible in tests."""

    def __init__(
        self,
        *,
        cid: str,
        node: str,
        task_id: str,
        piece_size: int,
        rng: random.Random | None = None,
        max_running: int = 8,
        transport_retries: int = 2,
        max_failures: int = 64,
        min_backoff: float = 0.05,
        max_backoff: float = 0.2,
    ) -> None:
        self.phase = Phase.PULLING
        self.node = node
        self.task_id = task_id
        self.piece_size = piece_size
        self.finish_md5 = ""
        self._cid = cid
        self._rng = rng or random.Random()
        self._max_running = max_running
        self._transport_retries = transport_retries
        self._max_failures = max_failures
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._generation = 0  # bumped when the piece size changes: old pieces mean nothing
        self._epoch = 0  # bumped on every migration: old source cids mean nothing
        self._started = False
        self._outstanding: PullQuery | None = None
        self._last: PullQuery | None = None
        self._retry: PullQuery | None = None
        self._not_before = 0.0
        self._repoll_at: float | None = None
        self._backoff_step = 0
        self._transport_failures = 0
        self._failures_in_a_row = 0
        self._results: deque[_Outcome] = deque()
        self._running: dict[str, tuple[PieceTask, int]] = {}
        self._waiting: deque[PieceTask] = deque()
        self._done: set[str] = set()

    # ---- views ---------------------------------------------------------------------------

    @property
    def outstanding(self) -> PullQuery | None:
        return self._outstanding

    @property
    def running(self) -> tuple[PieceTask, ...]:
        return tuple(task for task, _ in self._running.values())

    @property
    def done(self) -> frozenset[str]:
        return frozenset(self._done)

    @property
    def pending_results(self) -> tuple[tuple[str, str, int], ...]:
        """(range, dstCid, result) outcomes waiting for a pull, oldest first."""
        return tuple((o.range, o.dst_cid, int(o.result)) for o in self._results)

    def next_wake(self) -> float | None:
        """When `tick` has something to do; None while waiting on a reply or a piece."""
        if self.phase is not Phase.PULLING or self._outstanding is not None:
            return None
        if self._retry is not None or not self._started or self._results:
            return self._not_before
        if self._repoll_at is not None:
            return max(self._repoll_at, self._not_before)
        return None

    # ---- events --------------------------------------------------------------------------

    def start(self, now: float) -> list[Command]:
        return self._try_pull(now)

    def tick(self, now: float) -> list[Command]:
        return self._try_pull(now)

    def pull_replied(self, reply: PullReply, now: float) -> list[Command]:
        self._outstanding = None
        if self.phase is not Phase.PULLING:
            return []
        self._transport_failures = 0
        if reply.code == ResultCode.PEER_FINISH:
            self.phase = Phase.FINISHED
            self.finish_md5 = reply.md5
            return [Finish(reply.md5)]
        if reply.code == ResultCode.PEER_CONTINUE:
            commands: list[Command] = list(self._accept(reply.pieces))
            if commands:
                self._backoff_step = 0
            commands += self._try_pull(now)
            if not commands and not self._running and not self._waiting:
                self._schedule_repoll(now)
            return commands
        if reply.code in _WAIT_CODES:
            commands = self._try_pull(now)
            if not commands:
                self._schedule_repoll(now)
            return commands
        return self._migrate(f"supernode {self.node} answered code {reply.code} {reply.msg}")

    def pull_failed(self, now: float, *, http_status: int | None = None) -> list[Command]:
        """Transport error (http_status None) or an HTTP status other than 200."""
        failed, self._outstanding = self._outstanding, None
        if self.phase is not Phase.PULLING:
            return []
        self._transport_failures += 1
        if http_status is None and self._transport_failures <= self._transport_retries:
            self._retry = failed
            self._not_before = now + 0.2 * self._transport_failures
            return []
        what = f"HTTP {http_status}" if http_status is not None else "no answer"
        return self._migrate(f"supernode {self.node} pull failed ({what})")

    def piece_done(self, piece: PieceTask, ok: bool, now: float, generation: int) -> list[Command]:
        entry = self._running.get(piece.range)
        if generation != self._generation or entry is None or entry[0] != piece:
            return []
        del self._running[piece.range]
        dst = piece.cid if entry[1] == self._epoch else ""
        commands: list[Command] = []
        if ok:
            self._done.add(piece.range)
            self._failures_in_a_row = 0
            self._results.append(_Outcome(piece.range, dst, PieceResult.SEMISUC))
        else:
            self._failures_in_a_row += 1
            self._results.append(_Outcome(piece.range, dst, PieceResult.FAILED))
            if self._failures_in_a_row > self._max_failures and self.phase is Phase.PULLING:
                self.phase = Phase.FAILED
                msg = f"{self._failures_in_a_row} piece failures in a row"
                return [GiveUp(BackSourceReason.DOWNLOAD_ERROR, msg)]
        if self.phase is Phase.FINISHED:
            return []
        commands += self._start_waiting()
        return commands + self._try_pull(now)

    def migrated(self, node: str, task_id: str, piece_size: int, now: float) -> list[Command]:
        """Registered with the next supernode: start over there with a 700 pull."""
        if self.phase is not Phase.MIGRATING:
            return []
        self.phase = Phase.PULLING
        self.node, self.task_id = node, task_id
        self._epoch += 1
        self._started = False
        self._retry = self._repoll_at = self._last = None
        self._not_before = 0.0
        self._transport_failures = self._backoff_step = 0
        self._waiting.clear()
        if piece_size != self.piece_size:
            # Raw bytes already written stay valid; only the bookkeeping restarts.
            self.piece_size = piece_size
            self._generation += 1
            self._running.clear()
            self._done.clear()
            self._results.clear()
        else:
            self._results = deque(_Outcome(o.range, "", o.result) for o in self._results)
        return self._try_pull(now)

    def migration_failed(self, now: float, message: str = "") -> list[Command]:
        self.phase = Phase.FAILED
        text = message or "no supernode left to migrate to"
        return [GiveUp(BackSourceReason.DOWNLOAD_ERROR, text)]

    # ---- internals -----------------------------------------------------------------------

    def _migrate(self, reason: str) -> list[Command]:
        self.phase = Phase.MIGRATING
        return [Migrate(reason)]

    def _accept(self, pieces: Iterable[PieceTask]) -> list[Command]:
        for piece in pieces:
            if piece.range in self._done:
                # The supernode does not know we hold it (e.g. after migration): tell it.
                self._results.append(_Outcome(piece.range, piece.cid, PieceResult.SEMISUC))
            elif piece.range not in self._running and all(
                w.range != piece.range for w in self._waiting
            ):
                self._waiting.append(piece)
        return self._start_waiting()

    def _start_waiting(self) -> list[Command]:
        commands: list[Command] = []
        while self._waiting and len(self._running) < self._max_running:
            piece = self._waiting.popleft()
            if piece.range in self._done or piece.range in self._running:
                continue
            self._running[piece.range] = (piece, self._epoch)
            commands.append(FetchPiece(piece, self._generation))
        return commands

    def _query(self, status: int, outcome: _Outcome | None) -> PullQuery:
        if outcome is None:
            return PullQuery(self._cid, "", "", PieceResult.INVALID, status, self.task_id)
        return PullQuery(
            self._cid, outcome.dst_cid, outcome.range, outcome.result, status, self.task_id
        )

    def _try_pull(self, now: float) -> list[Command]:
        if self.phase is not Phase.PULLING or self._outstanding is not None:
            return []
        if now < self._not_before:
            return []
        if self._retry is not None:
            query, self._retry = self._retry, None
        elif not self._started:
            self._started = True
            query = self._query(PullStatus.STARTED, None)
        elif self._results:
            query = self._query(PullStatus.RUNNING, self._results.popleft())
        elif self._repoll_at is not None and now >= self._repoll_at and self._last is not None:
            query = self._last
        else:
            return []
        self._repoll_at = None
        self._outstanding = self._last = query
        return [SendPull(self.node, query)]

    def _schedule_repoll(self, now: float) -> None:
        base = min(self._min_backoff * (2**self._backoff_step), self._max_backoff)
        self._backoff_step = min(self._backoff_step + 1, 16)
        self._repoll_at = now + self._rng.uniform(base, 2 * base)
