"""Handlers of the legacy `/peer/*` family and `/task/metrics`: what a Go dfget calls (§3)."""

from __future__ import annotations

from aiohttp import web

from supernode.errors import SupernodeError
from supernode.protocol import wire
from supernode.protocol.codes import ResultCode
from supernode.web.keys import SERVICE
from supernode.web.replies import (
    WireError,
    form_to_register,
    json_reply,
    load,
    load_query,
    read_json,
)


async def register(request: web.Request) -> web.Response:
    """Every failure is HTTP 500 `{"code":500,"message":...}`: dfget then tries the next node."""
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            lists = {key: [str(v) for v in form.getall(key)] for key in form}
            data = form_to_register(form, lists)
        else:
            data = await read_json(request, status=500)
        body = load(wire.REGISTER_REQUEST, data, status=500)
        reply = await request.app[SERVICE].register(body)
    except SupernodeError as exc:
        raise WireError(
            exc.df_text() if not isinstance(exc, WireError) else exc.message, 500
        ) from exc
    return json_reply(wire.result_info(ResultCode.SUCCESS, reply, "success"))


async def pull_piece_task(request: web.Request) -> web.Response:
    """Always HTTP 200; the code in the body drives dfget (§3.2, §4)."""
    query = load_query(wire.PULL_QUERY, request)
    reply = request.app[SERVICE].pull(query)
    return json_reply(wire.result_info(reply.code, reply.data, reply.msg))


async def piece_success(request: web.Request) -> web.Response:
    query = load_query(wire.PIECE_SUC_QUERY, request)
    try:
        request.app[SERVICE].piece_success(query)
    except SupernodeError as exc:
        raise WireError(exc.df_text(), 500) from exc
    return json_reply(wire.result_info(ResultCode.GET_PIECE_REPORT))


async def piece_error(request: web.Request) -> web.Response:
    query = load_query(wire.PIECE_ERROR_FLAT, request)
    try:
        request.app[SERVICE].piece_errors.report(query)
    except SupernodeError as exc:
        raise WireError(exc.message, 500) from exc
    return web.Response(status=200)


async def service_down(request: web.Request) -> web.Response:
    query = load_query(wire.SERVICE_DOWN_QUERY, request)
    try:
        request.app[SERVICE].service_down(query)
    except SupernodeError as exc:
        raise WireError(exc.df_text(), 500) from exc
    return json_reply(wire.result_info(ResultCode.GET_PEER_DOWN))


async def task_metrics(request: web.Request) -> web.Response:
    """Answered `{"code":1}` so a Go dfget does not post the same report twice (§3.6)."""
    data = await read_json(request, status=500)
    body = load(wire.TASK_METRICS, data, status=500)
    request.app[SERVICE].download_reported(body)
    return json_reply({"code": 1})


async def heartbeat(request: web.Request) -> web.Response:
    await read_json(request, status=400, allow_empty=True)
    return json_reply({"seedTaskIDs": None})


async def network(request: web.Request) -> web.Response:
    await read_json(request, status=400, allow_empty=True)
    return json_reply({"nodes": None})
