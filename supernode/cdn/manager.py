"""`DiskCdn`: the disk cache behind the `Cdn` contract: triggers, cache reuse, piece checks, GC.

How it works: `start_fill` runs one background trigger per task. The trigger reads the
`.meta` (detectCache, §9.3): a same-file, unexpired, finished cache is a full hit (every piece
reported from the `.md5` file or a re-read of the data file); an unfinished one resumes with
Range when the origin allows it; anything else starts over. Fills stream through
`fill.PieceSink`. Every piece that lands bumps the task's ready prefix, which is what the
download port may serve. Tasks being filled or served (`pinned`) are in use, so the disk
GC never removes their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from supernode.cdn.fill import (
    FillFailed,
    Lanes,
    PieceSink,
    if_range_value,
    pump,
    scan_finished,
    scan_pieces,
)
from supernode.cdn.interface import (
    FillListener,
    FillOutcome,
    FillSpec,
    OriginError,
    OriginRequest,
    ProbeResult,
)
from supernode.cdn.source import OriginClient, Validators
from supernode.cdn.storage import CacheStore, FileMeta, InvalidTaskId, gc_order
from supernode.config import SupernodeConfig
from supernode.metrics import SupernodeMetrics
from supernode.protocol.ids import is_task_id
from supernode.protocol.pieces import (
    MAX_PIECE_SIZE,
    PIECE_HEAD_SIZE,
    PIECE_WRAP_SIZE,
    piece_count,
    wrapped_length,
)

log = logging.getLogger(__name__)
PieceTiming = Callable[[str, int, float, float], None]


@dataclass(slots=True)
class TaskState:
    """In-memory progress of a task's data file: the verified prefix the port may serve."""

    piece_size: int
    ready: int = 0
    complete: bool = False
    size: int = -1  # wrapped length once complete
    piece_md5s: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Servable:
    """What the download port may send from a data file: bytes [0, limit)."""

    path: Path
    limit: int
    complete: bool


class DiskCdn:
    """The real CDN. Use it from one event loop; `await close()` at the end."""

    def __init__(
        self,
        config: SupernodeConfig,
        metrics: SupernodeMetrics,
        *,
        clock: Callable[[], float] = time.time,
        disk_free: Callable[[Path], int] | None = None,
        on_piece_timing: PieceTiming | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.store = CacheStore(config.download_root)
        self.source = OriginClient(config.origin_rate_limit)
        self.lanes = Lanes(
            ThreadPoolExecutor(1, thread_name_prefix="cdn-io"),
            ThreadPoolExecutor(1, thread_name_prefix="cdn-piece"),
            ThreadPoolExecutor(1, thread_name_prefix="cdn-file"),
        )
        self._disk_free = disk_free or (lambda path: shutil.disk_usage(path).free)
        self.on_piece_timing = on_piece_timing
        self.states: dict[str, TaskState] = {}
        self._fills: dict[str, asyncio.Task[None]] = {}
        self._pins: Counter[str] = Counter()

    # -- the Cdn contract ---------------------------------------------------------------

    async def probe(self, origin: OriginRequest) -> ProbeResult:
        return await self.source.probe(origin)

    def start_fill(self, spec: FillSpec, listener: FillListener) -> None:
        running = self._fills.get(spec.task_id)
        if running is not None and not running.done():
            return
        task = asyncio.get_running_loop().create_task(self._run(spec, listener))
        self._fills[spec.task_id] = task
        task.add_done_callback(lambda t: self._fill_done(spec.task_id, t))

    async def wait_fill(self, task_id: str) -> None:
        """Until the task's background fill (including its final bookkeeping) has ended."""
        fill = self._fills.get(task_id)
        if fill is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(fill)

    def data_file(self, task_id: str) -> Path | None:
        try:
            path = self.store.data_path(task_id)
        except InvalidTaskId:
            return None
        return path if path.is_file() else None

    async def check_piece(self, task_id: str, piece_num: int, expected_md5: str) -> bool:
        """§9.6: True while the bytes on disk match the recorded md5 or the reporter's."""
        if not is_task_id(task_id) or piece_num < 0:
            return False
        state = self.states.get(task_id)
        recorded = ""
        piece_size = state.piece_size if state else 0
        if state is not None and piece_num < len(state.piece_md5s):
            recorded = state.piece_md5s[piece_num]
        else:
            meta = self.store.read_meta(task_id)
            if meta is not None and meta.success:
                piece_size = meta.piece_size
                md5s = self.store.read_md5s(task_id, meta.real_md5) or ()
                recorded = md5s[piece_num] if piece_num < len(md5s) else ""
        if not recorded or piece_size <= 0:
            return False
        length = int(recorded.rpartition(":")[2] or 0)
        loop = asyncio.get_running_loop()
        try:
            actual = await loop.run_in_executor(
                None, self.store.piece_md5, task_id, piece_num * piece_size, length
            )
        except OSError:
            return False
        digest = actual.partition(":")[0]
        return digest in (recorded.partition(":")[0], expected_md5.partition(":")[0])

    async def content_sha256(self, task_id: str) -> str:
        """Re-read a complete data file piece by piece and hash the raw content (for preheat's
        digest check); "" unless the task is complete."""
        state = self.states.get(task_id)
        path = self.data_file(task_id)
        if state is None or not state.complete or path is None:
            return ""
        with self.pinned(task_id):
            return str(
                await asyncio.get_running_loop().run_in_executor(
                    self.lanes.file, raw_digest, path, state.piece_size, "sha256"
                )
            )

    def gc_sweep(self, live_task_ids: frozenset[str], now: float) -> int:
        """§9.4 disk GC in `storage.gc_order`; ceil(n*cleanRatio/10) per run; bytes reclaimed."""
        root = self.config.download_root
        if not root.is_dir():
            return 0
        free = self._disk_free(root)
        if free > self.config.young_gc_threshold:
            return 0
        full = free <= self.config.full_gc_threshold
        candidates = gc_order(
            self.store,
            lambda t: t in live_task_ids or self.in_use(t),
            int(now * 1000),
            int(self.config.interval_threshold * 1000),
            full=full,
        )
        quota = math.ceil(len(candidates) * self.config.clean_ratio / 10)
        reclaimed = removed = 0
        for task_id in candidates[:quota]:
            if self.in_use(task_id) or task_id in live_task_ids:
                continue
            reclaimed += self.store.remove(task_id)
            self.states.pop(task_id, None)
            removed += 1
        # The in-memory progress of finished tasks the control plane forgot is not needed.
        for task_id in [t for t, s in self.states.items() if s.complete and t not in live_task_ids]:
            if not self.in_use(task_id):
                del self.states[task_id]
        if removed:
            self.metrics.gc_disks.inc(removed)
            self.metrics.last_gc_disks_timestamp.set(now)
            self.metrics.gc_reclaimed_bytes.inc(reclaimed)
        return reclaimed

    async def delete(self, task_id: str) -> None:
        if not is_task_id(task_id):
            return
        fill = self._fills.pop(task_id, None)
        if fill is not None and not fill.done():
            fill.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fill
        self.states.pop(task_id, None)
        await asyncio.get_running_loop().run_in_executor(None, self.store.remove, task_id)

    async def close(self) -> None:
        fills = [t for t in self._fills.values() if not t.done()]
        for fill in fills:
            fill.cancel()
        for fill in fills:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fill
        self._fills.clear()
        await self.source.close()
        for lane in self.lanes.all():
            lane.shutdown(wait=True, cancel_futures=False)

    # -- for the download port ------------------------------------------------------------

    def servable(self, task_id: str) -> Servable | None:
        """None unless the task's data file may be served (verified pieces only)."""
        if not is_task_id(task_id):
            return None
        path = self.store.data_path(task_id)
        state = self.states.get(task_id)
        if state is not None:
            if state.complete:
                return Servable(path, state.size, True)
            if task_id in self._fills and state.ready:
                return Servable(path, state.ready * state.piece_size, False)
            return None
        meta = self.store.read_meta(task_id)
        if meta is None or not (meta.finish and meta.success):
            return None
        return Servable(path, meta.file_length, True)

    def in_use(self, task_id: str) -> bool:
        return self._pins[task_id] > 0 or task_id in self._fills

    @contextlib.contextmanager
    def pinned(self, task_id: str) -> Iterator[None]:
        """Mark a task's files in use (the download port, while it sends them)."""
        self._pins[task_id] += 1
        try:
            yield
        finally:
            self._pins[task_id] -= 1
            if self._pins[task_id] <= 0:
                del self._pins[task_id]

    # -- internals ------------------------------------------------------------------------

    async def _run(self, spec: FillSpec, listener: FillListener) -> None:
        reason = ""
        try:
            await self._trigger(spec, listener)
            return
        except asyncio.CancelledError:
            raise
        except InvalidTaskId as exc:
            reason = str(exc)
        except (FillFailed, OriginError) as exc:
            reason = str(exc)
            self.metrics.cdn_download_failed.inc()
        except OSError as exc:
            reason = f"cache disk error: {exc.strerror or exc}"
            if exc.filename:
                reason += f": {exc.filename}"
        except Exception as exc:
            log.exception("CDN fill of %s crashed", spec.task_id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
        state = self.states.get(spec.task_id)
        if state is not None and not state.complete:
            del self.states[spec.task_id]
        _tell(listener.fill_failed, spec.task_id, reason)

    def _fill_done(self, task_id: str, task: asyncio.Task[None]) -> None:
        if self._fills.get(task_id) is task:
            del self._fills[task_id]

    def report_piece(self, listener: FillListener, task_id: str, num: int, md5: str) -> None:
        """Record a verified piece (pieces land in order) and tell the control plane."""
        state = self.states.get(task_id)
        if state is not None:
            if num == len(state.piece_md5s):
                state.piece_md5s.append(md5)
            state.ready = max(state.ready, num + 1)
        _tell(listener.piece_ready, task_id, num, md5)

    def new_sink(
        self, fd: int, spec: FillSpec, listener: FillListener, **kwargs: object
    ) -> PieceSink:
        def on_piece(num: int, md5: str, last_byte_at: float) -> None:
            self.report_piece(listener, spec.task_id, num, md5)
            if self.on_piece_timing is not None:
                self.on_piece_timing(spec.task_id, num, last_byte_at, time.monotonic())

        return PieceSink(
            fd,
            spec.piece_size,
            spec.http_file_length,
            self.lanes,
            on_piece,
            clock=time.monotonic,
            **kwargs,  # type: ignore[arg-type]
        )

    def fresh_meta(self, spec: FillSpec) -> FileMeta:
        return FileMeta(
            task_id=spec.task_id,
            url=spec.task_url,
            piece_size=spec.piece_size,
            http_file_len=spec.http_file_length,
            biz_id=spec.identifier,
            access_time=int(self.clock() * 1000),
            md5=spec.md5,
        )

    # -- detectCache and the fill (§9.3) ---------------------------------------------------

    async def _io(self, func: Callable[..., object], *args: object) -> object:
        """Small blocking file work (fsyncs) off the loop."""
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def _trigger(self, spec: FillSpec, listener: FillListener) -> None:
        self.store.check_id(spec.task_id)
        if not PIECE_WRAP_SIZE < spec.piece_size <= MAX_PIECE_SIZE:
            raise FillFailed(f"invalid piece size {spec.piece_size}")
        meta = self.store.read_meta(spec.task_id)
        if meta is not None and _same_file(spec, meta):
            validators = Validators(meta.last_modified, meta.etag)
            fresh = bool(meta.last_modified or meta.etag) and await self.source.unchanged(
                spec.origin, validators
            )
            if fresh and meta.finish and meta.success:
                if await self._full_hit(spec, meta, listener):
                    return
            elif (
                fresh
                and not meta.finish
                and meta.http_file_len >= 0
                and await self.source.supports_range(spec.origin)
            ):
                await self._fill(spec, listener, meta)
                return
        await self._fill(spec, listener, None)

    async def _full_hit(self, spec: FillSpec, meta: FileMeta, listener: FillListener) -> bool:
        """Report every piece of a finished cache file; False when the file does not check out."""
        task_id, count = spec.task_id, piece_count(meta.http_file_len, meta.piece_size)
        if meta.http_file_len < 0 or self.store.data_size(task_id) != meta.file_length:
            return False
        state = self.states.get(task_id)
        md5s: tuple[str, ...] | None = None
        if state is not None and state.complete and len(state.piece_md5s) == count:
            md5s = tuple(state.piece_md5s)
        else:
            md5s = self.store.read_md5s(task_id, meta.real_md5)
        if md5s is None or len(md5s) != count:
            # Slow path: re-read the data file; it must give the recorded file md5.
            scan = await self._io(
                scan_finished,
                self.store.data_path(task_id),
                meta.piece_size,
                meta.http_file_len,
                meta.real_md5,
            )
            if scan is None:
                return False
            md5s = scan  # type: ignore[assignment]
            await self._io(self.store.write_md5s, task_id, md5s, meta.real_md5)
        now_ms = int(self.clock() * 1000)
        touched = meta.replace(access_time=now_ms, interval=max(0, now_ms - meta.access_time))
        await self._io(self.store.write_meta, touched)
        assert md5s is not None
        self.states[task_id] = TaskState(meta.piece_size, count, True, meta.file_length, list(md5s))
        for num, md5 in enumerate(md5s):
            self.report_piece(listener, task_id, num, md5)
        self.metrics.cdn_cache_hit.inc()
        outcome = FillOutcome(meta.http_file_len, meta.real_md5, tuple(md5s), cache_hit=True)
        _tell(listener.fill_succeeded, task_id, outcome)
        return True

    async def _fill(self, spec: FillSpec, listener: FillListener, resume: FileMeta | None) -> None:
        """Fetch from the origin (from the first incomplete piece when resuming)."""
        task_id, store = spec.task_id, self.store
        loop = asyncio.get_running_loop()
        if resume is not None:
            spec = dataclasses.replace(spec, http_file_length=resume.http_file_len)
            meta = resume.replace(access_time=int(self.clock() * 1000))
            fd = store.open_data(task_id, truncate=False)
            try:
                scan = await loop.run_in_executor(
                    self.lanes.io, scan_pieces, fd, spec.piece_size, spec.http_file_length
                )
                # Cut what follows the last whole piece; a complete file keeps its short last
                # piece as it is (extending it would add zeros to the served bytes).
                end = scan.pieces * spec.piece_size
                if spec.http_file_length >= 0:
                    end = min(end, wrapped_length(spec.http_file_length, spec.piece_size))
                os.ftruncate(fd, end)
            except BaseException:
                os.close(fd)
                raise
            if_range = if_range_value(Validators(resume.last_modified, resume.etag))
        else:
            meta = self.fresh_meta(spec)
            await self._io(store.remove, task_id)
            await self._io(store.write_meta, meta)
            fd = store.open_data(task_id, truncate=True)
            scan, if_range = None, ""
        state = self.states[task_id] = TaskState(spec.piece_size)
        if scan is not None:
            for num, md5 in enumerate(scan.piece_md5s):
                self.report_piece(listener, task_id, num, md5)
            sink = self.new_sink(
                fd,
                spec,
                listener,
                start_piece=scan.pieces,
                file_md5=scan.file_md5 if spec.md5 else None,
            )
        else:
            sink = self.new_sink(fd, spec, listener, file_md5=hashlib.md5() if spec.md5 else None)

        async def on_open(validators: Validators) -> None:
            nonlocal meta
            meta = meta.replace(last_modified=validators.last_modified_ms, etag=validators.etag)
            await self._io(store.write_meta, meta)

        self.metrics.cdn_download.inc()
        try:
            if scan is not None and scan.pieces == piece_count(
                spec.http_file_length, spec.piece_size
            ):
                await sink.finish()  # the file was complete already: nothing to fetch
            else:
                await pump(self.source, spec.origin, sink, on_open=on_open, if_range=if_range)
            outcome = self._check_end(spec, sink, state)
        except asyncio.CancelledError:
            sink.close_fd_after_jobs()  # a cancelled fill stays resumable
            raise
        except Exception:
            sink.close_fd_after_jobs()
            with contextlib.suppress(OSError):
                await self._io(store.write_meta, meta.replace(finish=True, success=False))
            raise
        finally:
            self.metrics.cdn_download_size.inc(sink.origin_bytes)
            self.metrics.origin_bytes.inc(sink.origin_bytes)
        _tell(listener.fill_succeeded, task_id, outcome)
        real_md5 = outcome.real_md5
        # Durable before the .md5 and .meta say "success" (a crash meanwhile means a resume).
        try:
            synced = loop.run_in_executor(self.lanes.io, os.fdatasync, fd)
            if not real_md5:
                # Every piece is verified and served already; the file md5 (for `.md5`, `.meta`
                # and later 600 replies) is read back from the page cache, off the hot path.
                path = store.data_path(task_id)
                real_md5 = str(
                    await loop.run_in_executor(
                        self.lanes.file, raw_digest, path, spec.piece_size, "md5"
                    )
                )
                _tell(listener.file_md5_known, task_id, real_md5)
            await synced
            await self._io(store.write_md5s, task_id, outcome.piece_md5s, real_md5)
            done = meta.replace(
                finish=True,
                success=True,
                http_file_len=outcome.http_file_length,
                file_length=state.size,
                real_md5=real_md5,
            )
            await self._io(store.write_meta, done)
        except OSError as exc:
            log.warning(
                "task %s: cache files not recorded (%s): no reuse after restart", task_id, exc
            )
        finally:
            sink.close_fd_after_jobs()

    def _check_end(self, spec: FillSpec, sink: PieceSink, state: TaskState) -> FillOutcome:
        real_md5 = sink.file_md5.hexdigest() if sink.file_md5 is not None else ""
        if spec.md5 and spec.md5.lower() != real_md5:
            raise FillFailed(f"md5 mismatch: expected {spec.md5}, origin bytes have {real_md5}")
        length = sink.received
        count = piece_count(length, spec.piece_size)
        if len(state.piece_md5s) != count:
            raise FillFailed(f"internal: {len(state.piece_md5s)} of {count} pieces recorded")
        state.size = wrapped_length(length, spec.piece_size)
        state.ready = count
        state.complete = True
        return FillOutcome(
            length, real_md5, tuple(state.piece_md5s), origin_bytes=sink.origin_bytes
        )


def _tell(event: Callable[..., None], task_id: str, *args: object) -> None:
    """Call a FillListener method; a listener's bug is logged, never allowed to stop a fill."""
    try:
        event(task_id, *args)
    except Exception:
        log.exception("%s listener of %s raised", event.__name__, task_id)


def _same_file(spec: FillSpec, meta: FileMeta) -> bool:
    """§9.3 step 1, plus: a known origin length must still be the recorded one."""
    if (meta.piece_size, meta.task_id, meta.url) != (spec.piece_size, spec.task_id, spec.task_url):
        return False
    if spec.md5 and spec.md5 != meta.md5:
        return False
    if not spec.md5 and spec.identifier != meta.biz_id:
        return False
    return not (0 <= spec.http_file_length != meta.http_file_len >= 0)


def raw_digest(path: Path, piece_size: int, algorithm: str) -> str:
    """The digest of the content of every wrapped piece of `path` (headers and trailers
    skipped), read into one reused buffer (blocking)."""
    digest = hashlib.new(algorithm)
    buffer = bytearray(piece_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            while count < piece_size:  # readinto may stop short; a short read only at the end
                more = handle.readinto(view[count:])
                if not more:
                    break
                count += more
            digest.update(view[PIECE_HEAD_SIZE : count - 1])
    return digest.hexdigest()
