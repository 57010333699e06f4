"""Open API handlers: health, jobs, clusters, personal access tokens (thin: load, call, dump)."""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from typing import Any

from aiohttp import web

from supernode.core import oapi as core
from supernode.core import tokens as token_core
from supernode.core.preheat import PreheatSpec, PreheatType
from supernode.core.tokens import AccessToken, Scope
from supernode.oapi.app import (
    OPEN_API,
    RATE_LIMITED,
    OpenApi,
    Refused,
    body_of,
    load,
    page_of,
    paging,
    path_id,
    per_page_of,
    reply,
)
from supernode.oapi.jobs import JobDetail, NewJob
from supernode.oapi.replies import cluster_json, errors, job_json, message, token_json
from supernode.oapi.store import NameTaken, OapiJob
from supernode.preheat.registry import ssl_option
from supernode.protocol import wire
from supernode.store import REDACTED, SECRET_HEADERS

NOT_FOUND = "record not found"


async def healthy(_: web.Request) -> web.Response:
    return reply("OK")


# ---- jobs ------------------------------------------------------------------------------------


async def create_job(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    top = load(wire.OAPI_JOB_CREATE, await body_of(request, api.config.max_body_size))
    if top["type"] != "preheat":
        raise Refused(422, errors("Unknow type"))  # sic: DF2's exact text
    args = load(wire.OAPI_PREHEAT_ARGS, top["args"] or {})
    clusters = api.resolve_clusters(top["scheduler_cluster_ids"])
    if not api.rate.allow(clusters, api.clock()):
        raise Refused(429, RATE_LIMITED)
    deadline_s = args["timeout"] / 1e9 if args["timeout"] else None
    timeout_ns = int((deadline_s or api.config.preheat_deadline) * 1e9)
    new = NewJob(
        bio=top["bio"],
        user_id=top["user_id"],
        args_json=json.dumps(_echo(args, timeout_ns)),
        cluster_ids=tuple(c.id for c in clusters),
        specs=_specs(args),
        deadline_s=deadline_s,
    )
    job = await api.jobs.create(new)
    return reply(job_json(job, _clusters(api, job), api.host))


async def get_job(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    detail = await api.jobs.get(path_id(request))
    if detail is None:
        raise Refused(404, message(NOT_FOUND))
    return reply(_job(api, detail))


async def list_jobs(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    query = load(wire.OAPI_JOB_LIST_QUERY, dict(request.query))
    filters: dict[str, object] = {}
    for key in ("type", "state"):
        if query[key]:
            filters[key] = query[key]
    if query["user_id"] is not None:
        filters["user_id"] = query["user_id"]
    details, total = await api.jobs.page(filters, page_of(query), per_page_of(query))
    return reply([_job(api, d) for d in details], headers=paging(request, query, total))


async def patch_job(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    job_id = path_id(request)
    changes = load(wire.OAPI_JOB_PATCH, await body_of(request, api.config.max_body_size))
    detail = await api.jobs.patch(job_id, changes)
    if detail is None:
        raise Refused(404, message(NOT_FOUND))
    return reply(_job(api, detail))


async def delete_job(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    if not await api.jobs.delete(path_id(request)):
        raise Refused(404, message(NOT_FOUND))
    return web.Response(status=200)


def _job(api: OpenApi, detail: JobDetail) -> dict[str, Any]:
    return job_json(detail.job, _clusters(api, detail.job), api.host, detail)


def _clusters(api: OpenApi, job: OapiJob) -> list[dict[str, Any]]:
    served = {c.id: c for c in api.clusters}
    return [cluster_json(served[i], api.started_at) for i in job.cluster_ids if i in served]


def _specs(args: dict[str, Any]) -> tuple[PreheatSpec, ...]:
    """One engine job per image, or per distinct file URL. The task-id mapping: `-f` is the
    effective filter, `-i` is tag + application (docs/openapi.md)."""
    kind = PreheatType(args["type"])
    urls = [args["url"]] if kind is PreheatType.IMAGE else [args["url"], *args["urls"]]
    try:
        root_cas = tuple(base64.b64decode(ca, validate=True) for ca in args["root_cas"] or ())
        ssl_option(False, root_cas)
    except (binascii.Error, ssl.SSLError, ValueError) as exc:
        raise Refused(
            422, errors(f"rootCAs must be base64 PEM or DER certificates: {exc}")
        ) from exc
    return tuple(
        PreheatSpec(
            type=kind,
            url=url,
            filter=core.effective_filter(args["filtered_query_params"]),
            identifier=core.dfget_identifier(args["tag"], args["application"]),
            headers=tuple(args["headers"].items()),
            platform=args["platform"] if kind is PreheatType.IMAGE else "",
            username=args["username"],
            password=args["password"],
            insecure=args["insecure"],
            root_cas=root_cas,
        )
        for url in dict.fromkeys(u for u in urls if u)
    )


def _echo(args: dict[str, Any], timeout_ns: int) -> dict[str, Any]:
    """`args` as DF2 echoes them, defaults applied; secrets are masked (they are kept only by
    the engine, and only while its job may still need them)."""
    headers = {
        k: REDACTED if k.lower() in SECRET_HEADERS else v for k, v in args["headers"].items()
    }
    return {
        "type": args["type"],
        "url": args["url"],
        "urls": args["urls"],
        "tag": args["tag"],
        "application": args["application"],
        "filtered_query_params": core.effective_filter(args["filtered_query_params"]),
        "headers": headers or None,
        "username": args["username"],
        "password": REDACTED if args["password"] else "",
        "platform": args["platform"],
        "piece_length": args["piece_length"],
        "scope": core.normalize_scope(args["scope"]),
        "ips": args["ips"],
        "count": args["count"],
        "percentage": args["percentage"],
        "concurrent_count": args["concurrent_count"],
        "concurrent_task_count": args["concurrent_task_count"],
        "concurrent_peer_count": args["concurrent_peer_count"],
        "timeout": timeout_ns,
    }


# ---- clusters --------------------------------------------------------------------------------


async def list_clusters(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    query = load(wire.OAPI_PAGE_QUERY, dict(request.query))
    page, per_page = page_of(query), per_page_of(query)
    start = core.offset(page, per_page)
    chosen = api.clusters[start : start + per_page]
    body = [cluster_json(c, api.started_at) for c in chosen]
    return reply(body, headers=paging(request, query, len(api.clusters)))


async def get_cluster(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    cluster_id = path_id(request)
    for cluster in api.clusters:
        if cluster.id == cluster_id:
            return reply(cluster_json(cluster, api.started_at))
    raise Refused(404, message(NOT_FOUND))


# ---- personal access tokens (admin) ----------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    body = load(wire.OAPI_TOKEN_CREATE, await body_of(request, api.config.max_body_size))
    scopes = _scopes(body["scopes"] or [])
    expired_at = _time(body["expired_at"])
    try:
        issued = await api.tokens.issue(
            body["name"], scopes, expired_at, bio=body["bio"], user_id=body["user_id"]
        )
    except NameTaken as exc:
        raise Refused(409, message(str(exc))) from exc
    return reply(token_json(issued.record, issued.token))


async def list_tokens(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    query = load(wire.OAPI_TOKEN_LIST_QUERY, dict(request.query))
    filters = {"state": query["state"]} if query["state"] else {}
    page, per_page = page_of(query), per_page_of(query)
    store = api.tokens.store
    total = await store.count(filters)
    records = await store.page(filters, core.offset(page, per_page), per_page)
    return reply([token_json(r) for r in records], headers=paging(request, query, total))


async def _token_or_404(api: OpenApi, token_id: int) -> AccessToken:
    record = await api.tokens.store.get(token_id)
    if record is None:
        raise Refused(404, message(NOT_FOUND))
    return record


async def get_token(request: web.Request) -> web.Response:
    return reply(token_json(await _token_or_404(request.app[OPEN_API], path_id(request))))


async def patch_token(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    token_id = path_id(request)
    changes = load(wire.OAPI_TOKEN_PATCH, await body_of(request, api.config.max_body_size))
    if "scopes" in changes:
        changes["scopes"] = _scopes(changes["scopes"])
    if "expired_at" in changes:
        changes["expired_at"] = _time(changes["expired_at"])
    await api.tokens.store.update(token_id, changes, api.clock())  # no row: nothing changes
    return reply(token_json(await _token_or_404(api, token_id)))


async def delete_token(request: web.Request) -> web.Response:
    api = request.app[OPEN_API]
    token_id = path_id(request)
    await _token_or_404(api, token_id)
    await api.tokens.store.delete(token_id)
    return web.Response(status=200)


def _scopes(items: list[str]) -> tuple[Scope, ...]:
    try:
        scopes = token_core.parse_scopes(items)
    except ValueError as exc:
        raise Refused(422, errors(f"scopes: {exc}")) from exc
    if Scope.ADMIN in scopes:
        # An admin token comes only from the operator's `supernode token create`, so a leaked
        # admin token cannot mint more admin tokens.
        raise Refused(422, errors("scopes: admin is given only by `supernode token create`"))
    return scopes


def _time(text: str) -> float:
    try:
        return core.parse_rfc3339(text)
    except ValueError as exc:
        raise Refused(422, errors(f"expired_at: {exc}")) from exc
