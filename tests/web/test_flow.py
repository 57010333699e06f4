"""Register → pull → report → 600 for simulated Go dfgets, through the HTTP API."""

from __future__ import annotations

import hashlib

from supernode.protocol import ids, pieces
from tests.web.helpers import ORIGIN, download_all, pull, register

MIB = 1024 * 1024


async def test_two_dfgets_second_gets_pieces_from_first(make_client, memory_cdn):
    body = bytes(range(256)) * (40 * 1024)  # 10 MiB → 3 pieces of 4 MiB
    memory_cdn.origins[ORIGIN] = body
    client = await make_client()
    first = await register(client, "127.0.0.2-100-1600000000.001")
    task_id = first["taskId"]
    assert task_id == ids.task_id(ORIGIN)
    assert first == {
        "taskId": task_id,
        "fileLength": len(body),
        "pieceSize": 4 * MIB,
        "cdnSource": "supernode",
        "asSeed": False,
        "seedTaskID": "",
    }
    done, got = await download_all(client, task_id, "127.0.0.2-100-1600000000.001")
    assert done == {
        "code": 600,
        "data": {
            "fileLength": pieces.wrapped_length(len(body), 4 * MIB),
            "md5": hashlib.md5(body).hexdigest(),
        },
    }
    assert sorted(n for n, _ in got) == [0, 1, 2]
    assert all(ids.is_supernode_cid(src) for _, src in got)

    await register(client, "127.0.0.3-200-1600000000.002", port=15002)
    done, got = await download_all(client, task_id, "127.0.0.3-200-1600000000.002")
    assert done["code"] == 600
    assert sorted(n for n, _ in got) == [0, 1, 2]
    assert all(src == "127.0.0.2-100-1600000000.001" for _, src in got), got


async def test_piece_items_have_the_reference_shape(make_client, memory_cdn):
    body = b"helloworld"
    memory_cdn.origins[ORIGIN] = body
    client = await make_client()
    data = await register(client, "127.0.0.2-1-1.000")
    reply = await pull(client, data["taskId"], "127.0.0.2-1-1.000")
    while reply["code"] == 602:
        reply = await pull(client, data["taskId"], "127.0.0.2-1-1.000")
    task_id = data["taskId"]
    assert reply == {
        "code": 601,
        "data": [
            {
                "range": "0-4194303",
                "pieceNum": 0,
                "pieceSize": 4194304,
                "pieceMd5": "904bc91e4244a65ff76b6ba4af620ce1:15",
                "cid": f"cdnnode:127.0.0.1~{task_id}",
                "peerIp": "127.0.0.1",
                "peerPort": 8001,
                "path": f"/download/{task_id[:3]}/{task_id}",
                "downLink": 0,
            }
        ],
    }


async def test_finished_download_logs_peer_task_done(make_client, memory_cdn, caplog):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client()
    cid = "127.0.0.2-1-1.000"
    task_id = (await register(client, cid))["taskId"]
    with caplog.at_level("INFO", logger="supernode.service"):
        await download_all(client, task_id, cid)
        await pull(client, task_id, cid)  # a second 600 must not log again
    done = [r for r in caplog.records if r.getMessage().startswith("peer task done, cost: ")]
    assert len(done) == 1
    assert (done[0].peer, done[0].task, done[0].component) == (cid, task_id, "supernode")
