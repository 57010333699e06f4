"""Fixtures of the Open API tests: an app with its tokens, and the preheat tests' registries."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from supernode.config import ClusterConfig, SupernodeConfig
from supernode.core.tokens import Scope
from supernode.oapi.app import OPEN_API
from supernode.web.app import create_app
from tests.fakes import MemoryCdn

# The real registry, the in-test stub registry and their helpers come from the preheat tests.
from tests.preheat.conftest import pki, plain, stub, token_registry  # noqa: F401

DAY = 86400.0
_NAMES = itertools.count(1)


@dataclasses.dataclass
class Api:
    """An app on a MemoryCdn with a fake clock, and helpers to mint tokens straight in its store."""

    client: object
    cdn: MemoryCdn
    clock: object
    config: SupernodeConfig

    @property
    def open_api(self):
        return self.client.app[OPEN_API]  # type: ignore[attr-defined]

    async def token(self, *scopes: Scope, name: str = "", lifetime: float = 30 * DAY) -> str:
        chosen = scopes or (Scope.JOB, Scope.CLUSTER)
        name = name or f"t-{'-'.join(s.value for s in chosen)}-{next(_NAMES)}"
        issued = await self.open_api.tokens.issue(name, chosen, self.clock() + lifetime)
        return issued.token

    async def bearer(self, *scopes: Scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(*scopes)}"}


@pytest.fixture
def make_api(aiohttp_client, tmp_path: Path, clock) -> Callable:
    async def make(home: Path | None = None, cdn: MemoryCdn | None = None, **overrides) -> Api:
        cluster = overrides.pop("cluster", ClusterConfig())
        config = SupernodeConfig(
            home_dir=home or tmp_path / "home", advertise_ip="127.0.0.1", cluster=cluster
        )
        config = dataclasses.replace(config, **overrides)
        cdn = cdn or MemoryCdn()
        client = await aiohttp_client(create_app(config, cdn=cdn, clock=clock))
        return Api(client, cdn, clock, config)

    return make


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()
