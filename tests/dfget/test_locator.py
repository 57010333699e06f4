"""Supernode list parsing, weights, one shuffle and the non-wrapping walk (§3.8)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfget_client.locator import Locator, Node, parse_node, parse_nodes


@pytest.mark.parametrize(
    ("text", "host", "port", "weight"),
    [
        ("10.0.0.1", "10.0.0.1", 8002, 1),
        ("10.0.0.1:8003", "10.0.0.1", 8003, 1),
        ("sn.example.com=3", "sn.example.com", 8002, 3),
        (" 10.0.0.1:9000=2 ", "10.0.0.1", 9000, 2),
    ],
)
def test_parse_node(text: str, host: str, port: int, weight: int) -> None:
    node = parse_node(text)
    assert (node.host, node.port, node.weight) == (host, port, weight)
    assert node.addr == f"{host}:{port}"


@pytest.mark.parametrize(
    "text", ["", "a:1:2", "a=1=2", "a:x", "a:0", "a:70000", "a=0", "a=x", ":80", "a=", "a b"]
)
def test_parse_node_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_node(text)


def test_parse_nodes_splits_commas_across_flags() -> None:
    nodes = parse_nodes(["a,b:1", "c=2"])
    assert [n.addr for n in nodes] == ["a:8002", "b:1", "c:8002"]


def test_weights_are_divided_by_their_gcd() -> None:
    a, b = Node("a", weight=4), Node("b", weight=6)
    order = Locator([a, b], random.Random(1)).order
    assert Counter(n.host for n in order) == {"a": 2, "b": 3}


def test_next_walks_without_wrapping() -> None:
    nodes = [Node("a"), Node("b"), Node("c")]
    loc = Locator(nodes, random.Random(3))
    assert loc.get() is None
    seen = [loc.next() for _ in range(3)]
    assert sorted(n.host for n in seen if n) == ["a", "b", "c"]
    assert loc.get() is seen[-1]
    assert loc.next() is None and loc.next() is None and loc.get() is None
    assert loc.remaining() == 0


def test_weight_repeats_are_the_same_object_but_listed_twice_are_not() -> None:
    a, b = parse_node("a=2"), parse_node("b")
    loc = Locator([a, b], random.Random(0))
    assert [n for n in loc.order if n.host == "a"] == [a, a]
    twice = parse_nodes(["a,a"])
    assert twice[0] is not twice[1]


def test_shuffled_once() -> None:
    nodes = [Node(str(i)) for i in range(20)]
    orders = {Locator(nodes, random.Random(seed)).order for seed in range(5)}
    assert len(orders) > 1  # the order depends on the shuffle
    loc = Locator(nodes, random.Random(9))
    before = loc.order
    loc.next()
    assert loc.order == before  # walking never reshuffles


@given(st.lists(st.integers(1, 12), min_size=1, max_size=6), st.integers(0, 10**6))
def test_every_node_appears_in_proportion_to_its_weight(weights: list[int], seed: int) -> None:
    nodes = [Node(f"n{i}", weight=w) for i, w in enumerate(weights)]
    loc = Locator(nodes, random.Random(seed))
    walked = []
    while (node := loc.next()) is not None:
        walked.append(node)
    counts = Counter(n.host for n in walked)
    base = [counts[n.host] / n.weight for n in nodes]
    assert len(set(base)) == 1 and len(walked) == len(loc)
