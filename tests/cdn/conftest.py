"""Fixtures of the CDN tests: a running test origin and DiskCdn instances on a temp home."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cdn_testkit import Origin

from supernode.cdn.manager import DiskCdn
from supernode.config import SupernodeConfig
from supernode.metrics import SupernodeMetrics


@pytest.fixture
async def origin(aiohttp_server) -> Origin:  # type: ignore[no-untyped-def]
    state = Origin()
    server = await aiohttp_server(state.app(), host="127.0.0.1")
    state.base = str(server.make_url("")).rstrip("/")
    return state


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., SupernodeConfig]:
    def build(**overrides: object) -> SupernodeConfig:
        values: dict[str, object] = {
            "home_dir": tmp_path / "home",
            "max_bandwidth": 0,  # no origin rate limit unless a test asks for one
            "system_reserved_bandwidth": 0,
        }
        values.update(overrides)
        return SupernodeConfig(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
async def make_cdn(make_config) -> AsyncIterator[Callable[..., DiskCdn]]:  # type: ignore[no-untyped-def]
    made: list[DiskCdn] = []

    def build(config: SupernodeConfig | None = None, **kwargs: object) -> DiskCdn:
        cdn = DiskCdn(config or make_config(), SupernodeMetrics(), **kwargs)  # type: ignore[arg-type]
        made.append(cdn)
        return cdn

    yield build
    for cdn in made:
        await cdn.close()
