"""Task and peer expiry (§9.4) driven by a hand-moved clock."""

from __future__ import annotations

from supernode import admin
from supernode.web.keys import SERVICE
from tests.web.helpers import ORIGIN, download_all, pull, register

CID = "127.0.0.2-1-1.000"


async def test_idle_tasks_expire_and_their_peers_follow(make_client, memory_cdn, clock):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client(task_expire_time=180.0, peer_gc_delay=180.0)
    service = client.server.app[SERVICE]
    task_id = (await register(client, CID))["taskId"]
    await download_all(client, task_id, CID)
    clock.now += 100
    await pull(client, task_id, CID)  # a pull counts as access
    clock.now += 179
    await admin.gc_tasks_and_peers(service)
    assert task_id in service.states, "accessed 179 s ago: not expired yet"
    clock.now += 1
    await admin.gc_tasks_and_peers(service)
    assert task_id not in service.states and service.registry.dfget_tasks == {}
    assert memory_cdn.deleted == [], "task GC keeps the disk files"
    # the peer has nothing left to serve and is older than peerGCDelay: collected too
    assert list(service.registry.peers) == [service.supernode_peer.peer_id]
    # the next registration brings the task back and refills it
    await register(client, CID)
    done, _ = await download_all(client, task_id, CID)
    assert done["code"] == 600 and len(memory_cdn.fills) == 2
    text = await (await client.get("/metrics")).text()
    assert "dragonfly_supernode_gc_tasks_total 1.0" in text
    assert "dragonfly_supernode_gc_peers_total 1.0" in text


async def test_service_down_peers_are_collected_after_the_delay(make_client, memory_cdn, clock):
    memory_cdn.origins[ORIGIN] = b"helloworld"
    client = await make_client(peer_gc_delay=60.0, task_expire_time=10_000.0)
    service = client.server.app[SERVICE]
    task_id = (await register(client, CID))["taskId"]
    await client.get(f"/peer/service/down?taskId={task_id}&cid={CID}")
    clock.now += 59
    await admin.gc_tasks_and_peers(service)
    assert service.registry.dfget_task(CID, task_id) is not None
    clock.now += 1
    await admin.gc_tasks_and_peers(service)
    assert service.registry.dfget_task(CID, task_id) is None
    assert CID not in service.states[task_id].progress.clients
    reply = await pull(client, task_id, CID)
    assert reply["code"] == 502, "a collected client must register again"


async def test_a_task_being_filled_never_expires(make_client, memory_cdn, clock):
    import asyncio

    memory_cdn.origins[ORIGIN] = bytes(9 * 1024 * 1024)
    memory_cdn.gate = asyncio.Semaphore(1)  # the fill stops after its first piece
    client = await make_client(task_expire_time=1.0)
    service = client.server.app[SERVICE]
    task_id = (await register(client, CID))["taskId"]
    await asyncio.sleep(0.05)
    clock.now += 1000
    await admin.gc_tasks_and_peers(service)
    assert task_id in service.states
    for _ in range(3):
        memory_cdn.gate.release()
    await service.states[task_id].fill_done.wait()
    await admin.gc_tasks_and_peers(service)
    assert task_id not in service.states
