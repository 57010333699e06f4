"""Operator-side work on the registries: peers created by hand, and the GC of tasks and peers."""

from __future__ import annotations

import time
from typing import Any

from supernode.core.registry import Peer
from supernode.errors import BadRequest, NotFound
from supernode.protocol import ids
from supernode.protocol.codes import CdnStatus
from supernode.service import SupernodeService


def create_peer(service: SupernodeService, body: dict[str, Any]) -> str:
    peer = Peer(
        peer_id=ids.peer_id(body["host_name"], body["ip"], time.time_ns()),
        ip=body["ip"],
        host_name=body["host_name"],
        port=body["port"],
        version=body["version"],
        created=service.clock(),
    )
    service.registry.add_peer(peer)
    service.metrics.peers.labels(peer.ip).inc()
    return peer.peer_id


def get_peer(service: SupernodeService, peer_id: str) -> Peer:
    peer = service.registry.peers.get(peer_id)
    if peer is None:
        raise NotFound(f"peer {peer_id} not found")
    return peer


def delete_peer(service: SupernodeService, peer_id: str) -> None:
    peer = get_peer(service, peer_id)
    if peer.peer_id == service.supernode_peer.peer_id:
        raise BadRequest("the supernode's own peer cannot be deleted")
    _drop_peer(service, peer)


def _drop_peer(service: SupernodeService, peer: Peer) -> None:
    removed = service.registry.remove_peer(peer.peer_id)
    service.forget_dfget_tasks(removed, service.clock())
    service.metrics.peers.labels(peer.ip).dec()


async def gc_tasks_and_peers(service: SupernodeService) -> None:
    """§9.4: tasks idle for `taskExpireTime`; peers down for `peerGCDelay` or left idle."""
    config = service.config
    now = service.clock()
    service.metrics.gc_runs.labels("meta").inc()
    for task_id in service.registry.expired_tasks(now, config.task_expire_time):
        state = service.states.get(task_id)
        if state is not None and state.task.cdn_status is CdnStatus.RUNNING:
            continue  # never expire a task while its fill is writing
        await service.delete_task(task_id, full=False)
    with_tasks = {d.peer_id for d in service.registry.dfget_tasks.values()}
    expired = service.registry.expired_peers(
        now, config.peer_gc_delay, service.supernode_peer.peer_id, with_tasks
    )
    for peer_id in expired:
        peer = service.registry.peers.get(peer_id)
        if peer is not None:
            _drop_peer(service, peer)
            service.metrics.gc_peers.inc()


def gc_disk(service: SupernodeService) -> int:
    """The disk sweep of the CDN, told which tasks are still in memory (the CDN counts what it
    removes)."""
    service.metrics.gc_runs.labels("disk").inc()
    return service.cdn.gc_sweep(frozenset(service.states), service.clock())
