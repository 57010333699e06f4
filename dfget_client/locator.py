"""The supernode list: `host[:port][=weight]` parsing, weights, one shuffle, failover order (§3.8).

How it works: every node is repeated `weight / gcd(weights)` times (the repeats are the same
object), the list is shuffled once, and `next()` walks it without wrapping around. Registration
and migration both consume the list through `next()`, so each failure moves on and a dfget
never loops over dead supernodes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_SUPERNODE_PORT = 8002
DEFAULT_NODE = "127.0.0.1"


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One configured supernode; identity (not value) tells two listed copies apart."""

    host: str
    port: int = DEFAULT_SUPERNODE_PORT
    weight: int = 1

    @property
    def addr(self) -> str:
        """`host:port`, as dfget writes it into URLs and into `superNode=` of the uploader."""
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Node({self.addr}={self.weight})"


def parse_node(text: str) -> Node:
    """`host[:port][=weight]` → Node; ValueError with a readable message otherwise."""
    item = text.strip()
    if not item:
        raise ValueError("empty supernode address")
    if item.count("=") > 1 or item.count(":") > 1:
        raise ValueError(f"invalid supernode address {text!r}: use host[:port][=weight]")
    addr, _, weight_text = item.partition("=")
    host, colon, port_text = addr.partition(":")
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise ValueError(f"invalid supernode host in {text!r}")
    port = DEFAULT_SUPERNODE_PORT
    if colon:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid supernode port in {text!r}")
        port = int(port_text)
    weight = 1
    if weight_text or item.endswith("="):
        if not weight_text.isdigit() or int(weight_text) < 1:
            raise ValueError(f"invalid supernode weight in {text!r}")
        weight = int(weight_text)
    return Node(host, port, weight)


def parse_nodes(items: Iterable[str]) -> list[Node]:
    """Each item may itself be a comma-separated list (`--node a,b --node c`)."""
    nodes: list[Node] = []
    for item in items:
        nodes.extend(parse_node(part) for part in item.split(",") if part.strip())
    return nodes


def format_nodes(nodes: Iterable[Node]) -> str:
    return ",".join(f"{n.addr}={n.weight}" for n in nodes)


class Locator:
    """Weighted, shuffled-once, non-wrapping walk over the supernodes."""

    def __init__(self, nodes: Iterable[Node], rng: random.Random | None = None) -> None:
        listed = list(nodes)
        divisor = math.gcd(*(n.weight for n in listed)) if listed else 1
        self._order: list[Node] = [n for n in listed for _ in range(n.weight // divisor)]
        (rng or random.Random()).shuffle(self._order)
        self._index = -1

    @property
    def order(self) -> tuple[Node, ...]:
        return tuple(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def get(self) -> Node | None:
        """The current node (None before the first `next()` or after the end)."""
        if 0 <= self._index < len(self._order):
            return self._order[self._index]
        return None

    def next(self) -> Node | None:
        """Advance; None once the list is exhausted (it never wraps around)."""
        if self._index < len(self._order):
            self._index += 1
        return self.get()

    def remaining(self) -> int:
        return max(0, len(self._order) - self._index - 1)
