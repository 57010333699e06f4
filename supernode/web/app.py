"""The app factory: builds the control-plane app and, beside it, the download-port app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from supernode import admin
from supernode.cdn.interface import Cdn
from supernode.config import SupernodeConfig
from supernode.metrics import SupernodeMetrics
from supernode.service import SupernodeService
from supernode.warming import ServiceWarmer
from supernode.web import middleware
from supernode.web.keys import CLOCK, CONFIG, METRICS, SERVICE
from supernode.web.routes import add_routes

log = logging.getLogger("supernode")


def default_cdn(config: SupernodeConfig, metrics: SupernodeMetrics) -> Cdn:
    from supernode.cdn.manager import DiskCdn

    return DiskCdn(config, metrics)


def create_app(
    config: SupernodeConfig,
    *,
    clock: Callable[[], float] = time.time,
    cdn: Cdn | None = None,
    metrics: SupernodeMetrics | None = None,
) -> web.Application:
    """The control plane on `listenPort`. Every background loop lives in `cleanup_ctx`."""
    metrics = metrics or SupernodeMetrics()
    app = web.Application(
        middlewares=[middleware.request_metrics, middleware.errors],
        client_max_size=config.max_body_size,
    )
    app[CONFIG] = config
    app[METRICS] = metrics
    app[CLOCK] = clock
    service = SupernodeService(config, cdn or default_cdn(config, metrics), metrics, clock=clock)
    app[SERVICE] = service
    # Registered first so that it is cleaned up last: preheat jobs stop before the CDN closes.
    app.cleanup_ctx.append(_background_loops)
    extra = _install_preheat(app, service, config, metrics)
    add_routes(app, extra)
    return app


def _install_preheat(
    app: web.Application,
    service: SupernodeService,
    config: SupernodeConfig,
    metrics: SupernodeMetrics,
) -> list[tuple[str, str, str]]:
    """Preheat routes come from `supernode.preheat.app` once it is there."""
    try:
        from supernode.preheat import app as preheat_app
    except ImportError:
        return []
    before = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    preheat_app.install(app, ServiceWarmer(service), config, metrics)
    from supernode.oapi import app as oapi_app  # the Open API runs on the same preheat engine

    oapi_app.install(app, app[preheat_app.PREHEAT_ENGINE], config, metrics)
    added = []
    for route in app.router.routes():
        if route.resource is None or (route.method, route.resource.canonical) in before:
            continue
        path = route.resource.canonical
        if path.startswith("/v{"):
            continue
        category = "v1 api" if path.startswith("/api/v1") else "legacy api"
        added.append((category, route.method, path))
    return added


async def _background_loops(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    service = app[SERVICE]
    loops = [
        asyncio.create_task(
            _every(config.gc_initial_delay, config.gc_meta_interval, _meta(service))
        ),
        asyncio.create_task(
            _every(config.gc_initial_delay, config.gc_disk_interval, _disk(service))
        ),
    ]
    yield
    for loop in loops:
        loop.cancel()
    for loop in loops:
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    await service.close()


def _meta(service: SupernodeService) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await admin.gc_tasks_and_peers(service)

    return run


def _disk(service: SupernodeService) -> Callable[[], Awaitable[None]]:
    # On the loop, not in a thread: the sweep must see the same in-use marks the download
    # server sets, and it is only stat() and unlink() calls.
    async def run() -> None:
        admin.gc_disk(service)

    return run


async def _every(delay: float, interval: float, job: Callable[[], Awaitable[None]]) -> None:
    await asyncio.sleep(delay)
    while True:
        try:
            await job()
        except Exception:  # one bad sweep must not stop the loop
            log.exception("background job %s failed", getattr(job, "__name__", job))
        await asyncio.sleep(max(interval, 0.05))
