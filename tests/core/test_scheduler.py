"""The scheduler's rules (§10), one by one, on pure progress objects."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from supernode.core.progress import SUPERNODE, SUPERNODE_LOAD_RESET, TaskProgress
from supernode.core.scheduler import Decision, Limits, schedule

LIMITS = Limits(peer_up_limit=5, peer_down_limit=4, elimination_limit=5, failure_count_limit=5)


def progress_with(cdn_pieces: int, total: int | None = None) -> TaskProgress:
    progress = TaskProgress(piece_total=total if total is not None else cdn_pieces)
    for n in range(cdn_pieces):
        progress.cdn_piece_ready(n, f"md5{n}:5")
    return progress


def run(progress, client, *, cdn_success=False, now=0.0, limits=LIMITS, seed=1):
    return schedule(
        progress, client, cdn_success=cdn_success, limits=limits, now=now, rng=random.Random(seed)
    )


def holder(progress, cid, pieces):
    peer = progress.add_client(cid, is_p2p=True)
    for n in pieces:
        progress.piece_succeeded(peer, n, None, 0.0)
        progress.add_holder(peer, n)
    return peer


def test_nothing_on_the_cdn_yet_is_a_wait():
    progress = progress_with(0, total=3)
    client = progress.add_client("c", is_p2p=True)
    assert run(progress, client).decision is Decision.WAIT


def test_pieces_the_client_has_or_runs_are_not_available():
    progress = progress_with(2)
    client = progress.add_client("c", is_p2p=True)
    progress.piece_succeeded(client, 0, None, 0.0)
    progress.start_running(client, 1, SUPERNODE, 0.0)
    assert run(progress, client).decision is Decision.WAIT


def test_a_client_at_its_down_limit_gets_601_without_pieces():
    progress = progress_with(10)
    client = progress.add_client("c", is_p2p=True)
    first = run(progress, client)
    assert len(first.assignments) == 4
    again = run(progress, client)
    assert again.decision is Decision.CONTINUE and again.assignments == ()


def test_rarest_piece_first():
    progress = progress_with(3)
    holder(progress, "a", [0, 1])
    holder(progress, "b", [0])
    client = progress.add_client("c", is_p2p=True)
    result = run(progress, client, limits=Limits(peer_down_limit=1))
    assert [a.piece_num for a in result.assignments] == [2]


def test_pieces_on_their_way_to_a_client_count_as_copies():
    """Two clients pulling at once fetch different pieces, whatever the random tie-break."""
    one_piece = Limits(peer_down_limit=1)
    for seed in range(20):
        progress = progress_with(4)
        holder(progress, "a", range(4))
        one = progress.add_client("one", is_p2p=True)
        two = progress.add_client("two", is_p2p=True)
        first = run(progress, one, limits=one_piece, seed=seed).assignments
        second = run(progress, two, limits=one_piece, seed=seed).assignments
        assert first[0].piece_num != second[0].piece_num, seed
        assert progress.fetching == {first[0].piece_num: 1, second[0].piece_num: 1}
        progress.piece_succeeded(one, first[0].piece_num, None, 0.0)
        progress.remove_client("two", 0.0)
        assert progress.fetching == {}


def test_closest_to_the_mean_of_running_pieces_breaks_rarity_ties():
    progress = progress_with(10)
    client = progress.add_client("c", is_p2p=True)
    progress.start_running(client, 7, SUPERNODE, 0.0)
    result = run(progress, client, limits=Limits(peer_down_limit=2))
    assert [a.piece_num for a in result.assignments] in ([6], [8])


def test_a_holder_serves_before_the_supernode():
    progress = progress_with(1)
    holder(progress, "a", [0])
    client = progress.add_client("c", is_p2p=True)
    result = run(progress, client)
    assert [(a.piece_num, a.src) for a in result.assignments] == [(0, "a")]
    assert progress.clients["a"].up_load == 1


def test_holders_that_cannot_serve_are_skipped():
    progress = progress_with(1)
    down = holder(progress, "down", [0])
    down.service_down = True
    holder(progress, "cdn", [0]).is_p2p = False
    busy = holder(progress, "busy", [0])
    busy.up_load = 5
    holder(progress, "bad", [0])
    client = progress.add_client("c", is_p2p=True)
    client.blacklist.add("bad")
    result = run(progress, client)
    assert [a.src for a in result.assignments] == [SUPERNODE]


def test_eliminated_holders_are_removed_from_the_holder_list():
    progress = progress_with(1)
    sick = holder(progress, "sick", [0])
    sick.service_error_count = 5
    client = progress.add_client("c", is_p2p=True)
    result = run(progress, client)
    assert [a.src for a in result.assignments] == [SUPERNODE]
    assert "sick" not in progress.holders[0]


def test_supernode_is_capped_per_task_across_clients():
    progress = progress_with(8)
    one = progress.add_client("one", is_p2p=True)
    two = progress.add_client("two", is_p2p=True)
    assert len(run(progress, one).assignments) == 4
    assert run(progress, two).decision is Decision.WAIT
    progress.piece_succeeded(one, next(iter(one.running)), None, 1.0)
    result = run(progress, two, now=1.0)
    assert len(result.assignments) == 1 and result.assignments[0].src == SUPERNODE


def test_stale_supernode_load_resets_after_30_seconds():
    progress = progress_with(8)
    one = progress.add_client("one", is_p2p=True)
    two = progress.add_client("two", is_p2p=True)
    run(progress, one, now=0.0)
    assert run(progress, two, now=SUPERNODE_LOAD_RESET - 1).decision is Decision.WAIT
    assert len(run(progress, two, now=SUPERNODE_LOAD_RESET).assignments) == 4


def test_a_client_with_too_many_errors_only_gets_the_supernode():
    progress = progress_with(1)
    holder(progress, "a", [0])
    client = progress.add_client("c", is_p2p=True)
    client.error_count = 6
    assert [a.src for a in run(progress, client).assignments] == [SUPERNODE]


def test_failure_blacklists_and_counts_success_resets():
    progress = progress_with(2)
    source = holder(progress, "a", [0, 1])
    client = progress.add_client("c", is_p2p=True)
    progress.start_running(client, 0, "a", 0.0)
    progress.piece_failed(client, 0, None, 0.0, elimination=5)
    assert "a" in client.blacklist and client.error_count == 1
    assert source.service_error_count == 1 and source.up_load == 0
    progress.start_running(client, 1, SUPERNODE, 0.0)
    progress.piece_succeeded(client, 1, None, 0.0)
    assert client.error_count == 0


def test_failures_against_the_supernode_blacklist_nothing():
    progress = progress_with(1)
    client = progress.add_client("c", is_p2p=True)
    progress.start_running(client, 0, SUPERNODE, 0.0)
    progress.piece_failed(client, 0, None, 0.0, elimination=5)
    assert client.blacklist == set() and client.error_count == 0
    assert progress.supernode_load == 0


def test_finish_needs_cdn_success_and_every_piece():
    progress = progress_with(2)
    client = progress.add_client("c", is_p2p=True)
    for n in range(2):
        progress.piece_succeeded(client, n, None, 0.0)
    assert run(progress, client, cdn_success=False).decision is Decision.WAIT
    assert run(progress, client, cdn_success=True).decision is Decision.FINISH


def test_removed_client_releases_its_loads():
    progress = progress_with(2)
    source = holder(progress, "a", [0])
    client = progress.add_client("c", is_p2p=True)
    run(progress, client)
    assert source.up_load == 1 and progress.supernode_load == 1
    progress.remove_client("c", 0.0)
    assert source.up_load == 0 and progress.supernode_load == 0 and progress.in_flight == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(0, 2**31))
def test_many_clients_always_finish_and_loads_stay_within_limits(pieces, clients, seed):
    """Simulate clients pulling and reporting in random order: everyone finishes, no source
    ever exceeds its load cap, and no load is leaked."""
    rng = random.Random(seed)
    progress = progress_with(pieces)
    names = [f"c{i}" for i in range(clients)]
    for name in names:
        progress.add_client(name, is_p2p=True)
    finished: set[str] = set()
    for _ in range(pieces * clients * 6 + 50):
        name = rng.choice([n for n in names if n not in finished] or names)
        client = progress.clients[name]
        if client.running and rng.random() < 0.6:
            piece = rng.choice(list(client.running))
            progress.piece_succeeded(client, piece, None, 0.0)
            progress.add_holder(client, piece)
            continue
        result = schedule(progress, client, cdn_success=True, limits=LIMITS, now=0.0, rng=rng)
        if result.decision is Decision.FINISH:
            finished.add(name)
        assert progress.supernode_load <= LIMITS.peer_down_limit
        assert all(c.up_load <= LIMITS.peer_up_limit for c in progress.clients.values())
        if len(finished) == clients:
            break
    assert len(finished) == clients
    assert progress.in_flight == 0 and progress.supernode_load == 0 and progress.fetching == {}
    assert all(c.up_load == 0 for c in progress.clients.values())


def test_busy_holders_make_a_running_client_wait_instead_of_using_the_supernode():
    progress = progress_with(3)
    busy = holder(progress, "a", [0, 1, 2])
    busy.up_load = 5
    client = progress.add_client("c", is_p2p=True)
    progress.start_running(client, 0, SUPERNODE, 0.0)  # something in flight already
    result = run(progress, client)
    assert result.decision is Decision.WAIT
    assert progress.supernode_load == 1, "no extra supernode piece while peers are only busy"
    busy.up_load = 4
    result = run(progress, client)
    assert [a.src for a in result.assignments] == ["a"]


def test_an_idle_client_is_not_left_waiting_for_busy_holders():
    progress = progress_with(3)
    holder(progress, "a", [0, 1, 2]).up_load = 5
    client = progress.add_client("c", is_p2p=True)
    result = run(progress, client)
    assert result.decision is Decision.CONTINUE
    assert {a.src for a in result.assignments} == {SUPERNODE}
