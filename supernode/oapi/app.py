"""The Open API's assembly: routes, the token check in front of them, the per-cluster job rate."""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from supernode.config import ClusterConfig, SupernodeConfig
from supernode.core import oapi as core
from supernode.core.tokens import Scope
from supernode.metrics import NAMESPACE, SupernodeMetrics
from supernode.oapi.jobs import OapiJobs
from supernode.oapi.replies import errors, message
from supernode.oapi.store import JobStore, TokenStore
from supernode.oapi.tokens import Tokens
from supernode.preheat.jobs import PreheatEngine
from supernode.protocol import wire
from supernode.store import StoreError
from supernode.web.keys import CLOCK

VERSION_PREFIXES = ("", "/v{version:[0-9.]+}")
RATE_LIMITED = "rate limit exceeded"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """A reply other than success: `body` is a JSON object, or plain text (the 429)."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body


class JobRate:
    """A token bucket per cluster; a create needs one token from each cluster it targets."""

    def __init__(self) -> None:
        self._buckets: dict[int, core.Bucket] = {}

    def allow(self, clusters: list[ClusterConfig], now: float) -> bool:
        taken = []
        for cluster in clusters:
            bucket = self._buckets.get(cluster.id) or core.new_bucket(cluster.job_rate_limit, now)
            allowed, after = core.take(bucket, now)
            if not allowed:
                self._buckets[cluster.id] = after
                return False
            taken.append((cluster.id, after))
        self._buckets.update(taken)
        return True


class OpenApi:
    """What the handlers share (under `OPEN_API`)."""

    def __init__(
        self,
        config: SupernodeConfig,
        jobs: OapiJobs,
        tokens: Tokens,
        clock: Callable[[], float],
        denied: Counter,
    ) -> None:
        self.config, self.jobs, self.tokens, self.clock = config, jobs, tokens, clock
        self.rate = JobRate()
        self.started_at = clock()
        self.denied = denied
        self._host: tuple[str, str] | None = None

    @property
    def clusters(self) -> list[ClusterConfig]:
        """The clusters this supernode serves (one today: `SupernodeConfig.cluster`)."""
        return [self.config.cluster]

    def resolve_clusters(self, ids: list[int] | None) -> list[ClusterConfig]:
        """Absent or null = every cluster served here; an unknown id is DF2's 404."""
        known = {c.id: c for c in self.clusters}
        if not ids:
            return list(known.values())
        for cluster_id in ids:
            if cluster_id not in known:
                raise Refused(404, message(f"scheduler cluster id {cluster_id}: record not found"))
        return [known[i] for i in dict.fromkeys(ids)]

    @property
    def host(self) -> tuple[str, str]:
        """(hostname, ip) of the seed that warmed a blob: this supernode."""
        if self._host is None:
            self._host = (socket.gethostname(), self.config.effective_advertise_ip())
        return self._host


OPEN_API = web.AppKey("open_api", OpenApi)


def install(
    app: web.Application,
    engine: PreheatEngine,
    config: SupernodeConfig,
    metrics: SupernodeMetrics,
    *,
    clock: Callable[[], float] | None = None,
) -> None:
    """Add `/healthy`, `/oapi/v1/*` and `/api/v1/personal-access-tokens*` (bare and under
    `/v<version>`), on the preheat engine's database and job runner."""
    from supernode.oapi import handlers as h

    clock = clock or app.get(CLOCK) or time.time
    denied = Counter(
        "oapi_auth_denied", "Open API requests refused by the token check.", ("code", "scope"),
        namespace=NAMESPACE, subsystem="supernode", registry=metrics.registry,
    )  # fmt: skip
    db = engine.store.db
    jobs = OapiJobs(JobStore(db), engine, clock)
    app[OPEN_API] = OpenApi(config, jobs, Tokens(TokenStore(db), clock), clock, denied)
    job, cluster, admin = Scope.JOB, Scope.CLUSTER, Scope.ADMIN
    tokens = "/api/v1/personal-access-tokens"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/healthy", h.healthy),
        ("POST", "/oapi/v1/jobs", guarded(job, h.create_job)),
        ("GET", "/oapi/v1/jobs", guarded(job, h.list_jobs)),
        ("GET", "/oapi/v1/jobs/{id}", guarded(job, h.get_job)),
        ("PATCH", "/oapi/v1/jobs/{id}", guarded(job, h.patch_job)),
        ("DELETE", "/oapi/v1/jobs/{id}", guarded(job, h.delete_job)),
        ("GET", "/oapi/v1/clusters", guarded(cluster, h.list_clusters)),
        ("GET", "/oapi/v1/clusters/{id}", guarded(cluster, h.get_cluster)),
        ("POST", tokens, guarded(admin, h.create_token)),
        ("GET", tokens, guarded(admin, h.list_tokens)),
        ("GET", tokens + "/{id}", guarded(admin, h.get_token)),
        ("PATCH", tokens + "/{id}", guarded(admin, h.patch_token)),
        ("DELETE", tokens + "/{id}", guarded(admin, h.delete_token)),
    ]
    for version in VERSION_PREFIXES:
        for method, path, handler in table:
            app.router.add_route(method, version + path, handler)


def guarded(scope: Scope, handler: Handler) -> Handler:
    """The personal-access-token check (reference §B.7), then the handler; `Refused` and
    store failures become their replies here, once."""

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        api = request.app[OPEN_API]
        try:
            decision = await api.tokens.authenticate(
                request.headers.get("Authorization"), request.query.get("access_token"), scope
            )
            if not decision.allowed:
                api.denied.labels(str(decision.status), scope.value).inc()
                return reply(message(decision.message), decision.status)
            return await handler(request)
        except Refused as exc:
            if isinstance(exc.body, str):
                return web.Response(status=exc.status, text=exc.body)
            return reply(exc.body, exc.status)
        except StoreError as exc:
            return reply(message(str(exc)), 500)

    return run


# ---- helpers shared by the handlers ---------------------------------------------------------


def reply(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=wire.dumps(obj), content_type="application/json", headers=headers
    )


async def body_of(request: web.Request, limit: int) -> Any:
    """The JSON body; anything unreadable is a 422 `{"errors": …}` like a gin bind failure."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(422, errors(f"request body larger than {limit} bytes"))
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise Refused(422, errors(f"request body larger than {limit} bytes"))
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(422, errors(f"invalid JSON body: {exc}")) from exc


def load(schema: wire.WireSchema, data: Any) -> dict[str, Any]:
    try:
        return wire.load_preheat_body(schema, data)
    except wire.PreheatBodyError as exc:
        raise Refused(422, errors(str(exc))) from exc


def path_id(request: web.Request) -> int:
    try:
        return core.parse_job_id(request.match_info["id"])
    except ValueError as exc:
        raise Refused(422, errors(str(exc))) from exc


def paging(request: web.Request, loaded: dict[str, Any], total: int) -> dict[str, str]:
    """The `Link` header; `access_token` is left out so a token never travels in a header."""
    query = [(k, v) for k, v in request.query.items() if k != "access_token"]
    link = core.paging_links(request.path, query, page_of(loaded), per_page_of(loaded), total)
    return {"Link": link}


def page_of(loaded: dict[str, Any]) -> int:
    return int(loaded["page"]) or core.DEFAULT_PAGE


def per_page_of(loaded: dict[str, Any]) -> int:
    return int(loaded["per_page"]) or core.DEFAULT_PER_PAGE
