"""Handlers of `/_ping`, `/version`, `/metrics` and the route listings."""

from __future__ import annotations

import json
import platform
import sys

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from supernode.version import VERSION
from supernode.web.keys import METRICS
from supernode.web.replies import json_reply

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "AMD64": "amd64", "arm64": "arm64"}


async def ping(request: web.Request) -> web.Response:
    return web.Response(body=b"OK", content_type="text/plain")


async def version(request: web.Request) -> web.Response:
    """Go writes the marshalled struct without a content type, so it is sniffed as text."""
    body = {
        "Arch": _ARCH.get(platform.machine(), platform.machine()),
        "BuildDate": "",
        "GoVersion": f"python{platform.python_version()}",
        "OS": sys.platform,
        "Version": VERSION,
    }
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), content_type="text/plain"
    )


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def listing(category: str, prefix: str, api: list[tuple[str, str]]) -> web.Handler:
    """`{"category","prefix","api":[{"method","path"}]}` of one route category."""
    body = {
        "category": category,
        "prefix": prefix,
        "api": [{"method": m, "path": p} for m, p in api],
    }

    async def handler(request: web.Request) -> web.Response:
        return json_reply(body)

    return handler
