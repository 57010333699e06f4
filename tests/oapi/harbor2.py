"""Harbor 2.12+'s Dragonfly driver (F2, reference §A.6), replayed call by call, parsing replies
with Go's strictness: an integer id, zoned RFC 3339 times, results of the exact shape, and
only PENDING / SUCCESS / FAILURE as states."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

# Go's time.Time JSON unmarshal: RFC 3339 with a zone (fractional seconds optional).
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


class HarborError(Exception):
    """What Harbor would log as the preheat job's error."""


@dataclass(frozen=True)
class Harbor2Outcome:
    status: str  # SUCCESS or FAIL
    task_id: str  # the decimal job id Harbor keeps
    message: str  # the success table or the joined job_states errors
    polls: int


def harbor_body(url: str, jwt: str, version: tuple[int, int], cluster_ids: list[int] | None):
    """The create body in Go struct order, every field present (no omitempty)."""
    scope = "single_peer" if version < (2, 13) else "single_seed_peer"
    return {
        "type": "preheat",
        "args": {
            "type": "image",
            "url": url,
            "tag": "",
            "filtered_query_params": "",
            "headers": {"Authorization": f"Bearer {jwt}"} if jwt else {},
            "scope": scope,
            "concurrent_count": 0,
            "timeout": 0,
        },
        # v2.12 sends no cluster ids at all; v2.13+ sends the policy's (or null).
        "scheduler_cluster_ids": cluster_ids if version >= (2, 13) else None,
    }


def _time(obj: dict[str, Any], key: str) -> None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, str) or not RFC3339.match(value)):
        raise HarborError(f"parsing time {value!r} as RFC3339 failed")


def _job(raw: Any) -> dict[str, Any]:
    """json.Unmarshal into Harbor's `dragonflyJobResponse`."""
    if not isinstance(raw, dict):
        raise HarborError(f"cannot unmarshal {type(raw).__name__} into a job")
    if type(raw.get("id")) is not int:
        raise HarborError(f"id is not a JSON number: {raw.get('id')!r}")
    _time(raw, "created_at"), _time(raw, "updated_at")
    if not isinstance(raw.get("state", ""), str):
        raise HarborError("state is not a string")
    result = raw.get("result")
    if result is None:
        return raw
    if not isinstance(result, dict):
        raise HarborError("result is not an object")
    for state in result.get("job_states") or []:
        if not isinstance(state, dict) or not isinstance(state.get("error", ""), str):
            raise HarborError(f"bad job_states entry {state!r}")
        for item in state.get("results") or []:
            if not isinstance(item, dict):
                raise HarborError(f"results holds a {type(item).__name__}, not an object")
            cluster = item.get("scheduler_cluster_id", 0)
            if type(cluster) is not int or cluster < 0:
                raise HarborError(f"scheduler_cluster_id is not a uint: {cluster!r}")
            for key, fields in (
                ("success_tasks", ("url", "hostname", "ip")),
                ("failure_tasks", ("url", "hostname", "ip", "description")),
            ):
                for task in item.get(key) or []:
                    if not isinstance(task, dict) or not all(
                        isinstance(task.get(f, ""), str) for f in fields
                    ):
                        raise HarborError(f"bad {key} entry {task!r}")
    return raw


async def _call(session, method: str, url: str, **kwargs) -> Any:
    async with session.request(method, url, **kwargs) as resp:
        body = await resp.read()
        # The shared client: anything outside 2xx is an error, and so is a 208.
        if not 200 <= resp.status < 300 or resp.status == 208:
            raise HarborError(f'{method} "{url}" error: {resp.status} {body[:300]!r}')
        try:
            return json.loads(body) if body else None
        except ValueError as exc:
            raise HarborError(f"body is not JSON: {body[:100]!r}") from exc


async def harbor2_preheat(
    base: str, pat: str, body: dict[str, Any], *, max_polls: int = 600, interval: float = 0.05
) -> Harbor2Outcome:
    """Health (with the auth header), create, then poll by the decimal id (every 10 s in
    Harbor, every `interval` here) until SUCCESS or FAILURE."""
    auth = {"Authorization": f"Bearer {pat}"}  # auth mode OAUTH with the PAT as the token
    get_headers = {**auth, "Accept": "application/json"}
    post_headers = {**get_headers, "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _call(session, "GET", f"{base}/healthy", headers=get_headers)
        created = _job(
            await _call(session, "POST", f"{base}/oapi/v1/jobs", json=body, headers=post_headers)
        )
        task_id = str(created["id"])
        for polls in range(1, max_polls + 1):
            job = _job(
                await _call(session, "GET", f"{base}/oapi/v1/jobs/{task_id}", headers=get_headers)
            )
            state = job.get("state")
            if state == "SUCCESS":
                rows = [
                    (t["url"], t["hostname"], t["ip"], r["scheduler_cluster_id"], "SUCCESS")
                    for s in job["result"]["job_states"]
                    for r in s["results"]
                    for t in r["success_tasks"]
                ]
                return Harbor2Outcome("SUCCESS", task_id, repr(rows), polls)
            if state == "FAILURE":
                errors = [
                    s.get("error", "") for s in (job.get("result") or {}).get("job_states") or []
                ]
                return Harbor2Outcome("FAIL", task_id, "; ".join(errors), polls)
            if state != "PENDING":
                raise HarborError(f"unknown state: {state}")
            await asyncio.sleep(interval)
    raise HarborError("status check timeout")
