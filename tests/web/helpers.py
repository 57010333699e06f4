"""Requests exactly as a Go dfget builds them (§3): bodies, query order, no escaping."""

from __future__ import annotations

import json
from typing import Any

ORIGIN = "http://127.0.0.1:9/files/data.bin"


def register_body(cid: str, *, port: int = 15001, url: str = ORIGIN, **extra: Any) -> dict:
    ip = cid.split("-")[0]
    body = {
        "superNodeIp": "127.0.0.1",
        "rawUrl": url,
        "taskUrl": url,
        "cid": cid,
        "ip": ip,
        "hostName": f"host-{cid}",
        "port": port,
        "path": f"/peer/file/data.bin-{cid}",
        "version": "1.0.6",
        "pattern": "p2p",
    }
    body.update(extra)
    return body


async def register(client, cid: str, **kw: Any) -> dict:
    resp = await client.post(
        "/peer/registry",
        data=json.dumps(register_body(cid, **kw)),
        headers={"Content-Type": "application/json;charset=utf-8"},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["code"] == 200
    return body["data"]


async def pull(
    client,
    task_id: str,
    cid: str,
    *,
    dst: str = "",
    rng: str = "",
    result: int = 502,
    status: int = 700,
) -> dict:
    query = (
        f"srcCid={cid}&dstCid={dst}&range={rng}&result={result}&status={status}&taskId={task_id}"
    )
    resp = await client.get(f"/peer/task?{query}")
    assert resp.status == 200
    return await resp.json()


async def report_success(client, task_id: str, cid: str, dst: str, rng: str) -> dict:
    resp = await client.get(
        f"/peer/piece/suc?taskId={task_id}&cid={cid}&dstCid={dst}&pieceRange={rng}"
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def download_all(
    client, task_id: str, cid: str, *, max_rounds: int = 200
) -> tuple[dict, list]:
    """Drive one simulated dfget to 600: pull, 'fetch', report each piece; returns the 600
    reply and the list of (pieceNum, source cid) it was assigned."""
    import asyncio

    got = []
    reply = await pull(client, task_id, cid)
    pending: list[dict] = []
    for _ in range(max_rounds):
        code = reply["code"]
        if code == 600:
            return reply, got
        if code == 601:
            pending.extend(reply.get("data") or [])
        elif code == 602:
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"unexpected pull reply {reply}")
        if pending:
            piece = pending.pop(0)
            got.append((piece["pieceNum"], piece["cid"]))
            await report_success(client, task_id, cid, piece["cid"], piece["range"])
            reply = await pull(
                client, task_id, cid, dst=piece["cid"], rng=piece["range"], result=503, status=701
            )
        else:
            reply = await _repoll(client, task_id, cid)
    raise AssertionError("no 600 within the round limit")


async def _repoll(client, task_id: str, cid: str) -> dict:
    # A Go dfget re-polls after 602 with the same status/result as its first pull.
    return await pull(client, task_id, cid)
