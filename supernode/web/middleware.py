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
    metrics = request.app[METRICS]
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
        metrics.http_requests.labels(str(status), route).inc()
        metrics.http_request_duration.labels(route).observe(time.perf_counter() - started)
        metrics.http_request_size.labels(route).observe(request.content_length or 0)
        size = response.body_length if response is not None and response.prepared else 0
        if response is not None and not response.prepared and isinstance(response, web.Response):
            size = len(response.body or b"") if isinstance(response.body, bytes) else 0
        metrics.http_response_size.labels(route).observe(size)
