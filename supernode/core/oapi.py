"""Open API (Dragonfly2-style) decisions: job states, task-id mapping, paging links, job rate."""

# How it works: an Open API job is a group of preheat-engine jobs (one per image or file URL).
# Each engine job shows up as one `job_states[]` entry whose state is the engine's status in
# machinery terms (`task_state`); the job's top-level state is the group state (`group_state`),
# which is only ever PENDING, SUCCESS or FAILURE, because Harbor fails a job on any other
# string. The job-create rate is a token bucket per cluster, refilled from `now`.

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote_plus

MAX_JOB_ID = 2**63 - 1
DEFAULT_PAGE, DEFAULT_PER_PAGE, MAX_PER_PAGE = 1, 10, 10_000_000
DEFAULT_SCOPE = "single_seed_peer"
SCOPES = ("single_seed_peer", "all_seed_peers", "all_peers")
# DF2's default list (reference §B.9), used when `filtered_query_params` is empty.
DEFAULT_FILTERED_QUERY_PARAMS = "&".join(
    (
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-User-Agent",
        "X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date", "X-Goog-Expires",
        "X-Goog-SignedHeaders", "X-Goog-Signature",
        "OSSAccessKeyId", "Expires", "Signature", "SecurityToken",
        "AccessKeyId", "Signature", "Expires", "X-Obs-Date", "X-Obs-Security-Token",
        "q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list",
        "q-url-param-list", "q-signature", "x-cos-security-token",
        "ns",
    )
)  # fmt: skip


class JobState(StrEnum):
    """The top-level `state` of a job: the only three strings Harbor accepts."""

    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class TaskState(StrEnum):
    """`job_states[].state`: machinery task states (the list filter accepts all six)."""

    PENDING = "PENDING"
    RECEIVED = "RECEIVED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


_ENGINE_TO_TASK = {
    "WAITING": TaskState.PENDING,
    "RUNNING": TaskState.STARTED,
    "SUCCESS": TaskState.SUCCESS,
    "FAILED": TaskState.FAILURE,
}


def task_state(engine_status: str) -> TaskState:
    """The preheat engine's WAITING/RUNNING/SUCCESS/FAILED in machinery terms."""
    return _ENGINE_TO_TASK.get(engine_status, TaskState.FAILURE)


def group_state(states: Iterable[TaskState]) -> JobState:
    """FAILURE if any task failed, SUCCESS if all succeeded (and there is one), else PENDING."""
    seen = list(states)
    if any(s is TaskState.FAILURE for s in seen):
        return JobState.FAILURE
    if seen and all(s is TaskState.SUCCESS for s in seen):
        return JobState.SUCCESS
    return JobState.PENDING


def normalize_scope(scope: str) -> str:
    """ "" and unknown values (Harbor 2.12 sends `single_peer`) fall back like DF2's scheduler."""
    return scope if scope in SCOPES else DEFAULT_SCOPE


def effective_filter(filtered_query_params: str) -> str:
    return filtered_query_params or DEFAULT_FILTERED_QUERY_PARAMS


def dfget_identifier(tag: str, application: str) -> str:
    """The `dfget -i` value whose task id matches: DF2 hashes url+tag+application with no
    separator, so the legacy identifier is the same concatenation."""
    return tag + application


def parse_job_id(text: str) -> int:
    """A path id: decimal, 1 … 2^63−1; anything else is a ValueError (a 422)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ValueError(f"id must be a positive integer, got {text!r}")
    value = int(text)
    if not 1 <= value <= MAX_JOB_ID:
        raise ValueError(f"id must be a positive integer, got {text!r}")
    return value


# ---- paging ------------------------------------------------------------------------------


def last_page(total: int, per_page: int) -> int:
    return math.ceil(total / per_page) if per_page > 0 else 0


def offset(page: int, per_page: int) -> int:
    return (page - 1) * per_page


def paging_links(
    path: str, query: Sequence[tuple[str, str]], page: int, per_page: int, total: int
) -> str:
    """DF2's `Link`: prev, next, first, last as `<path?query>;rel=NAME`, joined by "," with
    no spaces; the query keeps every other parameter, sorted by key like Go's Values.Encode."""
    last = last_page(total, per_page)
    prev_page = max(page - 1, 1)
    next_page = page if page >= last else page + 1
    kept = [(k, v) for k, v in query if k not in ("page", "per_page")]
    links = []
    for name, number in (("prev", prev_page), ("next", next_page), ("first", 1), ("last", last)):
        items = [*kept, ("page", str(number)), ("per_page", str(per_page))]
        # A stable sort by key keeps the order of repeated keys, as Go does.
        encoded = "&".join(
            f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(items, key=lambda kv: kv[0])
        )
        links.append(f"<{path}?{encoded}>;rel={name}")
    return ",".join(links)


# ---- the per-cluster job rate ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: `rate` tokens a second up to `burst`; rate 0 means unlimited."""

    rate: float
    burst: float
    tokens: float
    at: float


def new_bucket(rate: float, now: float) -> Bucket:
    burst = max(1.0, rate)
    return Bucket(rate=rate, burst=burst, tokens=burst, at=now)


def take(bucket: Bucket, now: float) -> tuple[bool, Bucket]:
    """(allowed, the bucket after this request)."""
    if bucket.rate <= 0:
        return True, bucket
    elapsed = max(0.0, now - bucket.at)
    tokens = min(bucket.burst, bucket.tokens + elapsed * bucket.rate)
    if tokens < 1.0:
        return False, dataclasses.replace(bucket, tokens=tokens, at=max(now, bucket.at))
    return True, dataclasses.replace(bucket, tokens=tokens - 1.0, at=max(now, bucket.at))


# ---- time ------------------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    """RFC 3339 in UTC with a `Z` (Go's time.Time JSON form); whole seconds, as DF2's rows."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """A zoned RFC 3339 timestamp → epoch seconds; a naive one is a ValueError, like Go's."""
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no zone")
    return moment.timestamp()
