"""The facade the handlers call: registration, pulls, piece reports, peers, tasks, GC loops.

How it works: all registry and progress state lives on the event loop and is changed only by
synchronous methods, so no request sees a half-applied change. The only awaits are the origin
probe at registration (serialised per task id, so one probe serves a burst of registrations)
and CDN work, which runs in the background and reports back through `FillListener`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supernode.cdn.interface import (
    Cdn,
    FillOutcome,
    FillSpec,
    OriginAuthRequired,
    OriginNotFound,
    OriginRequest,
)
from supernode.config import SupernodeConfig
from supernode.core.progress import SUPERNODE, ClientProgress, TaskProgress
from supernode.core.registry import DfgetTask, Peer, Registry, Task
from supernode.core.scheduler import Decision, Limits, schedule
from supernode.download_reports import DownloadReports
from supernode.errors import (
    AuthenticationRequired,
    BadRequest,
    InvalidValue,
    NotFound,
    SupernodeError,
    TaskConflict,
    UrlNotReachable,
)
from supernode.metrics import SupernodeMetrics
from supernode.piece_errors import PieceErrorChecker
from supernode.protocol import ids, pieces, wire
from supernode.protocol.codes import (
    CdnPattern,
    CdnStatus,
    DfgetTaskStatus,
    PeerPattern,
    PieceResult,
    PullStatus,
    ResultCode,
)
from supernode.version import COMPAT_VERSION

log = logging.getLogger("supernode.service")
COMPONENT = "supernode"
MAX_PIECE_NUM = 1 << 24  # far beyond any real file: 15 MiB pieces × 2^24 = 240 TiB


@dataclass(frozen=True, slots=True)
class PullReply:
    code: int
    data: Any = None
    msg: str = ""


def headers_to_map(raw: list[str]) -> dict[str, str]:
    """`"K: V"` strings → map; duplicate keys joined with ",", empty values dropped."""
    out: dict[str, str] = {}
    for item in raw or []:
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            continue
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


@dataclass(slots=True)
class TaskState:
    task: Task
    progress: TaskProgress = field(default_factory=TaskProgress)
    fill_done: asyncio.Event = field(default_factory=asyncio.Event)
    origin: OriginRequest | None = None


class SupernodeService:
    """One supernode's control plane; implements `FillListener` and `TaskWarmer`."""

    def __init__(
        self,
        config: SupernodeConfig,
        cdn: Cdn,
        metrics: SupernodeMetrics,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.cdn = cdn
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.registry = Registry()
        self.states: dict[str, TaskState] = {}
        self.limits = Limits(
            peer_up_limit=config.peer_up_limit,
            peer_down_limit=config.peer_down_limit,
            elimination_limit=config.elimination_limit,
            failure_count_limit=config.failure_count_limit,
        )
        self.advertise_ip = config.effective_advertise_ip()
        self.supernode_peer = Peer(
            peer_id=ids.peer_id(socket.gethostname(), self.advertise_ip, time.time_ns()),
            ip=self.advertise_ip,
            host_name=socket.gethostname(),
            port=config.download_port,
            version=COMPAT_VERSION,
            created=clock(),
        )
        self.registry.add_peer(self.supernode_peer)
        self._probe_locks: dict[str, asyncio.Lock] = {}
        self.download_reports = DownloadReports(metrics)
        self.piece_errors = PieceErrorChecker(self)
        metrics.pieces_in_flight.set_function(
            lambda: sum(s.progress.in_flight for s in self.states.values())
        )

    # ---- registration ---------------------------------------------------------------------

    async def register(self, req: dict[str, Any], peer: Peer | None = None) -> dict[str, Any]:
        """`POST /peer/registry` (§3.1). Raises SupernodeError → HTTP 500.

        Every registration creates a new peer, as the original does; `POST /api/v1/tasks`
        passes the peer created earlier by `POST /api/v1/peers` instead."""
        headers = headers_to_map(req["headers"])
        task_url = req["task_url"] or ids.filter_url(req["raw_url"], req["filter"] or [])
        task_id = ids.task_id(
            task_url,
            md5=req["md5"],
            identifier=req["identifier"],
            range_header=headers.get("Range"),
        )
        origin = OriginRequest(
            url=req["raw_url"],
            headers=tuple(headers.items()),
            insecure=req["insecure"],
            root_cas=tuple(_decode_ca(ca) for ca in req["root_cas"] or []),
        )
        state = await self.task_for(task_id, task_url, req, headers, origin)
        now = self.clock()
        task = state.task
        task.access_time = now
        if peer is None:
            peer = Peer(
                peer_id=ids.peer_id(req["host_name"], req["ip"], time.time_ns()),
                ip=req["ip"],
                host_name=req["host_name"],
                port=req["port"],
                version=req["version"],
                created=now,
            )
            self.registry.add_peer(peer)
            self.metrics.peers.labels(peer.ip).inc()
        pattern = (
            PeerPattern.CDN if req["pattern"] == "cdn" or req["port"] == 0 else PeerPattern.P2P
        )
        old = self.registry.dfget_task(req["cid"], task_id)
        if old is not None:
            state.progress.remove_client(old.cid, now)
            self.metrics.dfgettasks.labels(old.call_system, old.status.value).dec()
        dfget_task = DfgetTask(
            cid=req["cid"],
            task_id=task_id,
            peer_id=peer.peer_id,
            path=req["path"],
            pattern=pattern,
            call_system=req["call_system"],
            super_node_ip=req["super_node_ip"],
            registered_at=now,
        )
        self.registry.add_dfget_task(dfget_task)
        log.info(
            "register peer task, pattern: %s",
            pattern.value,
            extra={"peer": dfget_task.cid, "task": task_id, "component": COMPONENT},
        )
        state.progress.add_client(dfget_task.cid, is_p2p=pattern is PeerPattern.P2P)
        self.metrics.dfgettasks_registered.labels(dfget_task.call_system).inc()
        self._count_dfget_status(dfget_task, None)
        self.trigger_cdn(state)
        cdn_source = "source" if self.config.cdn_pattern is CdnPattern.SOURCE else "supernode"
        return wire.register_data(task_id, task.http_file_length, task.piece_size, cdn_source)

    async def task_for(
        self,
        task_id: str,
        task_url: str,
        req: dict[str, Any],
        headers: dict[str, str],
        origin: OriginRequest,
    ) -> TaskState:
        now = self.clock()
        if self.registry.is_unreachable(task_url, now, self.config.fail_access_interval):
            raise UrlNotReachable(f"url {task_url} is not reachable (cached 404)")
        lock = self._probe_locks.setdefault(task_id, asyncio.Lock())
        async with lock:
            state = self.states.get(task_id)
            if state is not None:
                task = state.task
                if (task.task_url, task.md5, task.identifier) != (
                    task_url,
                    req["md5"],
                    req["identifier"],
                ):
                    raise TaskConflict(f"taskId conflict: {task_id}")
                state.origin = origin
                return state
            length, supports_range = await self._probe(task_url, origin)
            if self.config.cdn_pattern is CdnPattern.SOURCE and (length < 0 or not supports_range):
                raise InvalidValue(
                    "cdn pattern source needs an origin with a known length and Range support"
                )
            piece_size = pieces.piece_size_for(length)
            task = Task(
                task_id=task_id,
                task_url=task_url,
                raw_url=req["raw_url"],
                md5=req["md5"],
                identifier=req["identifier"],
                headers=headers,
                http_file_length=length,
                piece_size=piece_size,
                piece_total=pieces.registration_piece_total(length, piece_size),
                access_time=now,
            )
            state = TaskState(task=task, origin=origin)
            self.states[task_id] = state
            self.registry.tasks[task_id] = task
            self.metrics.tasks_registered.inc()
            self.metrics.tasks.labels(task.cdn_status.value).inc()
            self._probe_locks.pop(task_id, None)
            return state

    async def _probe(self, task_url: str, origin: OriginRequest) -> tuple[int, bool]:
        try:
            result = await self.cdn.probe(origin)
        except OriginAuthRequired as exc:
            raise AuthenticationRequired(f"authentication required: {exc}") from exc
        except OriginNotFound as exc:
            self.registry.unreachable[task_url] = self.clock()
            raise UrlNotReachable(f"url {origin.url} not found: {exc}") from exc
        return result.length, result.supports_range

    def _set_cdn_status(self, task: Task, status: CdnStatus) -> None:
        if task.cdn_status is status:
            return
        self.metrics.tasks.labels(task.cdn_status.value).dec()
        task.cdn_status = status
        self.metrics.tasks.labels(status.value).inc()

    def trigger_cdn(self, state: TaskState) -> None:
        task = state.task
        if task.cdn_status not in (CdnStatus.WAITING, CdnStatus.FAILED, CdnStatus.SOURCE_ERROR):
            return
        self.metrics.cdn_trigger.inc()
        log.info("trigger cdn", extra={"task": task.task_id, "component": "cdn"})
        task.fail_reason = ""
        state.progress.cdn_reset()
        state.fill_done = asyncio.Event()
        if self.config.cdn_pattern is CdnPattern.SOURCE:
            self._source_pattern_ready(state)
            return
        self._set_cdn_status(task, CdnStatus.RUNNING)
        assert state.origin is not None
        spec = FillSpec(
            task_id=task.task_id,
            task_url=task.task_url,
            origin=state.origin,
            http_file_length=task.http_file_length,
            piece_size=task.piece_size,
            md5=task.md5,
            identifier=task.identifier,
        )
        try:
            self.cdn.start_fill(spec, self)
        except Exception as exc:  # a backend that cannot even start: the task fails visibly
            self.metrics.cdn_trigger_failed.inc()
            self.fill_failed(task.task_id, f"cdn trigger failed: {exc}")

    def _source_pattern_ready(self, state: TaskState) -> None:
        """`--cdn-pattern source` (§9.5): no copy; every piece is a raw range of the origin."""
        task = state.task
        total = -(-task.http_file_length // task.piece_size) if task.http_file_length > 0 else 1
        for piece_num in range(total):
            state.progress.cdn_piece_ready(piece_num, "")
        task.piece_total = total
        task.file_length = task.http_file_length
        state.progress.piece_total = total
        self._set_cdn_status(task, CdnStatus.SUCCESS)
        state.fill_done.set()

    # ---- FillListener ---------------------------------------------------------------------

    def piece_ready(self, task_id: str, piece_num: int, piece_md5: str) -> None:
        state = self.states.get(task_id)
        if state is not None:
            state.progress.cdn_piece_ready(piece_num, piece_md5)

    def fill_succeeded(self, task_id: str, outcome: FillOutcome) -> None:
        state = self.states.get(task_id)
        if state is None:
            return
        task = state.task
        task.http_file_length = outcome.http_file_length
        total = pieces.piece_count(outcome.http_file_length, task.piece_size)
        task.piece_total = total
        task.file_length = pieces.wrapped_length(outcome.http_file_length, task.piece_size)
        task.real_md5 = outcome.real_md5
        task.origin_bytes += outcome.origin_bytes
        state.progress.piece_total = total
        for piece_num, md5 in enumerate(outcome.piece_md5s):
            state.progress.cdn_piece_ready(piece_num, md5)
        self._set_cdn_status(task, CdnStatus.SUCCESS)
        log.info(
            "cdn task done, length: %d, origin bytes: %d, cache hit: %s",
            outcome.http_file_length,
            outcome.origin_bytes,
            outcome.cache_hit,
            extra={"task": task_id, "component": "cdn"},
        )
        state.fill_done.set()

    def file_md5_known(self, task_id: str, real_md5: str) -> None:
        state = self.states.get(task_id)
        if state is not None and state.task.cdn_status is CdnStatus.SUCCESS:
            state.task.real_md5 = real_md5

    def fill_failed(self, task_id: str, reason: str) -> None:
        state = self.states.get(task_id)
        if state is None:
            return
        state.task.fail_reason = reason
        self._set_cdn_status(state.task, CdnStatus.FAILED)
        log.warning("cdn task failed: %s", reason, extra={"task": task_id, "component": "cdn"})
        state.fill_done.set()

    # ---- pull -----------------------------------------------------------------------------

    def pull(self, query: dict[str, str], max_new: int | None = None) -> PullReply:
        """`GET /peer/task` (§3.2): always HTTP 200; the reply code carries the outcome."""
        reply = self._pull(query, max_new)
        self.metrics.child(self.metrics.schedule_results, str(reply.code)).inc()
        return reply

    def _pull(self, query: dict[str, str], max_new: int | None) -> PullReply:
        task_id, src_cid = query["task_id"], query["src_cid"]
        if not task_id or not src_cid:
            return PullReply(ResultCode.PARAM_ERROR, msg="taskId and srcCid are required")
        state = self.states.get(task_id)
        dfget_task = self.registry.dfget_task(src_cid, task_id)
        if state is None or dfget_task is None:
            return PullReply(
                ResultCode.TARGET_NOT_FOUND, msg=f"task {task_id} of {src_cid} not found"
            )
        client = state.progress.clients.get(src_cid)
        if client is None:
            return PullReply(ResultCode.TARGET_NOT_FOUND, msg=f"client {src_cid} not found")
        now = self.clock()
        task = state.task
        task.access_time = now
        status = query["status"]
        if status == str(PullStatus.STARTED.value):
            self.set_dfget_status(dfget_task, DfgetTaskStatus.RUNNING)
        elif status == str(PullStatus.RUNNING.value):
            error = self._apply_piece_result(state, client, query, now)
            if error is not None:
                return error
        elif status == str(PullStatus.FINISHED.value):
            ok = query["result"] == str(PieceResult.SUCCESS.value)
            self.set_dfget_status(
                dfget_task, DfgetTaskStatus.SUCCESS if ok else DfgetTaskStatus.FAILED
            )
            return PullReply(ResultCode.PEER_FINISH)
        else:
            return PullReply(ResultCode.PARAM_ERROR, msg=f"invalid status {status!r}")
        if task.cdn_status is CdnStatus.FAILED:
            # dfget now migrates or goes back to source: this download failed here.
            self.set_dfget_status(dfget_task, DfgetTaskStatus.FAILED)
            return PullReply(ResultCode.SYSTEM_ERROR, msg=f"cdn failed: {task.fail_reason}")
        started = time.perf_counter()
        result = schedule(
            state.progress,
            client,
            cdn_success=task.cdn_status is CdnStatus.SUCCESS,
            limits=self.limits,
            now=now,
            rng=self.rng,
            max_new=max_new,
        )
        peer = self.registry.peers.get(dfget_task.peer_id)
        self.metrics.child(self.metrics.schedule_duration, peer.ip if peer else "").observe(
            (time.perf_counter() - started) * 1000
        )
        if result.decision is Decision.FINISH:
            if dfget_task.finished_at is None:
                dfget_task.finished_at = now
                cost_ms = round((now - dfget_task.registered_at) * 1000)
                log.info(
                    "peer task done, cost: %dms",
                    cost_ms,
                    extra={
                        "peer": dfget_task.cid,
                        "task": task_id,
                        "component": COMPONENT,
                        "cost_ms": cost_ms,
                    },
                )
            self.set_dfget_status(dfget_task, DfgetTaskStatus.SUCCESS)
            if dfget_task.pattern is not PeerPattern.P2P:
                client.service_down = True
            return PullReply(
                ResultCode.PEER_FINISH, wire.finish_data(task.file_length, task.real_md5)
            )
        if result.decision is Decision.WAIT:
            return PullReply(
                ResultCode.PEER_WAIT,
                msg=f"taskID: {task_id} cdn status is {task.cdn_status.value.lower()}: peer wait",
            )
        if not result.assignments:
            return PullReply(ResultCode.PEER_CONTINUE)
        items = [
            self._piece_item(state, dfget_task, a.piece_num, a.src) for a in result.assignments
        ]
        return PullReply(ResultCode.PEER_CONTINUE, items)

    def _apply_piece_result(
        self, state: TaskState, client: ClientProgress, query: dict[str, str], now: float
    ) -> PullReply | None:
        result = query["result"]
        if result not in (str(PieceResult.SEMISUC.value), str(PieceResult.FAILED.value)):
            return PullReply(
                ResultCode.PARAM_ERROR, msg=f"invalid result {result!r} for status 701"
            )
        try:
            piece_num = self.piece_num_of(state.task, query["range"])
        except InvalidValue as exc:
            return PullReply(ResultCode.PARAM_ERROR, msg=exc.message)
        src = self.resolve_source(state.task.task_id, query["dst_cid"])
        if result == str(PieceResult.SEMISUC.value):
            state.progress.piece_succeeded(client, piece_num, src, now)
        else:
            state.progress.piece_failed(client, piece_num, src, now, self.limits.elimination_limit)
        return None

    def piece_num_of(self, task: Task, range_text: str) -> int:
        try:
            start, end = pieces.parse_range(range_text)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from exc
        if end - start + 1 != task.piece_size or start % task.piece_size:
            raise InvalidValue(f"range {range_text!r} is not a piece of task {task.task_id}")
        piece_num = start // task.piece_size
        limit = task.piece_total or MAX_PIECE_NUM
        if piece_num >= limit:
            raise InvalidValue(f"range {range_text!r} is beyond the last piece")
        return piece_num

    def resolve_source(self, task_id: str, dst_cid: str) -> str | None:
        """The source key in progress: "" for the supernode, the cid of a known peer, or None."""
        if ids.is_supernode_cid(dst_cid):
            return SUPERNODE
        if dst_cid and self.registry.dfget_task(dst_cid, task_id) is not None:
            return dst_cid
        return None

    def _piece_item(
        self, state: TaskState, dfget_task: DfgetTask, piece_num: int, src: str
    ) -> dict[str, Any]:
        task = state.task
        md5 = state.progress.piece_md5s.get(piece_num, "")
        if src == SUPERNODE:
            source_pattern = self.config.cdn_pattern is CdnPattern.SOURCE
            return wire.piece_item(
                range_=pieces.piece_range(piece_num, task.piece_size),
                piece_num=piece_num,
                piece_size=task.piece_size,
                piece_md5="" if source_pattern else md5,
                cid=ids.supernode_cid(self.advertise_ip, task.task_id),
                peer_ip=dfget_task.super_node_ip or self.advertise_ip,
                peer_port=self.config.download_port,
                path=task.raw_url if source_pattern else ids.cdn_path(task.task_id),
            )
        source = self.registry.dfget_task(src, task.task_id)
        peer = self.registry.peers.get(source.peer_id) if source is not None else None
        assert source is not None and peer is not None  # holders are removed with their peers
        return wire.piece_item(
            range_=pieces.piece_range(piece_num, task.piece_size),
            piece_num=piece_num,
            piece_size=task.piece_size,
            piece_md5=md5,
            cid=source.cid,
            peer_ip=peer.ip,
            peer_port=peer.port,
            path=source.path,
        )

    # ---- reports --------------------------------------------------------------------------

    def piece_success(self, query: dict[str, str]) -> None:
        """`GET /peer/piece/suc` (§3.3). Raises SupernodeError → HTTP 500."""
        task_id, cid, dst_cid = query["task_id"], query["cid"], query["dst_cid"]
        state = self.states.get(task_id)
        if state is None:
            raise NotFound(f"task {task_id} not found")
        src = self.resolve_source(task_id, dst_cid)
        if src is None:
            raise NotFound(f"dstCid {dst_cid} of task {task_id} not found")
        client = state.progress.clients.get(cid)
        if client is None or self.registry.dfget_task(cid, task_id) is None:
            raise NotFound(f"cid {cid} of task {task_id} not found")
        piece_num = self.piece_num_of(state.task, query["piece_range"])
        now = self.clock()
        state.progress.piece_succeeded(client, piece_num, src, now)
        state.progress.add_holder(client, piece_num)
        task = state.task
        start, end = pieces.parse_range(query["piece_range"])
        content = (
            pieces.content_length(piece_num, task.http_file_length, task.piece_size)
            if task.http_file_length >= 0
            else end - start + 1
        )
        if src == SUPERNODE:
            self.metrics.pieces_downloaded_size.inc(end - start + 1)
            self.metrics.cdn_served_bytes.inc(content)
            task.cdn_bytes_served += content
        else:
            self.metrics.p2p_bytes.inc(content)
            task.p2p_bytes += content

    def service_down(self, query: dict[str, str]) -> None:
        """`GET /peer/service/down` (§3.5). Raises NotFound → HTTP 500."""
        task_id, cid = query["task_id"], query["cid"]
        dfget_task = self.registry.dfget_task(cid, task_id)
        state = self.states.get(task_id)
        if dfget_task is None or state is None:
            raise NotFound(f"cid {cid} of task {task_id} not found")
        peer = self.registry.peers.get(dfget_task.peer_id)
        if peer is not None and peer.service_down_time is None:
            peer.service_down_time = self.clock()
        state.progress.service_down(cid)
        for holders in state.progress.holders.values():
            holders.pop(cid, None)

    def download_reported(self, body: dict[str, Any]) -> None:
        """`POST /task/metrics`: count it once; a failed download marks its dfget-task FAILED."""
        if not self.download_reports.record(body):
            return
        dfget_task = self.registry.dfget_task(body["cid"], body["task_id"])
        if dfget_task is not None:
            status = DfgetTaskStatus.SUCCESS if body["success"] else DfgetTaskStatus.FAILED
            self.set_dfget_status(dfget_task, status)

    # ---- dfget-task status ----------------------------------------------------------------

    def set_dfget_status(self, dfget_task: DfgetTask, status: DfgetTaskStatus) -> None:
        if dfget_task.status is status:
            return
        previous = dfget_task.status
        dfget_task.status = status
        self._count_dfget_status(dfget_task, previous)
        if status is DfgetTaskStatus.FAILED:
            self.metrics.dfgettasks_failed.labels(dfget_task.call_system).inc()

    def _count_dfget_status(self, dfget_task: DfgetTask, previous: DfgetTaskStatus | None) -> None:
        gauge = self.metrics.dfgettasks
        if previous is not None:
            gauge.labels(dfget_task.call_system, previous.value).dec()
        gauge.labels(dfget_task.call_system, dfget_task.status.value).inc()

    def forget_dfget_tasks(self, removed: list[DfgetTask], now: float) -> None:
        for dfget_task in removed:
            self.metrics.dfgettasks.labels(dfget_task.call_system, dfget_task.status.value).dec()
            state = self.states.get(dfget_task.task_id)
            if state is not None:
                state.progress.remove_client(dfget_task.cid, now)

    # ---- tasks ----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskState:
        state = self.states.get(task_id)
        if state is None:
            raise NotFound(f"task {task_id} not found")
        return state

    async def delete_task(self, task_id: str, *, full: bool) -> None:
        """Task GC (§9.4); `full` also removes the CDN files."""
        state = self.states.pop(task_id, None)
        if state is None and not (full and self.cdn.data_file(task_id) is not None):
            raise NotFound(f"task {task_id} not found")
        if state is not None:
            removed = self.registry.remove_task(task_id)
            now = self.clock()
            for dfget_task in removed:
                self.metrics.dfgettasks.labels(
                    dfget_task.call_system, dfget_task.status.value
                ).dec()
                peer = self.registry.peers.get(dfget_task.peer_id)
                if peer is not None and peer.service_down_time is None:
                    peer.service_down_time = now
            self.metrics.tasks.labels(state.task.cdn_status.value).dec()
            self.metrics.gc_tasks.inc()
            state.fill_done.set()
        if full:
            await self.cdn.delete(task_id)

    async def close(self) -> None:
        self.piece_errors.close()
        await self.cdn.close()


def _decode_ca(text: str) -> bytes:
    """`rootCAs` arrive base64-encoded (Go `[]byte` in JSON)."""
    import base64
    import binascii

    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("rootCAs must be base64") from exc


__all__ = ["PullReply", "SupernodeError", "SupernodeService", "headers_to_map"]
