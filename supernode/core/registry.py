"""Tasks, peers and dfget-tasks held in memory, and which of them have expired (§8, §9.4).

How it works: every registration creates a new peer (id `<host>-<ip>-<ns>`) and one dfget-task
keyed `<cid>@<taskId>`; a task is shared by all dfget-tasks of the same task id. The supernode
itself is a peer too, with one pseudo dfget-task per task (cid `cdnnode:<ip>~<taskId>`). Nothing
here touches disk or the network; callers pass `now` (seconds since the epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supernode.protocol.codes import CdnStatus, DfgetTaskStatus, PeerPattern
from supernode.protocol.ids import dfget_task_key


@dataclass(slots=True)
class Task:
    """One file being distributed (TaskInfo); mutable state owned by the service."""

    task_id: str
    task_url: str
    raw_url: str
    md5: str
    identifier: str
    headers: dict[str, str]
    http_file_length: int
    piece_size: int
    piece_total: int
    access_time: float
    cdn_status: CdnStatus = CdnStatus.WAITING
    real_md5: str = ""
    file_length: int = 0
    fail_reason: str = ""
    origin_bytes: int = 0
    cdn_bytes_served: int = 0
    p2p_bytes: int = 0


@dataclass(slots=True)
class Peer:
    """A registered host process (PeerInfo)."""

    peer_id: str
    ip: str
    host_name: str
    port: int
    version: str
    created: float
    service_down_time: float | None = None


@dataclass(slots=True)
class DfgetTask:
    """One dfget process downloading one task."""

    cid: str
    task_id: str
    peer_id: str
    path: str
    pattern: PeerPattern
    call_system: str
    super_node_ip: str
    status: DfgetTaskStatus = DfgetTaskStatus.WAITING
    registered_at: float = 0.0
    finished_at: float | None = None  # first 600 handed to this download

    @property
    def key(self) -> str:
        return dfget_task_key(self.cid, self.task_id)


@dataclass(slots=True)
class Registry:
    """The three maps and their relations; every mutation goes through a method."""

    tasks: dict[str, Task] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    dfget_tasks: dict[str, DfgetTask] = field(default_factory=dict)
    unreachable: dict[str, float] = field(default_factory=dict)  # task URL → time of the 404

    def add_peer(self, peer: Peer) -> None:
        self.peers[peer.peer_id] = peer

    def add_dfget_task(self, dfget_task: DfgetTask) -> None:
        self.dfget_tasks[dfget_task.key] = dfget_task

    def dfget_task(self, cid: str, task_id: str) -> DfgetTask | None:
        return self.dfget_tasks.get(dfget_task_key(cid, task_id))

    def dfget_tasks_of_task(self, task_id: str) -> list[DfgetTask]:
        return [d for d in self.dfget_tasks.values() if d.task_id == task_id]

    def dfget_tasks_of_peer(self, peer_id: str) -> list[DfgetTask]:
        return [d for d in self.dfget_tasks.values() if d.peer_id == peer_id]

    def remove_task(self, task_id: str) -> list[DfgetTask]:
        """Drop a task and its dfget-tasks; return the dfget-tasks removed."""
        self.tasks.pop(task_id, None)
        removed = self.dfget_tasks_of_task(task_id)
        for dfget_task in removed:
            del self.dfget_tasks[dfget_task.key]
        return removed

    def remove_peer(self, peer_id: str) -> list[DfgetTask]:
        self.peers.pop(peer_id, None)
        removed = self.dfget_tasks_of_peer(peer_id)
        for dfget_task in removed:
            del self.dfget_tasks[dfget_task.key]
        return removed

    def is_unreachable(self, task_url: str, now: float, fail_access_interval: float) -> bool:
        since = self.unreachable.get(task_url)
        if since is None:
            return False
        if now - since < fail_access_interval:
            return True
        del self.unreachable[task_url]
        return False

    def expired_tasks(self, now: float, task_expire_time: float) -> list[str]:
        """Tasks not accessed (registration or pull) for `task_expire_time` (§9.4)."""
        return [t.task_id for t in self.tasks.values() if now - t.access_time >= task_expire_time]

    def expired_peers(
        self, now: float, peer_gc_delay: float, supernode_peer_id: str, peers_with_tasks: set[str]
    ) -> list[str]:
        """Non-supernode peers with no dfget-task left, or service-down for `peer_gc_delay`."""
        expired = []
        for peer in self.peers.values():
            if peer.peer_id == supernode_peer_id:
                continue
            down = peer.service_down_time
            down_long = down is not None and now - down >= peer_gc_delay
            idle = peer.peer_id not in peers_with_tasks and now - peer.created >= peer_gc_delay
            if down_long or idle:
                expired.append(peer.peer_id)
        return expired


def sort_peers(peers: list[Peer], keys: list[str], descending: bool) -> list[Peer]:
    """`GET /api/v1/peers` order: by each sort key in turn (default: creation time)."""
    attr = {
        "ID": "peer_id",
        "IP": "ip",
        "created": "created",
        "hostName": "host_name",
        "port": "port",
        "version": "version",
    }
    names = [attr[k] for k in keys if k in attr] or ["created", "peer_id"]
    return sorted(peers, key=lambda p: tuple(getattr(p, n) for n in names), reverse=descending)


def page(items: list[Peer], page_num: int, page_size: int) -> list[Peer]:
    """pageSize 0 = everything (the Go default); pages count from 0."""
    if page_size <= 0:
        return items
    start = page_num * page_size
    return items[start : start + page_size]
