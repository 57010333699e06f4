"""Open API jobs over the preheat engine: create, show (live engine state), page, patch, delete."""

# How it works: an Open API job is one row plus one task per preheat-engine job (one per image
# URL, or one per file URL). The engine does the work and owns the dedupe: two clients asking
# for the same URL share one engine job. A task reads its state live from the engine until
# the engine job finishes; then (engine finish listener, or the first read after it) the
# outcome is frozen into the task row, so a later rerun of that engine job by another client
# does not rewrite this job's history. The row's top-level state is the group state, written
# back whenever it changes, so the list's `state=` filter is a plain query.

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from supernode.core import oapi as core
from supernode.core.oapi import JobState, TaskState
from supernode.core.preheat import PreheatJob, PreheatSpec
from supernode.oapi.store import BlobOutcome, JobStore, JobTask, OapiJob
from supernode.preheat.jobs import PreheatEngine, TooManyJobs
from supernode.preheat.manifests import ManifestError
from supernode.store import StoreError

log = logging.getLogger(__name__)
JOB_TYPE_PREHEAT = "preheat"


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated create request: what to store and the engine specs to run."""

    bio: str
    user_id: int
    args_json: str
    cluster_ids: tuple[int, ...]
    specs: tuple[PreheatSpec, ...]
    deadline_s: float | None = None


@dataclass(frozen=True, slots=True)
class TaskView:
    task: JobTask
    state: TaskState
    error: str
    blobs: tuple[BlobOutcome, ...]
    finished_at: float


@dataclass(frozen=True, slots=True)
class JobDetail:
    job: OapiJob
    tasks: tuple[TaskView, ...]


class OapiJobs:
    def __init__(self, store: JobStore, engine: PreheatEngine, clock: Callable[[], float]) -> None:
        self.store, self.engine, self.clock = store, engine, clock
        engine.finish_listeners.append(self._engine_finished)

    async def create(self, new: NewJob) -> OapiJob:
        now = self.clock()
        tasks = []
        for index, spec in enumerate(new.specs):
            task = JobTask(index, f"task_{uuid.uuid4()}", "", spec.url, now)
            try:
                created = await self.engine.create(spec, deadline_s=new.deadline_s, refresh=True)
            except (ManifestError, TooManyJobs, StoreError) as exc:
                # The job still exists and tells why this URL failed (`job_states[].error`).
                tasks.append(_frozen(task, "FAILED", str(exc), now))
                continue
            engine_job = await self.engine.get_job(created.job_id)
            attempt = engine_job.attempt if engine_job is not None else 0
            tasks.append(dataclasses.replace(task, preheat_id=created.job_id, attempt=attempt))
        job = OapiJob(
            id=0,
            task_id=f"group_{uuid.uuid4()}",
            type=JOB_TYPE_PREHEAT,
            bio=new.bio,
            args_json=new.args_json,
            cluster_ids=new.cluster_ids,
            user_id=new.user_id,
            state=JobState.PENDING,
            created_at=now,
            updated_at=now,
            tasks=tuple(tasks),
        )
        stored = await self.store.insert(job)
        log.info("open api job %d (%s): %d preheat task(s)", stored.id, stored.task_id, len(tasks))
        return stored

    async def get(self, job_id: int) -> JobDetail | None:
        job = await self.store.get(job_id)
        return None if job is None else await self._detail(job)

    async def page(
        self, filters: dict[str, object], page: int, per_page: int
    ) -> tuple[list[JobDetail], int]:
        if "state" in filters:
            # Bring every PENDING row up to date first, so the filter sees real states.
            for pending in await self.store.pending():
                await self._detail(pending)
        total = await self.store.count(filters)
        rows = await self.store.page(filters, core.offset(page, per_page), per_page)
        return [await self._detail(job) for job in rows], total

    async def patch(self, job_id: int, changes: dict[str, object]) -> JobDetail | None:
        if await self.store.get(job_id) is None:
            return None
        if changes:
            await self.store.patch(job_id, changes, self.clock())
        return await self.get(job_id)

    async def delete(self, job_id: int) -> bool:
        """Removes the Open API record only: the engine jobs may serve other clients."""
        if await self.store.get(job_id) is None:
            return False
        await self.store.delete(job_id)
        return True

    # ---- state -----------------------------------------------------------------------------

    async def _detail(self, job: OapiJob) -> JobDetail:
        views = tuple([await self._task_view(job.id, t) for t in job.tasks])
        state = core.group_state(v.state for v in views)
        if state is not job.state:
            finished = [v.finished_at for v in views if v.finished_at]
            updated = max(finished) if state is not JobState.PENDING and finished else self.clock()
            await self.store.set_state(job.id, state, updated)
            job = dataclasses.replace(job, state=state, updated_at=updated)
        return JobDetail(job, views)

    async def _task_view(self, job_id: int, task: JobTask) -> TaskView:
        if task.state:
            return _view(task)
        view = await self.engine.view(task.preheat_id)
        if view is None:
            reason = f"preheat job {task.preheat_id} no longer exists"
            frozen = _frozen(task, "FAILED", reason, self.clock())
            await self.store.freeze(job_id, frozen)
            return _view(frozen)
        blobs = await self._blobs(view.job)
        if view.status.finished and (view.parent_id or view.job.attempt == task.attempt):
            frozen = _frozen(task, view.status.value, view.error_msg, view.finished_at, blobs)
            await self.store.freeze(job_id, frozen)
            return _view(frozen)
        state = core.task_state(view.status.value)
        return TaskView(task, state, view.error_msg, blobs, view.finished_at)

    async def _blobs(self, job: PreheatJob) -> tuple[BlobOutcome, ...]:
        if job.redirect_to:  # a redirect job owns no blobs: its target warmed them
            target = await self.engine.get_job(job.redirect_to)
            job = target if target is not None else job
        return tuple(BlobOutcome(b.url, b.status.value, b.error) for b in job.blobs)

    async def _engine_finished(self, engine_job: PreheatJob) -> None:
        followers = await self.store.live_tasks_of(engine_job.id, engine_job.attempt)
        if not followers:
            return
        blobs = await self._blobs(engine_job)
        for job_id, index in followers:
            job = await self.store.get(job_id)
            if job is None or index >= len(job.tasks):
                continue
            task = job.tasks[index]
            status, error = engine_job.status.value, engine_job.error_msg
            await self.store.freeze(
                job_id, _frozen(task, status, error, engine_job.finished_at, blobs)
            )
            refreshed = await self.store.get(job_id)
            if refreshed is not None:
                await self._detail(refreshed)


def _view(task: JobTask) -> TaskView:
    return TaskView(task, core.task_state(task.state), task.error, task.blobs, task.finished_at)


def _frozen(
    task: JobTask, status: str, error: str, at: float, blobs: tuple[BlobOutcome, ...] = ()
) -> JobTask:
    return dataclasses.replace(task, state=status, error=error, finished_at=at, blobs=blobs)
