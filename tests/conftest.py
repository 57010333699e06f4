"""Shared fixtures: a supernode app on an in-memory CDN, driven through aiohttp's test client."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from supernode.config import SupernodeConfig, load_config
from supernode.web.app import create_app
from tests.fakes import MemoryCdn


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def config(tmp_path: Path) -> SupernodeConfig:
    return load_config(
        overrides={"home_dir": str(tmp_path / "home"), "advertise_ip": "127.0.0.1"}, env={}
    )


@pytest.fixture
def memory_cdn() -> MemoryCdn:
    return MemoryCdn()


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_600_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_client(aiohttp_client, config, memory_cdn, clock) -> Callable:
    async def make(**overrides):
        cfg = config
        if overrides:
            import dataclasses

            cfg = dataclasses.replace(config, **overrides)
        app = create_app(cfg, cdn=memory_cdn, clock=clock)
        return await aiohttp_client(app)

    return make
