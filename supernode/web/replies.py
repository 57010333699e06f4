"""How replies are written: Go-style JSON bodies, empty bodies, request loading helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from supernode.errors import SupernodeError
from supernode.protocol import wire

JSON = "application/json"


def json_reply(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=wire.dumps(obj), status=status, content_type=JSON)


def empty_reply(status: int = 200) -> web.Response:
    """Go's EncodeResponse with nil data: the JSON content type and no body."""
    response = web.Response(status=status)
    response.headers["Content-Type"] = JSON
    return response


def error_reply(status: int, message: str) -> web.Response:
    return json_reply(wire.error_response(status, message), status)


class WireError(SupernodeError):
    """A request that failed to load; `status` is chosen per route (Go gives 500 or 400)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def load(schema: Any, data: Any, *, status: int) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except wire.ValidationError as exc:
        raise WireError(wire.first_error(exc), status) from exc
    return loaded


def load_query(loader: wire.FlatStringQuery, request: web.Request) -> dict[str, str]:
    """Query strings of the `/peer/*` family; the first value of a repeated key wins, as in Go."""
    return loader.load(request.query)


async def read_json(request: web.Request, *, status: int, allow_empty: bool = False) -> Any:
    body = await request.read()
    if not body.strip():
        if allow_empty:
            return {}
        raise WireError("empty request", status)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"invalid JSON: {exc}", status) from exc


def form_to_register(form: Mapping[str, Any], lists: Mapping[str, list[str]]) -> dict[str, Any]:
    """`application/x-www-form-urlencoded` registration (gorilla/schema in Go) → JSON shape."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        lower = key.lower()
        if lower == "port":
            out[key] = int(value) if str(value).isdigit() else value
        elif lower in {"dfdaemon", "insecure"}:
            out[key] = str(value).lower() == "true"
        elif lower in {"headers", "rootcas", "filter"}:
            out[key] = lists.get(key, [])
        else:
            out[key] = value
    return out
