"""Harbor 2.1–2.11's legacy Dragonfly driver (F1), replayed call by call (preheat-clients §A.5)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

PHRASE = "preheat task already exists, id:"


class HarborError(Exception):
    """What Harbor would log as the job's error."""


@dataclass(frozen=True)
class HarborOutcome:
    status: str  # SUCCESS or FAIL (Harbor's states)
    task_id: str
    polls: int


def harbor_body(url: str, token: str, image: str, tag: str, digest: str) -> dict[str, Any]:
    """PreheatImage in Go struct order, as Harbor marshals it."""
    return {
        "type": "image",
        "url": url,
        "headers": {"Authorization": f"Bearer {token}"} if token else {},
        "image": image,
        "tag": tag,
        "digest": digest,
    }


def _field(obj: dict[str, Any], name: str) -> str:
    """Go's json decoding: keys case-insensitively, values must be strings."""
    for key, value in obj.items():
        if key.lower() == name.lower():
            if not isinstance(value, str):
                raise HarborError(f"{name} is not a JSON string: {value!r}")
            return value
    return ""


async def _json(resp: Any) -> dict[str, Any]:
    raw = await resp.read()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise HarborError(f"body is not JSON: {raw[:100]!r}") from exc
    if not isinstance(data, dict):
        raise HarborError(f"body is not an object: {raw[:100]!r}")
    return data


async def _progress(client: Any, task_id: str) -> dict[str, Any]:
    resp = await client.get(f"/preheats/{task_id}", headers={"Accept": "application/json"})
    if not 200 <= resp.status < 300:
        raise HarborError(f'GET "/preheats/{task_id}" error: {resp.status} {await resp.text()}')
    return await _json(resp)


async def harbor_preheat(
    client: Any, body: dict[str, Any], version: tuple[int, int], *, max_polls: int = 400
) -> HarborOutcome:
    """One Harbor preheat job: health, create, then poll (we poll every 50 ms, not 10 s)."""
    ping = await client.get("/_ping")
    if not 200 <= ping.status < 300:
        raise HarborError(f"unhealthy: {ping.status}")
    resp = await client.post("/preheats", json=body, headers={"Accept": "application/json"})
    if resp.status == 208 and version >= (2, 3):
        await _json(resp)  # "the body must still be valid JSON"
        return HarborOutcome("SUCCESS", "", 0)
    if not 200 <= resp.status < 300:
        raise HarborError(f'POST "/preheats" error: {resp.status} {await resp.text()}')
    task_id = _field(await _json(resp), "ID")
    for polls in range(1, max_polls + 1):
        if not task_id:
            raise HarborError("no task ID")
        info = await _progress(client, task_id)
        current = task_id
        message = _field(info, "errorMsg")
        if version >= (2, 8) and PHRASE in message:
            begin = message.index(PHRASE) + len(PHRASE)
            end = message.rfind('"}')
            if end - begin <= 0:
                raise HarborError(f"can't find existed task id by error msg:{message}")
            current = message[begin:end]
            info = await _progress(client, current)
        status = _field(info, "status")
        _field(info, "startTime"), _field(info, "finishTime")  # must be strings when present
        if status == "WAITING":
            status = "PENDING"
        elif status == "FAILED" and version >= (2, 8):
            status = "FAIL"
        if status in ("SUCCESS", "FAIL"):
            return HarborOutcome(status, current, polls)
        await asyncio.sleep(0.05)
    raise HarborError("status check timeout")
