"""The preheat job state machine: what a job is, how it moves, what a create request decides."""

# How it works: a job is created WAITING with a deadline (created + preheat_deadline). The
# runner moves it to RUNNING, an image job then gets its blob list from the manifest
# (`expanded`), a file job has a single blob from the start. Each blob goes WAITING → RUNNING →
# SUCCESS | FAILED; the first failing blob fails the job with `<blob url> <reason>`, the last
# succeeding blob makes it SUCCESS. `fail` ends any job that is not finished yet (deadline,
# bad manifest, restart too late); a finished job never changes again except by `rerun`.
# A redirect job owns no work: it points at another job doing the same work (same repository,
# same manifest digest) and shows that job's state, with Harbor's redirect errorMsg.

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

REDIRECT_PHRASE = "preheat task already exists, id:"
INTERRUPTED = "interrupted by restart"


class PreheatStatus(StrEnum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (PreheatStatus.SUCCESS, PreheatStatus.FAILED)


class PreheatType(StrEnum):
    IMAGE = "image"
    FILE = "file"


class CreateDecision(StrEnum):
    NEW = "new"  # store a fresh job and run it (201)
    KEEP = "keep"  # the same job is still in progress: answer its id again (201)
    DUPLICATE = "duplicate"  # the same job already succeeded (208)
    RERUN = "rerun"  # the same id failed before, or its tag now names other content (201)
    REDIRECT = "redirect"  # another job already does this work: point at it (201)


@dataclass(frozen=True, slots=True)
class PreheatSpec:
    """What was asked. `platform`: "" = the supernode's own, "all", or "os/arch[/variant]"."""

    type: PreheatType
    url: str
    filter: str = ""
    identifier: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    platform: str = ""
    username: str = ""
    password: str = ""
    insecure: bool = False
    root_cas: tuple[bytes, ...] = ()
    digest: str = ""  # Harbor's artifact digest, when the client sends one

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True, slots=True)
class Blob:
    """One file to warm: a layer or config blob of an image, or the URL of a file job."""

    url: str
    task_id: str
    digest: str = ""
    media_type: str = ""
    size: int = -1
    platform: str = ""
    status: PreheatStatus = PreheatStatus.WAITING
    error: str = ""
    cache_hit: bool = False
    finished_at: float = 0.0


@dataclass(frozen=True, slots=True)
class PreheatJob:
    id: str
    spec: PreheatSpec
    status: PreheatStatus
    created_at: float
    deadline: float
    finished_at: float = 0.0
    error_msg: str = ""
    blobs: tuple[Blob, ...] = ()
    expanded: bool = False
    manifest_digest: str = ""
    content_key: str = ""  # jobs with equal keys and digests warm the same blobs
    redirect_to: str = ""
    attempt: int = 1

    @property
    def blobs_done(self) -> int:
        return sum(1 for b in self.blobs if b.status is PreheatStatus.SUCCESS)


def new_job(
    job_id: str, spec: PreheatSpec, now: float, deadline_s: float, *, content_key: str = ""
) -> PreheatJob:
    """A fresh WAITING job; a file job knows its only blob already."""
    blobs: tuple[Blob, ...] = ()
    if spec.type is PreheatType.FILE:
        blobs = (Blob(url=spec.url, task_id=job_id, digest=blob_digest_of(spec.url)),)
    return PreheatJob(
        id=job_id,
        spec=spec,
        status=PreheatStatus.WAITING,
        created_at=now,
        deadline=now + deadline_s,
        blobs=blobs,
        expanded=spec.type is PreheatType.FILE,
        # The digest the client claims, until the manifest tells the real one: this is what
        # lets several tags of one artifact (Harbor sends one job per tag) share the work.
        manifest_digest=spec.digest if spec.type is PreheatType.IMAGE else "",
        content_key=content_key,
    )


def rerun(old: PreheatJob, spec: PreheatSpec, now: float, deadline_s: float) -> PreheatJob:
    job = new_job(old.id, spec, now, deadline_s, content_key=old.content_key)
    return dataclasses.replace(job, attempt=old.attempt + 1)


def redirect_job(
    job_id: str, spec: PreheatSpec, target: PreheatJob, now: float, deadline_s: float
) -> PreheatJob:
    job = new_job(job_id, spec, now, deadline_s, content_key=target.content_key)
    return dataclasses.replace(
        job, blobs=(), expanded=True, redirect_to=target.id, manifest_digest=target.manifest_digest
    )


def redirect_message(target_id: str) -> str:
    """Exactly the Go supernode's DfError text, which Harbor 2.8+ cuts the id out of."""
    return '{"Code":208,"Msg":"' + REDIRECT_PHRASE + target_id + '"}'


def decide_create(
    existing: PreheatJob | None,
    same_content: PreheatJob | None,
    spec: PreheatSpec,
    *,
    refresh: bool = False,
) -> CreateDecision:
    """What a create request does, given the job with its id and a job with the same content.
    `refresh` (the Open API: every POST is new work) reruns a finished job instead of
    answering "duplicate": a tag may name new blobs now; cached blobs are cheap cache hits."""
    if existing is not None:
        if not existing.status.finished:
            return CreateDecision.KEEP
        if refresh:
            return CreateDecision.RERUN
        if existing.status is PreheatStatus.FAILED:
            # Go answers 208 here too, which Harbor 2.3+ reports as success: we retry instead.
            return CreateDecision.RERUN
        moved = spec.digest and existing.manifest_digest and spec.digest != existing.manifest_digest
        return CreateDecision.RERUN if moved else CreateDecision.DUPLICATE
    if same_content is not None and same_content.status is not PreheatStatus.FAILED:
        return CreateDecision.REDIRECT
    return CreateDecision.NEW


def start(job: PreheatJob) -> PreheatJob:
    if job.status is not PreheatStatus.WAITING:
        return job
    return dataclasses.replace(job, status=PreheatStatus.RUNNING)


def expanded(job: PreheatJob, blobs: tuple[Blob, ...], manifest_digest: str) -> PreheatJob:
    """The blob list from the manifest; blobs already warmed (before a restart) stay done."""
    if job.status.finished:
        return job
    done = {b.task_id: b for b in job.blobs if b.status is PreheatStatus.SUCCESS}
    merged = tuple(done.get(b.task_id, b) for b in blobs)
    return dataclasses.replace(job, blobs=merged, expanded=True, manifest_digest=manifest_digest)


def blob_started(job: PreheatJob, index: int) -> PreheatJob:
    return _set_blob(job, index, status=PreheatStatus.RUNNING)


def blob_succeeded(job: PreheatJob, index: int, cache_hit: bool, now: float) -> PreheatJob:
    job = _set_blob(job, index, status=PreheatStatus.SUCCESS, cache_hit=cache_hit, finished_at=now)
    return settle(job, now)


def settle(job: PreheatJob, now: float) -> PreheatJob:
    """SUCCESS once every blob is; a job with no blob at all cannot succeed."""
    if job.status.finished or not job.expanded or job.blobs_done < len(job.blobs):
        return job
    if not job.blobs:
        return fail(job, "nothing to preheat", now)
    return dataclasses.replace(job, status=PreheatStatus.SUCCESS, finished_at=now)


def blob_failed(job: PreheatJob, index: int, reason: str, now: float) -> PreheatJob:
    job = _set_blob(job, index, status=PreheatStatus.FAILED, error=reason, finished_at=now)
    return fail(job, f"{job.blobs[index].url} {reason}", now)


def fail(job: PreheatJob, reason: str, now: float) -> PreheatJob:
    if job.status.finished:
        return job
    return dataclasses.replace(job, status=PreheatStatus.FAILED, error_msg=reason, finished_at=now)


def follow(job: PreheatJob, target: PreheatJob | None, now: float) -> PreheatJob:
    """A redirect job ends when its target ends (or disappears)."""
    if job.status.finished:
        return job
    if target is None:
        return fail(job, f"the job it followed ({job.redirect_to}) was deleted", now)
    if not target.status.finished:
        return job
    return dataclasses.replace(
        job, status=target.status, error_msg=target.error_msg, finished_at=target.finished_at
    )


def resume(job: PreheatJob, now: float) -> PreheatJob | None:
    """After a restart: the job to run again (RUNNING blobs back to WAITING), or None if it
    cannot make its deadline any more (the caller then fails it with INTERRUPTED)."""
    if job.status.finished or now >= job.deadline:
        return None
    blobs = tuple(
        dataclasses.replace(b, status=PreheatStatus.WAITING)
        if b.status is PreheatStatus.RUNNING
        else b
        for b in job.blobs
    )
    return dataclasses.replace(job, blobs=blobs)


def overdue(job: PreheatJob, now: float) -> bool:
    return not job.status.finished and now >= job.deadline


def expired(job: PreheatJob, now: float, retention_s: float) -> bool:
    return job.status.finished and job.finished_at + retention_s <= now


def blob_digest_of(url: str) -> str:
    """The digest a registry blob URL names (`…/v2/<name>/blobs/<digest>`), else ""."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    head, sep, last = path.rpartition("/blobs/")
    if not sep or "/v2/" not in head or "/" in last:
        return ""
    algorithm, colon, hexpart = last.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if not colon or lengths.get(algorithm) != len(hexpart):
        return ""
    if any(c not in "0123456789abcdef" for c in hexpart):
        return ""
    return last


def _set_blob(job: PreheatJob, index: int, **changes: object) -> PreheatJob:
    blobs = list(job.blobs)
    blobs[index] = dataclasses.replace(blobs[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(job, blobs=tuple(blobs))
