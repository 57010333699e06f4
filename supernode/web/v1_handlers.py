"""Handlers of `/api/v1/peers` and `/api/v1/tasks…` (§2, seed 004's shapes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from supernode import admin, v1_tasks
from supernode.core.registry import Peer, page, sort_peers
from supernode.errors import BadRequest, NotFound, SupernodeError
from supernode.protocol import ids, wire
from supernode.service import SupernodeService
from supernode.web.keys import SERVICE
from supernode.web.replies import WireError, empty_reply, json_reply, load, read_json


def rfc3339_millis(seconds: float) -> str:
    """strfmt.DateTime: `2006-01-02T15:04:05.000Z`."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def peer_info(peer: Peer) -> dict[str, Any]:
    return {
        "ID": peer.peer_id,
        "IP": peer.ip,
        "created": rfc3339_millis(peer.created),
        "hostName": peer.host_name,
        "port": peer.port,
        "version": peer.version,
    }


def _omit_empty(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if v not in (None, "", 0, {}, False)}


def task_info(service: SupernodeService, task_id: str) -> dict[str, Any]:
    """TaskInfo with Go's omitempty, plus additive fields (failReason, traffic counters)."""
    state = service.get_task(task_id)
    task = state.task
    info = _omit_empty(
        {
            "ID": task.task_id,
            "cdnStatus": task.cdn_status.value,
            "fileLength": task.file_length,
            "headers": dict(task.headers),
            "httpFileLength": task.http_file_length,
            "identifier": task.identifier,
            "md5": task.md5,
            "pieceSize": task.piece_size,
            "pieceTotal": task.piece_total,
            "rawURL": task.raw_url,
            "realMd5": task.real_md5,
            "taskURL": task.task_url,
        }
    )
    if task.fail_reason:
        info["failReason"] = task.fail_reason
    info["piecesReady"] = state.progress.cdn_done.bit_count()
    info["originBytes"] = task.origin_bytes
    info["cdnServedBytes"] = task.cdn_bytes_served
    info["p2pBytes"] = task.p2p_bytes
    return info


def _task_id(request: web.Request) -> str:
    task_id = request.match_info["id"]
    if not ids.is_task_id(task_id):
        raise WireError(f"invalid task id {task_id!r}: want 64 lowercase hex characters", 400)
    return task_id


def _as_500(exc: SupernodeError) -> WireError:
    return WireError(exc.df_text(), 500)


# ---- peers -----------------------------------------------------------------------------------


async def create_peer(request: web.Request) -> web.Response:
    data = await read_json(request, status=500)
    body = load(wire.PEER_CREATE, data, status=500)
    peer_id = admin.create_peer(request.app[SERVICE], body)
    return json_reply({"ID": peer_id}, 201)


async def list_peers(request: web.Request) -> web.Response:
    query: dict[str, Any] = {k: v for k, v in request.query.items() if k != "sortKey"}
    query["sortKey"] = request.query.getall("sortKey", [])
    try:
        params = wire.PEER_LIST_QUERY.load(query)
    except wire.ValidationError as exc:
        raise WireError(wire.first_error(exc), 400) from exc
    peers = list(request.app[SERVICE].registry.peers.values())
    ordered = sort_peers(peers, params["sort_key"], params["sort_direct"] == "DESC")
    return json_reply(
        [peer_info(p) for p in page(ordered, params["page_num"], params["page_size"])]
    )


async def get_peer(request: web.Request) -> web.Response:
    try:
        peer = admin.get_peer(request.app[SERVICE], request.match_info["id"])
    except NotFound as exc:
        raise _as_500(exc) from exc
    return json_reply(peer_info(peer))


async def delete_peer(request: web.Request) -> web.Response:
    try:
        admin.delete_peer(request.app[SERVICE], request.match_info["id"])
    except NotFound as exc:
        raise _as_500(exc) from exc
    except BadRequest as exc:
        raise WireError(exc.message, 400) from exc
    return empty_reply()


# ---- tasks -----------------------------------------------------------------------------------


async def get_task(request: web.Request) -> web.Response:
    task_id = _task_id(request)
    try:
        return json_reply(task_info(request.app[SERVICE], task_id))
    except NotFound as exc:
        raise _as_500(exc) from exc


async def delete_task(request: web.Request) -> web.Response:
    task_id = _task_id(request)
    full_text = request.query.get("full", "false").lower()
    if full_text not in {"true", "false", "1", "0", "t", "f"}:
        raise WireError(f"invalid full {full_text!r}: want true or false", 400)
    try:
        await request.app[SERVICE].delete_task(task_id, full=full_text in {"true", "1", "t"})
    except NotFound as exc:
        raise _as_500(exc) from exc
    return empty_reply()


async def piece_error_v1(request: web.Request) -> web.Response:
    """GET (as routed by Go) or POST (as documented) with a PieceErrorRequest body."""
    task_id = _task_id(request)
    data = await read_json(request, status=400, allow_empty=True)
    body = load(wire.PIECE_ERROR_QUERY, data, status=400)
    body["task_id"] = task_id
    body["range"] = request.match_info["range"]
    try:
        request.app[SERVICE].piece_errors.report(body)
    except SupernodeError as exc:
        raise WireError(exc.message, 500) from exc
    return empty_reply()


async def create_task(request: web.Request) -> web.Response:
    """POST /api/v1/tasks: a dfget-task for a peer created by POST /api/v1/peers."""
    data = await read_json(request, status=400)
    body = load(wire.TASK_CREATE, data, status=400)
    service = request.app[SERVICE]
    try:
        reply = await v1_tasks.create_task(service, body)
    except NotFound as exc:
        raise WireError(exc.message, 404) from exc
    except SupernodeError as exc:
        raise WireError(exc.df_text(), 500) from exc
    return json_reply(reply, 201)


async def update_task(request: web.Request) -> web.Response:
    """PUT /api/v1/tasks/{id}: `peerID` has finished the whole task and can serve all of it."""
    task_id = _task_id(request)
    data = await read_json(request, status=400)
    body = load(wire.TASK_UPDATE, data, status=400)
    try:
        v1_tasks.peer_finished(request.app[SERVICE], task_id, body["peer_id"])
    except NotFound as exc:
        raise WireError(exc.message, 404) from exc
    except SupernodeError as exc:
        raise WireError(exc.message, exc.status) from exc
    return empty_reply()


async def pull_pieces_v1(request: web.Request) -> web.Response:
    """GET /api/v1/tasks/{id}/pieces?clientID=&num=: the v1 form of `/peer/task`."""
    task_id = _task_id(request)
    client_id = request.query.get("clientID", "")
    if not client_id:
        raise WireError("clientID is required", 400)
    num_text = request.query.get("num", "4")
    if not num_text.isdigit() or not 1 <= int(num_text) <= 1000:
        raise WireError(f"invalid num {num_text!r}: want 1..1000", 400)
    data = await read_json(request, status=400, allow_empty=True)
    body = load(wire.PIECE_PULL, data, status=400)
    try:
        pieces = v1_tasks.pull(request.app[SERVICE], task_id, client_id, body, int(num_text))
    except NotFound as exc:
        raise WireError(exc.message, 404) from exc
    except SupernodeError as exc:
        raise WireError(exc.message, exc.status) from exc
    return json_reply(pieces)


async def update_piece(request: web.Request) -> web.Response:
    """PUT /api/v1/tasks/{id}/pieces/{range}: the v1 form of `/peer/piece/suc` and failures."""
    task_id = _task_id(request)
    data = await read_json(request, status=400)
    body = load(wire.PIECE_UPDATE, data, status=400)
    try:
        v1_tasks.update_piece(request.app[SERVICE], task_id, request.match_info["range"], body)
    except NotFound as exc:
        raise WireError(exc.message, 404) from exc
    except SupernodeError as exc:
        raise WireError(exc.message, exc.status if exc.status != 500 else 400) from exc
    return empty_reply()
