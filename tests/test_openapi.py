"""specs/openapi.yaml is a valid OpenAPI document and lists every route the app serves."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

from supernode.web.app import create_app
from tests.fakes import MemoryCdn

VERSION_PREFIX = "/v{version}"  # how aiohttp names the prefixed routes
SPEC = Path(__file__).resolve().parent.parent / "specs" / "openapi.yaml"


def test_spec_is_valid():
    validate(yaml.safe_load(SPEC.read_text()))


def test_every_served_route_is_in_the_spec(config):
    spec = yaml.safe_load(SPEC.read_text())
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    }
    app = create_app(config, cdn=MemoryCdn())
    served, prefixed = set(), set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if path.startswith(VERSION_PREFIX):
            prefixed.add((route.method, path[len(VERSION_PREFIX) :]))
        else:
            served.add((route.method, path))
    assert served, "the app serves no route?"
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    assert prefixed == served, "every route must also be served under /v<version>"
