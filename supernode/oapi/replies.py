"""Reply bodies of the Open API in DF2's field names and order (reference §B.4, §B.7)."""

from __future__ import annotations

import json
from typing import Any

from supernode.config import ClusterConfig
from supernode.core.oapi import rfc3339
from supernode.core.tokens import AccessToken
from supernode.oapi.jobs import JobDetail, TaskView
from supernode.oapi.store import OapiJob


def job_json(
    job: OapiJob,
    clusters: list[dict[str, Any]],
    host: tuple[str, str],
    detail: JobDetail | None = None,
) -> dict[str, Any]:
    """The job object. Without `detail` (the create reply) it is DF2's fresh row: PENDING with
    `result: null`; with it, the live group state and `result.job_states`."""
    state = detail.job.state.value if detail is not None else "PENDING"
    if detail is not None:
        job = detail.job
    return {
        "id": job.id,
        "created_at": rfc3339(job.created_at),
        "updated_at": rfc3339(job.updated_at),
        "is_del": 0,
        "task_id": job.task_id,
        "bio": job.bio,
        "type": job.type,
        "state": state,
        "args": json.loads(job.args_json),
        "result": _result(job, detail, host) if detail is not None else None,
        "user_id": job.user_id,
        "seed_peer_clusters": [],
        "scheduler_clusters": clusters,
    }


def _result(job: OapiJob, detail: JobDetail, host: tuple[str, str]) -> dict[str, Any]:
    return {
        "group_uuid": job.task_id,
        "state": job.state.value,
        "created_at": rfc3339(job.created_at),
        "updated_at": rfc3339(job.updated_at),
        "job_states": [_job_state(view, job.cluster_ids, host) for view in detail.tasks],
    }


def _job_state(
    view: TaskView, cluster_ids: tuple[int, ...], host: tuple[str, str]
) -> dict[str, Any]:
    hostname, ip = host
    success = [
        {"url": b.url, "hostname": hostname, "ip": ip} for b in view.blobs if b.status == "SUCCESS"
    ]
    failure = [
        {"url": b.url, "hostname": hostname, "ip": ip, "description": b.error}
        for b in view.blobs
        if b.status == "FAILED"
    ]
    if not view.blobs and view.error and view.state.value == "FAILURE":
        # Nothing was expanded (bad manifest, unreachable registry): the URL itself failed.
        failure = [
            {"url": view.task.url, "hostname": hostname, "ip": ip, "description": view.error}
        ]
    return {
        "task_uuid": view.task.task_uuid,
        "task_name": "preheat",
        "state": view.state.value,
        "error": view.error,
        "created_at": rfc3339(view.task.created_at),
        "ttl": 0,
        # One entry per cluster the job targets: this supernode is each cluster's seed.
        "results": [
            {"success_tasks": success, "failure_tasks": failure, "scheduler_cluster_id": cid}
            for cid in cluster_ids
        ],
        # Additive: the legacy preheat id (`GET /preheats/<id>` shows every blob in detail).
        "preheat_id": view.task.preheat_id,
    }


def cluster_json(cluster: ClusterConfig, created_at: float) -> dict[str, Any]:
    """A scheduler cluster as the seed's job replies show it (`scheduler_clusters[]`)."""
    stamp = rfc3339(created_at)
    return {
        "id": cluster.id,
        "created_at": stamp,
        "updated_at": stamp,
        "is_del": 0,
        "name": cluster.name,
        "bio": "",
        "config": {"candidate_parent_limit": 4, "filter_parent_limit": 15},
        "client_config": {"load_limit": 200},
        "scopes": {},
        "is_default": cluster.is_default,
        "job_rate_limit": cluster.job_rate_limit,
        "seed_peer_clusters": None,
        "schedulers": None,
        "peers": None,
        "jobs": None,
    }


def token_json(record: AccessToken, token: str | None = None) -> dict[str, Any]:
    """The token model; the clear `token` only in the create reply (never stored)."""
    out: dict[str, Any] = {
        "id": record.id,
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
        "is_del": 0,
        "name": record.name,
        "bio": record.bio,
        "scopes": [s.value for s in record.scopes],
        "state": record.state.value,
        "expired_at": rfc3339(record.expired_at),
        "user_id": record.user_id,
    }
    if token is not None:
        out["token"] = token
    return out


def message(text: str) -> dict[str, str]:
    return {"message": text}


def errors(text: str) -> dict[str, str]:
    return {"errors": text}
