"""The preheat routes (legacy F1 `/preheats`, 2018 F0 `/api/preheat`) and their background work."""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from supernode.config import SupernodeConfig
from supernode.core.preheat import PreheatSpec, PreheatStatus, PreheatType
from supernode.metrics import NAMESPACE, SupernodeMetrics
from supernode.preheat.jobs import JobView, PreheatEngine, TooManyJobs
from supernode.preheat.manifests import ManifestError, parse_image_reference, parse_manifest_url
from supernode.preheat.registry import ssl_option
from supernode.preheat.warmer import TaskWarmer
from supernode.protocol import wire
from supernode.store import (
    DB_FILE_NAME,
    REDACTED,
    SECRET_HEADERS,
    Database,
    PreheatStore,
    StoreError,
)
from supernode.web.keys import CLOCK

PREHEAT_ENGINE = web.AppKey("preheat_engine", PreheatEngine)
VERSION_PREFIXES = ("", "/v{version:[0-9.]+}")
_EPOCH = "1970-01-01T00:00:00.000Z"
_F0_STATUS = {"WAITING": "RUNNING", "RUNNING": "RUNNING", "SUCCESS": "SUCCESS", "FAILED": "FAIL"}


class _BadRequest(Exception):
    """A client mistake: F1 answers 400 `{code, message}`, F0 `{code: 400, msg}`."""


def install(
    app: web.Application,
    warmer: TaskWarmer,
    config: SupernodeConfig,
    metrics: SupernodeMetrics,
    *,
    clock: Callable[[], float] | None = None,
) -> None:
    """Add the preheat routes and the job runner (opened, resumed and stopped with the app).
    The clock defaults to the app's own (`web.keys.CLOCK`), else the wall clock."""
    clock = clock or app.get(CLOCK) or time.time
    gauge = Gauge(
        "preheat_jobs", "Preheat jobs by state.", ("state",),
        namespace=NAMESPACE, subsystem="supernode", registry=metrics.registry,
    )  # fmt: skip

    def publish(counts: dict[str, int]) -> None:
        for state in PreheatStatus:
            gauge.labels(state.value).set(counts.get(state.value, 0))

    database = Database(config.home_dir / DB_FILE_NAME)
    engine = PreheatEngine(PreheatStore(database), warmer, config, clock=clock, on_counts=publish)
    app[PREHEAT_ENGINE] = engine

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await database.open()
        try:
            await engine.start()
            yield
        finally:
            await engine.stop()
            await database.close()

    app.cleanup_ctx.append(lifecycle)
    # Like every Go route, each is served bare and under a `/v<version>` prefix (§1).
    for version in VERSION_PREFIXES:
        for base in ("/preheats", "/api/v1/preheats"):
            app.router.add_post(f"{version}{base}", create_preheat)
            app.router.add_get(f"{version}{base}", list_preheats)
            app.router.add_get(f"{version}{base}/{{id}}", get_preheat)
            app.router.add_delete(f"{version}{base}/{{id}}", delete_preheat)
        app.router.add_get(f"{version}/api/check", f0_check)
        app.router.add_post(f"{version}/api/preheat", f0_create)
        app.router.add_get(f"{version}/api/preheat/{{taskId}}", f0_get)


# ---- F1: the legacy supernode API (§11), what Harbor 2.1–2.11 calls ------------------------


async def create_preheat(request: web.Request) -> web.Response:
    engine = request.app[PREHEAT_ENGINE]
    try:
        body = await _load(request, wire.PREHEAT_CREATE, engine.config.max_body_size)
        spec = _spec(body, body["url"], body["headers"])
        created = await engine.create(spec)
    except _BadRequest as exc:
        return _json(wire.error_response(400, str(exc)), 400)
    except TooManyJobs as exc:
        return _json(wire.error_response(503, str(exc)), 503)
    except StoreError as exc:
        return _json(wire.error_response(500, str(exc)), 500)
    if created.duplicate:
        # Go's body plus the id (additive): Harbor 2.1–2.2 read a 208 as a plain 2xx and
        # then poll that id, which answers SUCCESS; 2.3+ report success at once.
        message = f"preheat task already exists, id:{created.job_id}"
        return _json({"code": 208, "message": message, "ID": created.job_id}, 208)
    return _json({"ID": created.job_id}, 201)


async def get_preheat(request: web.Request) -> web.Response:
    job_id = request.match_info["id"]
    view = await request.app[PREHEAT_ENGINE].view(job_id)
    if view is None:
        return _json(wire.error_response(404, f"{job_id} doesn't exists"), 404)
    return _json(_info(view, request.app[PREHEAT_ENGINE]))


async def list_preheats(request: web.Request) -> web.Response:
    views = await request.app[PREHEAT_ENGINE].views()
    return _json([_record(v) for v in views])


async def delete_preheat(request: web.Request) -> web.Response:
    await request.app[PREHEAT_ENGINE].delete(request.match_info["id"])
    return _json(True)


def _info(view: JobView, engine: PreheatEngine) -> dict[str, Any]:
    """PreheatInfo in the reference's order, then our additive fields (type, url, blobs)."""
    job = view.job
    out: dict[str, Any] = {
        "ID": job.id,
        "finishTime": _iso(view.finished_at) if view.status.finished else _EPOCH,
        "startTime": _iso(job.created_at),
        "status": view.status.value,
    }
    if view.error_msg:
        out["errorMsg"] = view.error_msg
    out["type"] = job.spec.type.value
    out["url"] = job.spec.url
    if view.parent_id:
        out["parentID"] = view.parent_id
    if job.redirect_to:
        out["redirectTo"] = job.redirect_to
    if job.manifest_digest:
        out["manifestDigest"] = job.manifest_digest
    out["deadline"] = _iso(job.deadline)
    out["blobsTotal"] = len(job.blobs) if job.expanded else 0
    out["blobsDone"] = job.blobs_done
    blobs = []
    for blob, progress in zip(job.blobs, view.progress, strict=False):
        item: dict[str, Any] = {
            "url": blob.url,
            "taskId": blob.task_id,
            "digest": blob.digest,
            "mediaType": blob.media_type,
            "size": blob.size,
            "platform": blob.platform,
            "status": blob.status.value,
            "cacheHit": blob.cache_hit,
        }
        if progress is not None:
            item["piecesDone"], item["pieceTotal"] = progress
        if blob.error:
            item["errorMsg"] = blob.error
        blobs.append(item)
    out["blobs"] = blobs
    return out


def _record(view: JobView) -> dict[str, Any]:
    """The Go supernode's internal PreheatTask record, as its list route shows it."""
    job = view.job
    headers = {k: REDACTED if k.lower() in SECRET_HEADERS else v for k, v in job.spec.headers}
    children = [b.task_id for b in job.blobs] if job.spec.type is PreheatType.IMAGE else None
    return {
        "ID": job.id,
        "URL": job.spec.url,
        "Type": job.spec.type.value,
        "Filter": job.spec.filter,
        "Identifier": job.spec.identifier,
        "Headers": headers or None,
        "ParentID": view.parent_id,
        "Children": children or None,
        "Status": view.status.value,
        "StartTime": int(job.created_at * 1000),
        "FinishTime": int(view.finished_at * 1000) if view.status.finished else 0,
        "ErrorMsg": view.error_msg,
    }


# ---- F0: the 2018 check / preheat / query API (seed 002): always HTTP 200 ------------------


async def f0_check(_: web.Request) -> web.Response:
    return _json(wire.result_info(200))


async def f0_create(request: web.Request) -> web.Response:
    engine = request.app[PREHEAT_ENGINE]
    try:
        body = await _load(request, wire.CHECK_PREHEAT, engine.config.max_body_size)
        url = body["url"]
        if body["type"] == "image":
            url = parse_image_reference(url, insecure=body["insecure"]).manifest_url()
        elif problem := wire.preheat_url_problem(url):
            raise _BadRequest(f"url: {problem}")
        created = await engine.create(_spec(body, url, body["header"]))
    except (_BadRequest, ManifestError, TooManyJobs, StoreError) as exc:
        return _json(wire.result_info(400, msg=str(exc)))
    return _json(wire.result_info(200, {"taskId": created.job_id}))


async def f0_get(request: web.Request) -> web.Response:
    job_id = request.match_info["taskId"]
    view = await request.app[PREHEAT_ENGINE].view(job_id)
    if view is None:
        return _json(wire.result_info(400, msg=f"preheat task {job_id} not found"))
    data = {"taskId": job_id, "status": _F0_STATUS[view.status.value]}
    failed = view.status is PreheatStatus.FAILED
    return _json(wire.result_info(200, data, view.error_msg if failed else ""))


# ---- shared ----------------------------------------------------------------------------


async def _load(request: web.Request, schema: wire.WireSchema, limit: int) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise _BadRequest(f"request body larger than {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise _BadRequest(f"request body larger than {limit} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"request body is not valid JSON: {exc}") from exc
    try:
        return wire.load_preheat_body(schema, data)
    except wire.PreheatBodyError as exc:
        raise _BadRequest(str(exc)) from exc


def _spec(body: dict[str, Any], url: str, headers: dict[str, str] | None) -> PreheatSpec:
    """The job spec; everything that can be known wrong now is a 400, not a FAILED job."""
    kind = PreheatType(body["type"])
    if kind is PreheatType.IMAGE:
        try:
            parse_manifest_url(url)
        except ManifestError as exc:
            raise _BadRequest(str(exc)) from exc
    try:
        root_cas = tuple(base64.b64decode(ca, validate=True) for ca in body["root_cas"] or ())
        ssl_option(False, root_cas)
    except (binascii.Error, ssl.SSLError, ValueError) as exc:
        raise _BadRequest(f"rootCAs must be base64 PEM or DER certificates: {exc}") from exc
    return PreheatSpec(
        type=kind,
        url=url,
        filter=body.get("filter", ""),
        identifier=body.get("identifier", ""),
        headers=tuple((headers or {}).items()),
        platform=body["platform"] if kind is PreheatType.IMAGE else "",
        username=body["username"],
        password=body["password"],
        insecure=body["insecure"],
        root_cas=root_cas,
        digest=body.get("digest", ""),
    )


def _iso(ts: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Go's strfmt.DateTime prints it."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=wire.dumps(obj), content_type="application/json")
