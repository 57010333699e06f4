"""A real Prometheus scrapes a real supernode while Go-dfget-like clients download through it."""

from __future__ import annotations

import hashlib
import os

import pytest
from aiohttp import web

from tests.processes import Origin, Supernode, go_dfget
from tests.prom import Prometheus, prometheus_binary

MIB = 1024 * 1024
SAVED = (
    "1 - dragonfly_supernode_origin_bytes_total / "
    "(dragonfly_supernode_cdn_served_bytes_total + dragonfly_supernode_p2p_bytes_total)"
)


@pytest.fixture
async def origin(aiohttp_server):
    origin = Origin(os.urandom(6 * MIB + 777))
    app = web.Application()
    app.router.add_get("/blob", origin.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    origin.url = f"http://127.0.0.1:{server.port}/blob"
    return origin


async def test_prometheus_sees_the_supernode_and_the_saved_traffic(tmp_path, origin):
    prometheus_binary()
    sn = Supernode(tmp_path / "home")
    await sn.start()
    prom = Prometheus(tmp_path / "prom", {"supernode": [f"127.0.0.1:{sn.port}"]})
    prom.workdir.mkdir()
    await prom.start()
    try:
        size = len(origin.body)
        for n in range(3):
            data, _ = await go_dfget(sn, origin.url, f"127.0.0.{n + 2}-{n}-1.000")
            assert hashlib.md5(data).digest() == hashlib.md5(origin.body).digest()
        await prom.wait_for('up{job="supernode"}', lambda r: r[0]["value"][1] == "1")
        origin_bytes = await prom.wait_for(
            "dragonfly_supernode_origin_bytes_total", lambda r: float(r[0]["value"][1]) > 0
        )
        assert float(origin_bytes[0]["value"][1]) == size
        served = await prom.wait_for(
            "dragonfly_supernode_cdn_served_bytes_total + dragonfly_supernode_p2p_bytes_total",
            lambda r: float(r[0]["value"][1]) >= 3 * size,
        )
        assert float(served[0]["value"][1]) == 3 * size
        saved = await prom.query(SAVED)
        assert abs(float(saved[0]["value"][1]) - 2 / 3) < 1e-9
        tasks = await prom.query('dragonfly_supernode_tasks{cdnstatus="SUCCESS"}')
        assert tasks and tasks[0]["value"][1] == "1"
    finally:
        prom.stop()
        sn.stop()
