"""The preheat job runner: create, expand, warm blobs (bounded), deadlines, resume, GC."""

# How it works: every job that is not finished has one asyncio task (`_run`) under a timeout
# at the job's deadline. It takes a job slot, expands an image into blobs, then warms the
# blobs through the TaskWarmer under a shared blob semaphore; the first failing blob fails the
# job and cancels its siblings. Every transition goes through `_update`: pure function from
# `core.preheat`, in-memory copy, then SQLite, so a restart finds the last state and resumes
# (or fails "interrupted by restart" past the deadline). A GC loop drops finished jobs after
# the retention and fails any unfinished job past its deadline that has no task (a safety net).

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from supernode.config import SupernodeConfig
from supernode.core import preheat as core
from supernode.core.preheat import Blob, PreheatJob, PreheatSpec, PreheatStatus, PreheatType
from supernode.preheat.manifests import ManifestError, parse_manifest_url
from supernode.preheat.registry import ExpandRequest, Expansion, RegistryError, expand_image
from supernode.preheat.warmer import TaskWarmer, WarmError, WarmRequest, WarmResult
from supernode.protocol.ids import filter_url, split_filter, task_id
from supernode.protocol.units import format_duration
from supernode.store import PreheatStore, StoreError

log = logging.getLogger(__name__)

MAX_ACTIVE_JOBS = 1024
JOB_SLOTS = 8  # jobs expanding/warming at once; the others stay WAITING
BLOB_SLOTS = 4  # blobs being warmed at once, over all jobs (2 cores, shared origin links)
Expander = Callable[[ExpandRequest], Awaitable[Expansion]]
StatusListener = Callable[[dict[str, int]], None]
FinishListener = Callable[[PreheatJob], Awaitable[None]]


class TooManyJobs(Exception):
    """More unfinished jobs than MAX_ACTIVE_JOBS: the create is refused, nothing is stored."""


class _BlobFailed(Exception):
    """Raised inside the task group once a blob failed, to cancel the other blobs."""


@dataclass(frozen=True, slots=True)
class Created:
    job_id: str
    duplicate: bool = False  # the same work already succeeded (F1: 208)


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as the API shows it: a redirect job mirrors its target; a child is a blob."""

    job: PreheatJob
    status: PreheatStatus
    finished_at: float
    error_msg: str
    progress: tuple[tuple[int, int] | None, ...] = ()
    parent_id: str = ""


def preheat_id(spec: PreheatSpec) -> str:
    """The §8 preheat id: the task id of a plain dfget of the same URL, filter and identifier."""
    url = filter_url(spec.url, split_filter(spec.filter))
    # Go looks up the key "Range" exactly, so a "range" header does not take part.
    return task_id(url, identifier=spec.identifier, range_header=dict(spec.headers).get("Range"))


def content_key(spec: PreheatSpec) -> str:
    if spec.type is not PreheatType.IMAGE:
        return ""
    base = parse_manifest_url(spec.url).base
    return f"{base}|{spec.filter}|{spec.identifier}|{spec.platform}"


class PreheatEngine:
    def __init__(
        self,
        store: PreheatStore,
        warmer: TaskWarmer,
        config: SupernodeConfig,
        *,
        clock: Callable[[], float] = time.time,
        expander: Expander = expand_image,
        on_counts: StatusListener | None = None,
    ) -> None:
        self.store, self.warmer, self.config = store, warmer, config
        self.clock, self.expander, self.on_counts = clock, expander, on_counts
        self._jobs: dict[str, PreheatJob] = {}  # unfinished jobs with a task: freshest state
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._auth: dict[str, str] = {}  # blob Authorization per job (tokens stay in memory)
        self._job_slots = asyncio.Semaphore(JOB_SLOTS)
        self._blob_slots = asyncio.Semaphore(BLOB_SLOTS)
        self._create_lock = asyncio.Lock()
        self._gc_task: asyncio.Task[None] | None = None
        self._saving: set[asyncio.Future[None]] = set()
        # Told about every finished job once it is on disk (the Open API freezes its history).
        self.finish_listeners: list[FinishListener] = []

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        now = self.clock()
        unfinished = await self.store.unfinished()
        for job in sorted(unfinished, key=lambda j: bool(j.redirect_to)):
            if job.redirect_to:
                await self._save(core.follow(job, await self.get_job(job.redirect_to), now))
                continue
            resumed = core.resume(job, now)
            if resumed is None:
                await self._save(core.fail(job, core.INTERRUPTED, now))
            else:
                log.info("preheat %s resumes after a restart", job.id)
                await self._spawn(resumed)
        self._gc_task = asyncio.create_task(self._gc_loop(), name="preheat-gc")
        await self._publish_counts()

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *([self._gc_task] if self._gc_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*self._saving, return_exceptions=True)

    # ---- API -------------------------------------------------------------------------------

    async def create(
        self, spec: PreheatSpec, *, deadline_s: float | None = None, refresh: bool = False
    ) -> Created:
        """`deadline_s` overrides the configured deadline for a new run; `refresh` reruns a
        finished job (see `core.decide_create`)."""
        job_id, key = preheat_id(spec), content_key(spec)
        now, deadline = self.clock(), deadline_s or self._deadline
        async with self._create_lock:
            existing = await self.get_job(job_id)
            if existing is None and spec.type is PreheatType.FILE and not refresh:
                child = await self._child(job_id)
                if child is not None and child.status is not PreheatStatus.FAILED:
                    return Created(job_id, duplicate=child.status is PreheatStatus.SUCCESS)
            same = None
            if existing is None and key:
                found = await self.store.same_content(key, (spec.digest,))
                same = await self.get_job(found.id) if found else None
            decision = core.decide_create(existing, same, spec, refresh=refresh)
            if decision is core.CreateDecision.KEEP:
                return Created(job_id)
            if decision is core.CreateDecision.DUPLICATE:
                return Created(job_id, duplicate=True)
            if len(self._jobs) >= MAX_ACTIVE_JOBS:
                raise TooManyJobs(f"more than {MAX_ACTIVE_JOBS} preheat jobs are in progress")
            if decision is core.CreateDecision.REDIRECT and same is not None:
                job = core.redirect_job(job_id, spec, same, now, deadline)
                await self._save(core.follow(job, same, now))
            elif decision is core.CreateDecision.RERUN and existing is not None:
                await self._spawn(core.rerun(existing, spec, now, deadline))
            else:
                await self._spawn(core.new_job(job_id, spec, now, deadline, content_key=key))
        await self._publish_counts()
        return Created(job_id)

    async def get_job(self, job_id: str) -> PreheatJob | None:
        return self._jobs.get(job_id) or await self.store.get(job_id)

    async def view(self, job_id: str) -> JobView | None:
        job = await self.get_job(job_id)
        if job is not None:
            return await self._view(job)
        hit = await self.store.blob_by_task(job_id)
        if hit is None:
            return None
        parent = self._jobs.get(hit[0].id, hit[0])
        blob = next((b for b in parent.blobs if b.task_id == job_id), hit[1])
        return self._child_view(parent, blob)

    async def views(self) -> list[JobView]:
        """Every job, then the blobs of image jobs as children (Go's list shows both)."""
        out: list[JobView] = []
        for stored in reversed(await self.store.all()):
            job = self._jobs.get(stored.id, stored)
            out.append(await self._view(job))
            if job.spec.type is PreheatType.IMAGE:
                out.extend(self._child_view(job, b) for b in job.blobs)
        return out

    async def delete(self, job_id: str) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._jobs.pop(job_id, None)
        self._auth.pop(job_id, None)
        await self.store.delete([job_id])
        await self._finish_followers(job_id, None)
        await self._publish_counts()

    async def collect(self) -> None:
        """GC: drop finished jobs past the retention; fail orphans past their deadline."""
        now = self.clock()
        old = await self.store.finished_before(now - self.config.preheat_retention)
        # A job is saved as finished a moment before its runner lets go of it; give those
        # runners that moment rather than skipping their jobs until the next sweep.
        finishing = [self._tasks[j.id] for j in old if j.id in self._tasks]
        if finishing:
            await asyncio.wait(finishing, timeout=1.0)
        if old:
            await self.store.delete(j.id for j in old if j.id not in self._jobs)
            log.info("preheat GC removed %d finished jobs", len(old))
        for job in await self.store.unfinished():
            if job.id not in self._tasks and core.overdue(job, now):
                await self._save(core.fail(job, self._timeout_reason(), now))
        await self._publish_counts()

    # ---- the runner ------------------------------------------------------------------------

    async def _spawn(self, job: PreheatJob) -> None:
        self._jobs[job.id] = job
        await self._save(job)
        self._tasks[job.id] = asyncio.create_task(self._run(job.id), name=f"preheat-{job.id[:12]}")

    async def _run(self, job_id: str) -> None:
        loop = asyncio.get_running_loop()
        remaining = max(0.0, self._jobs[job_id].deadline - self.clock())
        timeout = asyncio.timeout_at(loop.time() + remaining)
        try:
            async with timeout, self._job_slots:
                await self._update(job_id, core.start)
                if self._jobs[job_id].spec.type is PreheatType.IMAGE:
                    await self._expand(job_id)
                await self._warm_all(job_id)
        except TimeoutError:
            reason = self._timeout_reason() if timeout.expired() else "internal error: timeout"
            await self._update(job_id, core.fail, reason, self.clock())
        except Exception as exc:  # never leave a job RUNNING because of a bug
            log.exception("preheat %s failed unexpectedly", job_id)
            await self._update(job_id, core.fail, f"internal error: {exc!r}", self.clock())
        finally:
            if self._tasks.get(job_id) is asyncio.current_task():
                del self._tasks[job_id]
            job = self._jobs.get(job_id)
            if job is not None and job.status.finished:
                del self._jobs[job_id]
                self._auth.pop(job_id, None)

    async def _expand(self, job_id: str) -> None:
        job = self._jobs[job_id]
        spec = job.spec
        try:
            ref = parse_manifest_url(spec.url)
            expansion = await self.expander(
                ExpandRequest(
                    ref,
                    spec.headers,
                    spec.platform,
                    spec.username,
                    spec.password,
                    spec.insecure,
                    spec.root_cas,
                )
            )
        except (ManifestError, RegistryError) as exc:
            await self._update(job_id, core.fail, str(exc), self.clock())
            return
        self._auth[job_id] = expansion.authorization
        blobs = []
        for d in expansion.blobs:
            url = ref.blob_url(d.digest)
            tid = self.warmer.task_id_for(self._warm_request(job, url))
            blobs.append(Blob(url, tid, d.digest, d.media_type, d.size, d.platform))
        claimed = job.manifest_digest
        await self._update(job_id, core.expanded, tuple(blobs), expansion.manifest_digest)
        if claimed and claimed != expansion.manifest_digest:
            # The tag moved since the client looked: jobs that followed this one by the
            # claimed digest must do their own work.
            for follower in await self.store.redirects_to(job_id):
                if not follower.status.finished:
                    rerun = core.rerun(follower, follower.spec, self.clock(), self._deadline)
                    await self._spawn(rerun)

    async def _warm_all(self, job_id: str) -> None:
        job = self._jobs[job_id]
        if job.status.finished:
            return
        pending = [i for i, b in enumerate(job.blobs) if b.status is not PreheatStatus.SUCCESS]
        try:
            async with asyncio.TaskGroup() as group:
                for index in pending:
                    group.create_task(self._warm_one(job_id, index))
        except* _BlobFailed:
            pass  # the job already carries the first failing blob's reason
        await self._update(job_id, core.settle, self.clock())

    async def _warm_one(self, job_id: str, index: int) -> None:
        async with self._blob_slots:
            if self._jobs[job_id].status.finished:
                return
            await self._update(job_id, core.blob_started, index)
            job = self._jobs[job_id]
            blob = job.blobs[index]
            try:
                result = await self.warmer.warm(self._warm_request(job, blob.url))
                problem, cache_hit = _verify(blob, result), result.cache_hit
            except WarmError as exc:
                problem, cache_hit = str(exc) or "warming failed", False
            except Exception as exc:  # translated once: the warmer is another team's code
                log.exception("warming %s failed unexpectedly", blob.url)
                problem, cache_hit = f"internal error: {exc!r}", False
            if problem is not None:
                await self._update(job_id, core.blob_failed, index, problem, self.clock())
                raise _BlobFailed(problem)
            await self._update(job_id, core.blob_succeeded, index, cache_hit, self.clock())

    def _warm_request(self, job: PreheatJob, url: str) -> WarmRequest:
        headers = job.spec.headers
        auth = self._auth.get(job.id, "")
        if auth:
            headers = (*((k, v) for k, v in headers if k.lower() != "authorization"),)
            headers += (("Authorization", auth),)
        return WarmRequest(
            url=url,
            headers=headers,
            filter=tuple(split_filter(job.spec.filter)),
            identifier=job.spec.identifier,
            insecure=job.spec.insecure,
            root_cas=job.spec.root_cas,
        )

    # ---- state plumbing --------------------------------------------------------------------

    async def _update(self, job_id: str, step: Callable[..., PreheatJob], *args: Any) -> None:
        before = self._jobs.get(job_id)
        if before is None:  # deleted meanwhile
            return
        after = step(before, *args)
        if after is before:
            return
        self._jobs[job_id] = after
        await self._save(after)
        if after.status is not before.status:
            if after.status.finished:
                log.info("preheat %s %s %s", job_id, after.status, after.error_msg)
                await self._finish_followers(job_id, after)
            await self._publish_counts()

    async def _save(self, job: PreheatJob) -> None:
        # A save outlives the cancellation of the task that asked for it (a shutdown right
        # after a job finished must not leave it RUNNING on disk); `stop` waits for it.
        save = asyncio.ensure_future(self.store.save(job))
        self._saving.add(save)
        save.add_done_callback(self._saving.discard)
        try:
            await asyncio.shield(save)
        except StoreError:
            # The in-memory state still moves on; the next save (or a restart) catches up.
            log.exception("cannot persist preheat job %s", job.id)
        if job.status.finished:
            for listener in self.finish_listeners:
                try:
                    await listener(job)
                except Exception:  # a listener's bug must not break the engine
                    log.exception("preheat finish listener failed for %s", job.id)

    async def _finish_followers(self, target_id: str, target: PreheatJob | None) -> None:
        now = self.clock()
        for follower in await self.store.redirects_to(target_id):
            if not follower.status.finished:
                await self._save(core.follow(follower, target, now))

    async def _publish_counts(self) -> None:
        if self.on_counts is not None:
            with contextlib.suppress(StoreError):
                self.on_counts(await self.store.count_by_status())

    async def _gc_loop(self) -> None:
        interval = min(300.0, max(0.05, self.config.preheat_retention / 10))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.collect()
            except StoreError:
                log.exception("preheat GC failed")

    async def _child(self, task: str) -> Blob | None:
        view = await self.view(task)
        return view.job.blobs[0] if view is not None and view.parent_id else None

    async def _view(self, job: PreheatJob) -> JobView:
        status, finished, error = job.status, job.finished_at, job.error_msg
        if job.redirect_to:
            error = core.redirect_message(job.redirect_to)
            target = await self.get_job(job.redirect_to)
            if target is not None and not job.status.finished:
                status, finished = target.status, target.finished_at
        progress = tuple(
            self.warmer.progress(b.task_id) if b.status is PreheatStatus.RUNNING else None
            for b in job.blobs
        )
        return JobView(job, status, finished, error, progress)

    def _child_view(self, parent: PreheatJob, blob: Blob) -> JobView:
        child = core.PreheatJob(
            id=blob.task_id,
            spec=PreheatSpec(
                PreheatType.FILE, blob.url, parent.spec.filter, parent.spec.identifier
            ),
            status=blob.status,
            created_at=parent.created_at,
            deadline=parent.deadline,
            finished_at=blob.finished_at,
            error_msg=blob.error,
            blobs=(blob,),
            expanded=True,
        )
        progress = (
            self.warmer.progress(blob.task_id) if blob.status is PreheatStatus.RUNNING else None
        )
        return JobView(child, blob.status, blob.finished_at, blob.error, (progress,), parent.id)

    @property
    def _deadline(self) -> float:
        return self.config.preheat_deadline

    def _timeout_reason(self) -> str:
        return f"timeout: not finished within {format_duration(self.config.preheat_deadline)}"


def _verify(blob: Blob, result: WarmResult) -> str | None:
    """The registry's promise about the blob, checked against what the CDN stored."""
    if blob.size >= 0 and result.http_file_length >= 0 and result.http_file_length != blob.size:
        got = result.http_file_length
        return f"size mismatch: the manifest says {blob.size} bytes, the origin sent {got}"
    # The warmer reports the sha256 of what the CDN holds ("" when it cannot tell).
    actual = result.sha256
    algorithm, _, expected = blob.digest.partition(":")
    if actual and algorithm == "sha256" and actual != expected:
        return f"digest mismatch: expected {blob.digest}, the origin sent sha256:{actual}"
    return None
