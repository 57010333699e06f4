"""Every legacy route's replies, byte for byte where a Go client depends on them (§2–§5)."""

from __future__ import annotations

import asyncio
import json

import pytest

from supernode.protocol import ids
from tests.web.helpers import ORIGIN, download_all, pull, register, register_body

CID = "127.0.0.2-100-1600000000.001"


async def _ready(client, task_id, cid):
    """First pull until the in-memory CDN has the first pieces (601)."""
    for _ in range(500):
        reply = await pull(client, task_id, cid)
        if reply["code"] != 602:
            return reply
        await asyncio.sleep(0.01)
    raise AssertionError("CDN never became ready")


async def test_ping_version_and_listings(make_client):
    client = await make_client()
    resp = await client.get("/_ping")
    assert (resp.status, await resp.read()) == (200, b"OK")
    for path in ["/v1.24/_ping", "/v1/_ping"]:
        assert (await client.get(path)).status == 200
    version = await (await client.get("/version")).json(content_type=None)
    assert set(version) == {"Arch", "BuildDate", "GoVersion", "OS", "Version"}
    root = await (await client.get("/")).json()
    assert root["category"] == "legacy api" and root["prefix"] == ""
    assert {"method": "POST", "path": "/peer/registry"} in root["api"]
    v1 = await (await client.get("/api/v1/")).json()
    assert v1["prefix"] == "/api/v1" and {"method": "GET", "path": "/api/v1/peers"} in v1["api"]
    ext = await (await client.get("/api/ext/")).json()
    assert ext["category"] == "extension api"
    missing = await client.get("/no/such/route")
    assert (missing.status, await missing.text()) == (404, "404 page not found\n")


async def test_registry_reply_bytes_and_key_case(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    body = register_body(CID)
    shouty = {k.upper(): v for k, v in body.items()} | {"unknownKey": [1, 2], "taskId": "x"}
    resp = await client.post("/v1.24/peer/registry", data=json.dumps(shouty))
    raw = await resp.read()
    task_id = ids.task_id(ORIGIN)
    assert resp.status == 200 and resp.content_type == "application/json"
    assert raw == (
        b'{"code":200,"data":{"taskId":"' + task_id.encode() + b'","fileLength":10,'
        b'"pieceSize":4194304,"cdnSource":"supernode","asSeed":false,"seedTaskID":""},'
        b'"msg":"success"}\n'
    )


async def test_registry_form_encoded(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    form = {k: str(v) for k, v in register_body(CID).items()}
    resp = await client.post("/peer/registry", data=form)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["fileLength"] == 10


@pytest.mark.parametrize(
    "change",
    [
        {"ip": "999.1.1.1"},
        {"ip": "::1"},
        {"port": 80},
        {"port": "15001"},
        {"path": ""},
        {"rawUrl": ""},
        {"headers": "Authorization: x"},
        {"dfdaemon": "yes"},
    ],
)
async def test_registry_rejects_bad_fields_with_500(make_client, memory_cdn, change):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    resp = await client.post("/peer/registry", data=json.dumps(register_body(CID) | change))
    assert resp.status == 500
    body = await resp.json()
    assert body["code"] == 500 and body["message"]
    service = client.server.app[__import__("supernode.web.keys").web.keys.SERVICE]
    assert service.registry.tasks == {} and len(service.registry.peers) == 1


async def test_registry_origin_errors(make_client, memory_cdn):
    memory_cdn.origins["http://h/auth"] = 401
    client = await make_client()
    resp = await client.post(
        "/peer/registry", data=json.dumps(register_body(CID, url="http://h/auth"))
    )
    assert resp.status == 500 and "authentication" in (await resp.json())["message"]
    for _ in range(2):
        resp = await client.post(
            "/peer/registry", data=json.dumps(register_body(CID, url="http://h/gone"))
        )
        assert resp.status == 500 and "not" in (await resp.json())["message"]
    assert memory_cdn.probes == 2, "a 404 URL is cached as unreachable"


async def test_registry_task_conflict(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    await register(client, CID, md5="abc")
    resp = await client.post(
        "/peer/registry", data=json.dumps(register_body("127.0.0.3-1-1.000", identifier="abc"))
    )
    assert resp.status == 500 and "conflict" in (await resp.json())["message"]


async def test_pull_error_codes(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    task_id = (await register(client, CID))["taskId"]
    assert (await pull(client, "f" * 64, CID))["code"] == 502
    assert (await pull(client, task_id, "127.9.9.9-1-1.000"))["code"] == 502
    assert (await pull(client, "", CID))["code"] == 501
    assert (await pull(client, task_id, CID, status=703))["code"] == 501
    resp = await client.get(f"/peer/task?srcCid={CID}&taskId={task_id}&status=STARTED")
    assert (await resp.json())["code"] == 501
    assert (await pull(client, task_id, CID, status=701, result=501, rng="0-4194303"))[
        "code"
    ] == 501
    assert (await pull(client, task_id, CID, status=701, result=503, rng="5-4"))["code"] == 501
    assert (await pull(client, task_id, CID, status=701, result=503, rng="1-4194304"))[
        "code"
    ] == 501
    assert (await pull(client, task_id, CID, status=702, result=501)) == {"code": 600}


async def test_cdn_failure_answers_500_then_reregistration_retriggers(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    memory_cdn.fail_fill[ORIGIN] = "origin dropped the connection"
    client = await make_client()
    task_id = (await register(client, CID))["taskId"]
    reply = await _ready(client, task_id, CID)
    assert reply["code"] == 500 and "origin dropped" in reply["msg"]
    info = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert info["cdnStatus"] == "FAILED" and "origin dropped" in info["failReason"]
    del memory_cdn.fail_fill[ORIGIN]
    await register(client, CID)
    done, _ = await download_all(client, task_id, CID)
    assert done["code"] == 600 and len(memory_cdn.fills) == 2


async def test_piece_success_and_service_down(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    task_id = (await register(client, CID))["taskId"]
    piece = (await _ready(client, task_id, CID))["data"][0]
    resp = await client.get(
        f"/peer/piece/suc?taskId={task_id}&cid={CID}&dstCid={piece['cid']}&pieceRange={piece['range']}"
    )
    assert (resp.status, await resp.read()) == (200, b'{"code":611}\n')
    bad = await client.get(
        f"/peer/piece/suc?taskId={task_id}&cid={CID}&dstCid=nobody&pieceRange=0-4194303"
    )
    assert bad.status == 500 and (await bad.json())["code"] == 500
    down = await client.get(f"/peer/service/down?taskId={task_id}&cid={CID}")
    assert (down.status, await down.read()) == (200, b'{"code":612}\n')
    unknown = await client.get(f"/peer/service/down?taskId={task_id}&cid=nobody")
    assert unknown.status == 500
    # a service-down peer is never handed out as a source
    other = "127.0.0.3-1-1.000"
    await register(client, other, port=15002)
    reply = await _ready(client, task_id, other)
    assert all(ids.is_supernode_cid(p["cid"]) for p in reply["data"])


async def test_piece_error_is_accepted_with_an_empty_body(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    task_id = (await register(client, CID))["taskId"]
    await _ready(client, task_id, CID)
    sn = ids.supernode_cid("127.0.0.1", task_id)
    query = (
        f"errorType=FILE_MD5_NOT_MATCH&srcCid={CID}&dstCid={sn}&dstIp=127.0.0.1&taskId={task_id}"
        f"&range=0-4194303&realMd5=00&expectedMd5=904bc91e4244a65ff76b6ba4af620ce1"
    )
    resp = await client.get(f"/peer/piece/error?{query}")
    assert (resp.status, await resp.read()) == (200, b"")
    garbage = await client.get("/peer/piece/error?errorType=nonsense")
    assert garbage.status == 200


async def test_task_metrics_counts_a_download_once(make_client):
    client = await make_client()
    report = {
        "IP": "127.0.0.2",
        "backsourceReason": "0",
        "cID": CID,
        "callSystem": "ci",
        "duration": 1.73,
        "fileLength": 10,
        "port": 15234,
        "success": True,
        "taskId": "a" * 64,
    }
    for _ in range(2):
        resp = await client.post("/task/metrics", data=json.dumps(report))
        assert (resp.status, await resp.read()) == (200, b'{"code":1}\n')
    text = await (await client.get("/metrics")).text()
    assert 'dragonfly_dfget_download_total{callsystem="ci",peer="127.0.0.2"} 1.0' in text
    assert (await client.post("/task/metrics", data=b"{nope")).status == 500
    assert (await client.post("/task/metrics", data=json.dumps({"port": 1}))).status == 500


async def test_heartbeat_and_network_are_bare(make_client):
    client = await make_client()
    for prefix in ["", "/api/v1"]:
        resp = await client.post(f"{prefix}/peer/heartbeat", data=b'{"IP":"1.2.3.4"}')
        assert await resp.read() == b'{"seedTaskIDs":null}\n'
        resp = await client.post(f"{prefix}/peer/network", data=b'{"urls":[]}')
        assert await resp.read() == b'{"nodes":null}\n'


async def test_oversized_body_is_413_and_changes_nothing(make_client):
    client = await make_client(max_body_size=1024)
    resp = await client.post("/peer/registry", data=b"{" + b" " * 4096 + b"}")
    assert resp.status == 413
