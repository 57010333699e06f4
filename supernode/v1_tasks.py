"""The four task/piece routes the swagger documents and the Go supernode never routed.

They are the v1 spelling of what `/peer/*` does, on peers created by `POST /api/v1/peers`:
`POST /api/v1/tasks` registers a dfget-task, `GET …/pieces` pulls assignments (PieceInfo
shape), `PUT …/pieces/{range}` reports one piece, `PUT /api/v1/tasks/{id}` says a peer holds
the whole task. They call the same service methods as the legacy routes.
"""

from __future__ import annotations

from typing import Any

from supernode.errors import BadRequest, InvalidValue, NotFound, SupernodeError
from supernode.protocol import ids
from supernode.protocol.codes import CdnStatus, DfgetTaskStatus, PieceResult, PullStatus, ResultCode
from supernode.service import SupernodeService

_STATUS = {
    "STARTED": PullStatus.STARTED,
    "RUNNING": PullStatus.RUNNING,
    "FINISHED": PullStatus.FINISHED,
}
_RESULT = {
    "FAILED": PieceResult.FAILED,
    "SUCCESS": PieceResult.SUCCESS,
    "INVALID": PieceResult.INVALID,
    "SEMISUC": PieceResult.SEMISUC,
}


async def create_task(service: SupernodeService, body: dict[str, Any]) -> dict[str, Any]:
    peer = service.registry.peers.get(body["peer_id"])
    if peer is None:
        raise NotFound(f"peer {body['peer_id']} not found")
    cid = body["cid"] or f"{peer.ip}-{peer.peer_id}"
    request = {
        "raw_url": body["raw_url"],
        "task_url": body["task_url"],
        "filter": body["filter"],
        "md5": body["md5"],
        "identifier": body["identifier"],
        "headers": [f"{k}: {v}" for k, v in body["headers"].items()],
        "insecure": False,
        "root_cas": [],
        "cid": cid,
        "ip": peer.ip,
        "host_name": peer.host_name,
        "port": peer.port,
        "version": peer.version,
        "path": body["path"] or "/",
        "pattern": "p2p" if peer.port else "cdn",
        "call_system": body["call_system"],
        "super_node_ip": body["super_node_ip"],
    }
    data = await service.register(request, peer=peer)
    return {"ID": data["taskId"], "fileLength": data["fileLength"], "pieceSize": data["pieceSize"]}


def _client_cid(service: SupernodeService, task_id: str, client_id: str) -> str:
    if service.registry.dfget_task(client_id, task_id) is None:
        raise NotFound(f"client {client_id} of task {task_id} not found")
    return client_id


def _dst_cid(service: SupernodeService, task_id: str, dst_pid: str) -> str:
    """Uploader peer id → its cid on this task ("" when unknown)."""
    if not dst_pid:
        return ""
    if dst_pid == service.supernode_peer.peer_id:
        return ids.supernode_cid(service.advertise_ip, task_id)
    for dfget_task in service.registry.dfget_tasks_of_peer(dst_pid):
        if dfget_task.task_id == task_id:
            return dfget_task.cid
    return ""


def pull(
    service: SupernodeService, task_id: str, client_id: str, body: dict[str, Any], num: int
) -> list[dict[str, Any]]:
    service.get_task(task_id)
    status = _STATUS[body["dfget_task_status"]]
    if status is PullStatus.RUNNING and not body["piece_range"]:
        # Pieces are reported by PUT …/pieces/{range}; a bare RUNNING pull only asks for more.
        status = PullStatus.STARTED
    query = {
        "task_id": task_id,
        "src_cid": _client_cid(service, task_id, client_id),
        "dst_cid": _dst_cid(service, task_id, body["dst_pid"]),
        "range": body["piece_range"],
        "result": str(_RESULT[body["piece_result"]].value),
        "status": str(status.value),
    }
    reply = service.pull(query, max_new=num)
    if reply.code == ResultCode.TARGET_NOT_FOUND:
        raise NotFound(reply.msg)
    if reply.code == ResultCode.PARAM_ERROR:
        raise BadRequest(reply.msg)
    if reply.code == ResultCode.SYSTEM_ERROR:
        raise SupernodeError(reply.msg)
    if reply.code != ResultCode.PEER_CONTINUE or not reply.data:
        return []
    out = []
    for item in reply.data:
        src_peer = service.supernode_peer.peer_id
        if not ids.is_supernode_cid(item["cid"]):
            source = service.registry.dfget_task(item["cid"], task_id)
            src_peer = source.peer_id if source is not None else ""
        out.append(
            {
                "pID": src_peer,
                "path": item["path"],
                "peerIP": item["peerIp"],
                "peerPort": item["peerPort"],
                "pieceMD5": item["pieceMd5"],
                "pieceRange": item["range"],
                "pieceSize": item["pieceSize"],
            }
        )
    return out


def update_piece(
    service: SupernodeService, task_id: str, piece_range: str, body: dict[str, Any]
) -> None:
    state = service.get_task(task_id)
    cid = _client_cid(service, task_id, body["client_id"])
    dst_cid = _dst_cid(service, task_id, body["dst_pid"])
    status = body["piece_status"]
    if status in {"SUCCESS", "SEMISUC"}:
        if not dst_cid:
            raise NotFound(f"uploader {body['dst_pid']!r} of task {task_id} not found")
        query = {"task_id": task_id, "cid": cid, "dst_cid": dst_cid, "piece_range": piece_range}
        try:
            service.piece_success(query)
        except InvalidValue as exc:
            raise BadRequest(exc.message) from exc
        return
    if status != "FAILED":
        raise BadRequest(f"pieceStatus {status} cannot be reported")
    try:
        piece_num = service.piece_num_of(state.task, piece_range)
    except InvalidValue as exc:
        raise BadRequest(exc.message) from exc
    client = state.progress.clients[cid]
    src = service.resolve_source(task_id, dst_cid)
    state.progress.piece_failed(
        client, piece_num, src, service.clock(), service.limits.elimination_limit
    )


def peer_finished(service: SupernodeService, task_id: str, peer_id: str) -> None:
    state = service.get_task(task_id)
    if not peer_id:
        raise BadRequest("peerID is required")
    targets = [d for d in service.registry.dfget_tasks_of_peer(peer_id) if d.task_id == task_id]
    if not targets:
        raise NotFound(f"peer {peer_id} has no dfget-task on task {task_id}")
    task = state.task
    if task.cdn_status is not CdnStatus.SUCCESS or task.piece_total <= 0:
        raise BadRequest(f"task {task_id} is not complete on the supernode yet")
    for dfget_task in targets:
        client = state.progress.clients[dfget_task.cid]
        now = service.clock()
        for piece_num in range(task.piece_total):
            state.progress.piece_succeeded(client, piece_num, None, now)
            state.progress.add_holder(client, piece_num)
        service.set_dfget_status(dfget_task, DfgetTaskStatus.SUCCESS)
