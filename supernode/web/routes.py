"""The one routes table: every route, its category and its `/v<version>` twin (§2)."""

from __future__ import annotations

from aiohttp import web

from supernode.web import peer_handlers as peer
from supernode.web import system_handlers as system
from supernode.web import v1_handlers as v1

VERSION_PREFIX = "/v{version:[0-9][0-9.]*}"
LEGACY, V1, EXT = "legacy api", "v1 api", "extension api"
PREFIXES = {LEGACY: "", V1: "/api/v1", EXT: "/api/ext"}

# (category, method, path below the category prefix, handler)
ROUTES: list[tuple[str, str, str, web.Handler]] = [
    (LEGACY, "GET", "/_ping", system.ping),
    (LEGACY, "GET", "/version", system.version),
    (LEGACY, "GET", "/metrics", system.metrics),
    (LEGACY, "POST", "/peer/registry", peer.register),
    (LEGACY, "GET", "/peer/task", peer.pull_piece_task),
    (LEGACY, "GET", "/peer/piece/suc", peer.piece_success),
    (LEGACY, "GET", "/peer/piece/error", peer.piece_error),
    (LEGACY, "GET", "/peer/service/down", peer.service_down),
    (LEGACY, "POST", "/task/metrics", peer.task_metrics),
    (LEGACY, "POST", "/peer/heartbeat", peer.heartbeat),
    (LEGACY, "POST", "/peer/network", peer.network),
    (V1, "POST", "/peer/heartbeat", peer.heartbeat),
    (V1, "POST", "/peer/network", peer.network),
    (V1, "POST", "/peers", v1.create_peer),
    (V1, "GET", "/peers", v1.list_peers),
    (V1, "GET", "/peers/{id}", v1.get_peer),
    (V1, "DELETE", "/peers/{id}", v1.delete_peer),
    (V1, "POST", "/tasks", v1.create_task),
    (V1, "GET", "/tasks/{id}", v1.get_task),
    (V1, "PUT", "/tasks/{id}", v1.update_task),
    (V1, "DELETE", "/tasks/{id}", v1.delete_task),
    (V1, "GET", "/tasks/{id}/pieces", v1.pull_pieces_v1),
    (V1, "PUT", "/tasks/{id}/pieces/{range}", v1.update_piece),
    (V1, "GET", "/tasks/{id}/pieces/{range}/error", v1.piece_error_v1),
    (V1, "POST", "/tasks/{id}/pieces/{range}/error", v1.piece_error_v1),
]


def listing_paths(
    category: str, extra: list[tuple[str, str, str]] | None = None
) -> list[tuple[str, str]]:
    prefix = PREFIXES[category]
    listing_path = prefix + "/" if prefix else "/"
    rows = [("GET", listing_path)]
    rows += [(m, prefix + p) for c, m, p, _ in ROUTES if c == category]
    rows += [(m, p) for c, m, p in extra or [] if c == category]
    return rows


def add_routes(app: web.Application, extra: list[tuple[str, str, str]] | None = None) -> None:
    """Register every route, its listing, and the same under the `/v<version>` prefix.

    `extra` names routes other modules added themselves (category, method, full path), so
    the listings stay complete."""
    table: list[tuple[str, str, web.Handler]] = []
    for category, prefix in PREFIXES.items():
        listing_path = prefix + "/" if prefix else "/"
        table.append(
            ("GET", listing_path, system.listing(category, prefix, listing_paths(category, extra)))
        )
    table += [(m, PREFIXES[c] + p, h) for c, m, p, h in ROUTES]
    for method, path, handler in table:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, VERSION_PREFIX + path, handler)
