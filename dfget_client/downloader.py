"""Drives one P2P download: executes the plan's commands (pulls, piece fetches, migrations)
concurrently, streams every piece into the writer, reports successes and bad sources.

How it works: every command runs as a task that ends by putting one event (a closure over
the plan) on a queue; the loop applies events in order, so the plan itself is only ever
touched from one place. A piece is acknowledged with `/peer/piece/suc` before its outcome
reaches the plan, so the supernode has released its load counters by the next pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dfget_client.errors import BackSourceReason, PieceError, PieceErrorKind, WriteError
from dfget_client.locator import Node
from dfget_client.peer_api import PeerApi
from dfget_client.plan import (
    Command,
    FetchPiece,
    Finish,
    GiveUp,
    Migrate,
    PieceTask,
    Plan,
    SendPull,
    SourceKind,
)
from dfget_client.progress import Progress
from dfget_client.ratelimit import TokenBucket
from dfget_client.supernode_api import SupernodeApi, piece_error_query
from dfget_client.writer import TargetWriter
from supernode.protocol.codes import ClientErrorType
from supernode.protocol.pieces import parse_range, raw_offset

log = logging.getLogger("dfget")
Event = Callable[[float], list[Command]]
# Failures where bytes arrived but did not check out (the rest never delivered a piece).
_REJECTED = frozenset({PieceErrorKind.MD5_MISMATCH, PieceErrorKind.BAD_FRAME})


@dataclass(frozen=True, slots=True)
class Registration:
    """A successful `/peer/registry` with one supernode."""

    node: Node
    task_id: str
    file_length: int
    piece_size: int
    cdn_source: str = "supernode"


class RegistrationFailed(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class BackSourceNeeded(Exception):
    """P2P cannot finish; the caller goes to the origin (or fails under `--notbs`)."""

    def __init__(self, reason: BackSourceReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    cid: str
    piece_timeout: float
    local_limit: int
    max_running: int = 8
    headers: tuple[tuple[str, str], ...] = ()
    ssl_context: ssl.SSLContext | None = None  # `cdnSource: source` pieces may be https


class P2PDownloader:
    """One attempt through the supernodes: `run()` → the 600 md5, or BackSourceNeeded."""

    def __init__(
        self,
        *,
        settings: DownloadSettings,
        registration: Registration,
        register_next: Callable[[], Awaitable[Registration]],
        sn_api: SupernodeApi,
        peer_api: PeerApi,
        writer: TargetWriter,
        progress: Progress,
        limiter: TokenBucket,
        rate_hook: Callable[[int], Awaitable[int | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.registration = registration
        self.unverified_pieces = 0  # pieces that came without a pieceMd5 to check
        self._register_next = register_next
        self._sn = sn_api
        self._peers = peer_api
        self._writer = writer
        self._progress = progress
        self._limiter = limiter
        self._rate_hook = rate_hook
        self._clock = clock
        self._rate_checked = -1e9
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._tasks: set[asyncio.Future[object]] = set()
        self._background: set[asyncio.Future[object]] = set()
        self.plan = Plan(
            cid=settings.cid,
            node=registration.node.addr,
            task_id=registration.task_id,
            piece_size=registration.piece_size,
            rng=rng,
            max_running=settings.max_running,
        )

    async def run(self) -> str:
        try:
            result = self._execute(self.plan.start(self._clock()))
            while result is None:
                wake = self.plan.next_wake()
                timeout = 1.0 if wake is None else max(0.0, wake - self._clock())
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a SIGTERM's
                # cancel that lands as the queue yields an item (CPython gh-86296).
                try:
                    async with asyncio.timeout(timeout):
                        event = await self._events.get()
                    commands = event(self._clock())
                except TimeoutError:
                    commands = self.plan.tick(self._clock())
                result = self._execute(commands)
            return result
        finally:
            await self._cancel(self._tasks)
            await self._drain_background()

    # ---- commands ------------------------------------------------------------------------

    def _execute(self, commands: list[Command]) -> str | None:
        for command in commands:
            if isinstance(command, SendPull):
                self._spawn(self._pull(command))
            elif isinstance(command, FetchPiece):
                self._spawn(self._fetch(command))
            elif isinstance(command, Migrate):
                log.warning("%s; migrating", command.reason)
                self._spawn(self._migrate())
            elif isinstance(command, Finish):
                return command.md5
            elif isinstance(command, GiveUp):
                raise BackSourceNeeded(command.reason, command.message)
        return None

    def _spawn(self, coro: Awaitable[object], *, background: bool = False) -> None:
        task = asyncio.ensure_future(coro)
        group = self._background if background else self._tasks
        group.add(task)
        task.add_done_callback(group.discard)

    async def _pull(self, command: SendPull) -> None:
        plan = self.plan
        try:
            reply = await self._sn.pull(command.node, command.query)
        except Exception as exc:  # SupernodeError, or anything unexpected: the plan decides
            status = getattr(exc, "http_status", None)
            log.warning("pull from %s failed: %s", command.node, exc)
            self._events.put_nowait(lambda now: plan.pull_failed(now, http_status=status))
            return
        log.debug("pull %s → %d (%d pieces)", command.query, reply.code, len(reply.pieces))
        self._events.put_nowait(lambda now: plan.pull_replied(reply, now))

    async def _migrate(self) -> None:
        plan = self.plan
        try:
            reg = await self._register_next()
        except RegistrationFailed as exc:
            message = f"migration failed: {exc}"
            self._events.put_nowait(lambda now: plan.migration_failed(now, message))
            return
        self.registration = reg
        print(f"migrated to node:{reg.node.addr}", flush=True)
        self._events.put_nowait(
            lambda now: plan.migrated(reg.node.addr, reg.task_id, reg.piece_size, now)
        )

    async def _update_rate(self, piece: PieceTask) -> None:
        """Ask the uploader for our share of `--totallimit` at most every 3 s."""
        now = self._clock()
        if self._rate_hook is None or now - self._rate_checked < 3:
            return
        self._rate_checked = now
        wanted = self.settings.local_limit or piece.down_link * 1024
        granted = await self._rate_hook(wanted) if wanted > 0 else None
        self._limiter.set_rate(granted if granted else wanted)

    async def _fetch(self, command: FetchPiece) -> None:
        piece, plan = command.piece, self.plan
        node, task_id = plan.node, plan.task_id
        source_mode = self.registration.cdn_source == "source"
        # under `cdnSource: source` the supernode's pieces are origin URLs: the origin sends them
        kind = piece.source
        if source_mode and kind is SourceKind.SUPERNODE:
            kind = SourceKind.ORIGIN
        await self._update_rate(piece)
        if not piece.expected_md5:
            self.unverified_pieces += 1  # the whole file gets an md5 pass at the end
        try:
            written = await self._peers.fetch_piece(
                piece,
                self._writer.write_at,
                timeout=self.settings.piece_timeout,
                limiter=self._limiter,
                on_bytes=lambda n: self._progress.add_bytes(kind, n),
                source_mode=source_mode,
                range_end=self.registration.file_length - 1 if source_mode else None,
                extra_headers=self.settings.headers,
                ssl_context=self.settings.ssl_context,
            )
            ok = True
        except WriteError as exc:
            error = exc
            self._events.put_nowait(lambda now: self._write_failed(error))
            return
        except PieceError as exc:
            ok, written = False, 0
            log.warning("%s", exc)
            self._progress.piece_failed(
                piece.piece_num, kind, piece.peer_addr, str(exc), rejected=exc.kind in _REJECTED
            )
            self._report_error(node, task_id, piece, exc)
        if ok:
            start = (
                parse_range(piece.range)[0]
                if source_mode
                else raw_offset(piece.piece_num, piece.piece_size)
            )
            self._writer.mark_done(start, start + written)
            self._progress.piece_done(piece.piece_num, kind, piece.peer_addr, written)
            report = functools.partial(
                self._sn.report_piece,
                node,
                task_id=task_id,
                cid=self.settings.cid,
                dst_cid=piece.cid,
                piece_range=piece.range,
            )
            # A failed report is retried in the background: the pull must not wait for it.
            if not await report(attempts=1):
                self._spawn(report(attempts=2), background=True)
        generation = command.generation
        self._events.put_nowait(lambda now: plan.piece_done(piece, ok, now, generation))

    def _write_failed(self, exc: Exception) -> list[Command]:
        raise BackSourceNeeded(BackSourceReason.WRITE_ERROR, str(exc))

    def _report_error(self, node: str, task_id: str, piece: PieceTask, exc: PieceError) -> None:
        """404 and md5 mismatches are reported so the supernode can check its own copy."""
        if exc.kind is PieceErrorKind.NOT_FOUND:
            kind = ClientErrorType.FILE_NOT_EXIST
        elif exc.kind is PieceErrorKind.MD5_MISMATCH:
            kind = ClientErrorType.FILE_MD5_NOT_MATCH
        else:
            return
        query = piece_error_query(
            kind,
            src_cid=self.settings.cid,
            dst_cid=piece.cid,
            dst_ip=piece.peer_ip,
            task_id=task_id,
            piece_range=piece.range,
            real_md5=exc.real_md5,
            expected_md5=exc.expected_md5,
        )
        self._spawn(self._sn.report_piece_error(node, query), background=True)

    # ---- cleanup -------------------------------------------------------------------------

    @staticmethod
    async def _cancel(tasks: set[asyncio.Future[object]]) -> None:
        pending = list(tasks)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _drain_background(self) -> None:
        """Give piece reports a moment to land, then stop them."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=2.0)
        await self._cancel(self._background)
