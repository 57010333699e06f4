"""Middleware: errors → status code and body once; per-route request metrics."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from supernode.errors import SupernodeError
from supernode.web.keys import METRICS
from supernode.web.replies import error_reply

log = logging.getLogger("supernode.web")


@web.middleware
async def errors(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Service errors carry their status; aiohttp's own errors keep theirs; anything else is a
    500 without a traceback in the body (the traceback goes to the log)."""
    try:
        return await handler(request)
    except SupernodeError as exc:
        return error_reply(exc.status, exc.message)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_reply(exc.status, "request body too large")
    except web.HTTPNotFound:
        # What gorilla/mux answers for a route it does not know.
        return web.Response(status=404, text="404 page not found\n")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_reply(500, "internal error")


@web.middleware
async def request_metrics(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "notfound"
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        size = 0
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            size = len(response.body)
        elif response is not None and response.prepared:
            size = response.body_length
        request.app[METRICS].observe_request(
            route, status, time.perf_counter() - started, request.content_length or 0, size
        )
