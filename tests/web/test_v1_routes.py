"""`/api/v1/peers` and `/api/v1/tasks…`, with the four routes Go documented but never routed."""

from __future__ import annotations

import json

from supernode.protocol import ids
from supernode.web.keys import SERVICE
from tests.web.helpers import ORIGIN, download_all, register

CID = "127.0.0.2-100-1600000000.001"


async def _peer(client, host: str, ip: str, port: int = 15001) -> str:
    body = {"IP": ip, "hostName": host, "port": port, "version": "1.0.6"}
    resp = await client.post("/api/v1/peers", data=json.dumps(body))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["ID"]


async def test_peers_create_list_get_delete(make_client, clock):
    client = await make_client()
    ids_ = []
    for n, host in enumerate(["b-host", "a-host", "c-host"]):
        clock.now += 1
        ids_.append(await _peer(client, host, f"127.0.0.{n + 2}"))
    assert ids_[0].startswith("b-host-127.0.0.2-")
    peer = await (await client.get(f"/api/v1/peers/{ids_[0]}")).json()
    assert set(peer) == {"ID", "IP", "created", "hostName", "port", "version"}
    assert peer["created"].endswith("Z") and peer["created"][19] == "."
    listed = await (await client.get("/api/v1/peers?sortKey=hostName&sortDirect=DESC")).json()
    hosts = [p["hostName"] for p in listed if p["hostName"].endswith("-host")]
    assert hosts == ["c-host", "b-host", "a-host"]
    paged = await (await client.get("/api/v1/peers?sortKey=hostName&pageSize=2&pageNum=1")).json()
    assert len(paged) == 2  # 4 peers with the supernode's own, page 1 of size 2
    assert (await client.get("/api/v1/peers?sortDirect=UP")).status == 400
    assert (await client.get("/api/v1/peers?pageSize=-1")).status == 400
    resp = await client.delete(f"/api/v1/peers/{ids_[0]}")
    assert (resp.status, await resp.read()) == (200, b"")
    assert (await client.get(f"/api/v1/peers/{ids_[0]}")).status == 500
    assert (await client.delete(f"/api/v1/peers/{ids_[0]}")).status == 500
    bad = await client.post("/api/v1/peers", data=json.dumps({"IP": "x", "hostName": "h"}))
    assert bad.status == 500


async def test_task_get_and_delete(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    task_id = (await register(client, CID))["taskId"]
    await download_all(client, task_id, CID)
    info = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert info["ID"] == task_id and info["cdnStatus"] == "SUCCESS"
    assert info["fileLength"] == 15 and info["httpFileLength"] == 10
    assert info["realMd5"] == "fc5e038d38a57032085441e7fe7010b0"
    assert info["pieceTotal"] == 1 and info["taskURL"] == ORIGIN
    assert info["originBytes"] == 10 and info["cdnServedBytes"] == 10
    assert (await client.get("/api/v1/tasks/" + "0" * 64)).status == 500
    assert (await client.get("/api/v1/tasks/..%2F..%2Fetc")).status in (400, 404)
    assert (await client.get("/api/v1/tasks/ABC")).status == 400
    assert (await client.delete(f"/api/v1/tasks/{task_id}?full=maybe")).status == 400
    resp = await client.delete(f"/api/v1/tasks/{task_id}?full=true")
    assert (resp.status, await resp.read()) == (200, b"")
    assert memory_cdn.deleted == [task_id]
    assert (await client.get(f"/api/v1/tasks/{task_id}")).status == 500


async def test_v1_task_piece_flow(make_client, memory_cdn):
    """POST /api/v1/tasks → GET …/pieces → PUT …/pieces/{range} → PUT /api/v1/tasks/{id}."""
    memory_cdn.origins[ORIGIN] = bytes(9 * 1024 * 1024)
    client = await make_client()
    seed_peer = await _peer(client, "seed", "127.0.0.2")
    body = {"peerID": seed_peer, "rawURL": ORIGIN, "cID": "seed-cid", "path": "/peer/file/x"}
    resp = await client.post("/api/v1/tasks", data=json.dumps(body))
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    task_id = created["ID"]
    assert created == {
        "ID": ids.task_id(ORIGIN),
        "fileLength": 9 * 1024 * 1024,
        "pieceSize": 4194304,
    }
    sn_peer = client.server.app[SERVICE].supernode_peer.peer_id
    got: set[str] = set()
    status = "STARTED"
    for _ in range(100):
        resp = await client.get(
            f"/api/v1/tasks/{task_id}/pieces?clientID=seed-cid&num=2",
            data=json.dumps({"dfgetTaskStatus": status}),
        )
        assert resp.status == 200, await resp.text()
        items = await resp.json()
        status = "RUNNING"
        for item in items:
            assert set(item) == {
                "pID",
                "path",
                "peerIP",
                "peerPort",
                "pieceMD5",
                "pieceRange",
                "pieceSize",
            }
            assert item["pID"] == sn_peer
            put = await client.put(
                f"/api/v1/tasks/{task_id}/pieces/{item['pieceRange']}",
                data=json.dumps(
                    {"clientID": "seed-cid", "dstPID": sn_peer, "pieceStatus": "SUCCESS"}
                ),
            )
            assert put.status == 200, await put.text()
            got.add(item["pieceRange"])
        if len(got) == 3:
            break
    assert len(got) == 3
    # a second peer created through v1 is served by the seed
    leecher = await _peer(client, "leech", "127.0.0.3", port=15002)
    body = {"peerID": leecher, "rawURL": ORIGIN, "cID": "leech-cid", "path": "/peer/file/y"}
    assert (await client.post("/api/v1/tasks", data=json.dumps(body))).status == 201
    items = await (await client.get(f"/api/v1/tasks/{task_id}/pieces?clientID=leech-cid")).json()
    assert items and {i["pID"] for i in items} == {seed_peer}
    # PUT /api/v1/tasks/{id}: a peer that holds the whole task
    upd = await client.put(f"/api/v1/tasks/{task_id}", data=json.dumps({"peerID": leecher}))
    assert upd.status == 200
    assert (
        await client.put(f"/api/v1/tasks/{task_id}", data=json.dumps({"peerID": "nobody"}))
    ).status == 404
    assert (await client.get(f"/api/v1/tasks/{task_id}/pieces?clientID=nobody")).status == 404
    assert (await client.get(f"/api/v1/tasks/{task_id}/pieces")).status == 400
    bad = await client.put(
        f"/api/v1/tasks/{task_id}/pieces/0-4194303",
        data=json.dumps({"clientID": "leech-cid", "pieceStatus": "WHATEVER"}),
    )
    assert bad.status == 400
    missing = await client.post(
        "/api/v1/tasks", data=json.dumps({"peerID": "ghost", "rawURL": ORIGIN})
    )
    assert missing.status == 404


async def test_v1_piece_error_route_accepts_get_and_post(make_client, memory_cdn):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    task_id = (await register(client, CID))["taskId"]
    for method in ("GET", "POST"):
        resp = await client.request(
            method,
            f"/api/v1/tasks/{task_id}/pieces/0-4194303/error",
            data=json.dumps({"errorType": "FILE_NOT_EXIST", "srcCid": CID}),
        )
        assert resp.status == 200
