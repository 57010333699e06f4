"""The pure download state machine: the pull sequence of §3.2, reactions to every code of §4,
migration (§3.8), and Hypothesis properties over random event sequences."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfget_client.errors import BackSourceReason
from dfget_client.plan import (
    FetchPiece,
    Finish,
    GiveUp,
    Migrate,
    Phase,
    PieceTask,
    Plan,
    PullReply,
    SendPull,
    SourceKind,
)

PS = 4 * 1024 * 1024
SN_CID = "cdnnode:10.0.0.1~task"


def piece(n: int, cid: str = SN_CID, size: int = PS) -> PieceTask:
    return PieceTask(
        range=f"{n * size}-{(n + 1) * size - 1}",
        piece_num=n,
        piece_size=size,
        piece_md5="0" * 32 + ":4194304",
        cid=cid,
        peer_ip="10.0.0.1",
        peer_port=8001,
        path="/download/tas/task",
    )


def make_plan(**kw: object) -> Plan:
    args: dict[str, object] = dict(
        cid="10.0.0.5-1-1.000", node="10.0.0.1:8002", task_id="task", piece_size=PS,
        rng=random.Random(7),
    )  # fmt: skip
    args.update(kw)
    return Plan(**args)  # type: ignore[arg-type]


def only(commands: list, kind: type) -> list:
    return [c for c in commands if isinstance(c, kind)]


def test_first_pull_is_started_invalid_with_empty_dst_and_range() -> None:
    plan = make_plan()
    (cmd,) = plan.start(0.0)
    assert isinstance(cmd, SendPull)
    q = cmd.query
    assert (q.src_cid, q.dst_cid, q.range, q.result, q.status, q.task_id) == (
        "10.0.0.5-1-1.000", "", "", 502, 700, "task",
    )  # fmt: skip
    assert cmd.node == "10.0.0.1:8002"
    assert plan.start(0.0) == []  # never two pulls outstanding


def test_wait_backs_off_then_repolls_the_same_query() -> None:
    plan = make_plan()
    (first,) = plan.start(0.0)
    assert plan.pull_replied(PullReply(602), 1.0) == []
    wake = plan.next_wake()
    assert wake is not None and 1.05 <= wake <= 1.1
    assert plan.tick(1.01) == []
    (again,) = plan.tick(wake)
    assert isinstance(again, SendPull) and again.query == first.query
    plan.pull_replied(PullReply(602), 2.0)
    assert 2.1 <= (plan.next_wake() or 0) <= 2.2  # doubled


def test_backoff_is_capped() -> None:
    plan = make_plan(max_backoff=0.4)
    plan.start(0.0)
    now = 0.0
    for _ in range(10):
        plan.pull_replied(PullReply(602), now)
        wake = plan.next_wake()
        assert wake is not None and wake - now <= 0.8 + 1e-9
        now = wake
        assert plan.tick(now)


def test_pieces_are_fetched_and_each_outcome_rides_on_one_pull() -> None:
    plan = make_plan()
    plan.start(0.0)
    cmds = plan.pull_replied(PullReply(601, (piece(0), piece(1, cid="10.0.0.7-9-9.000"))), 0.1)
    fetches = only(cmds, FetchPiece)
    assert [f.piece.piece_num for f in fetches] == [0, 1]
    assert only(cmds, SendPull) == []
    (pull,) = plan.piece_done(piece(0), True, 0.2, fetches[0].generation)
    q = pull.query
    assert (q.dst_cid, q.range, q.result, q.status) == (SN_CID, "0-4194303", 503, 701)
    # the second outcome waits for the first pull's reply
    assert plan.piece_done(piece(1, cid="10.0.0.7-9-9.000"), False, 0.3, 0) == []
    (pull2,) = plan.pull_replied(PullReply(601), 0.4)
    assert (pull2.query.dst_cid, pull2.query.result) == ("10.0.0.7-9-9.000", 500)


def test_finish_only_on_600_and_carries_the_md5() -> None:
    plan = make_plan()
    plan.start(0.0)
    (cmd,) = plan.pull_replied(PullReply(600, md5="ab" * 16), 0.1)
    assert cmd == Finish("ab" * 16)
    assert plan.phase is Phase.FINISHED
    assert plan.tick(5.0) == [] and plan.next_wake() is None


@pytest.mark.parametrize("code", [500, 501, 502, 604, 605, 607, 610, 611, 0])
def test_codes_outside_the_accepted_set_migrate(code: int) -> None:
    plan = make_plan()
    plan.start(0.0)
    (cmd,) = plan.pull_replied(PullReply(code), 0.1)
    assert isinstance(cmd, Migrate)
    assert plan.phase is Phase.MIGRATING


@pytest.mark.parametrize("code", [602, 603, 200])
def test_wait_like_codes_do_not_migrate(code: int) -> None:
    plan = make_plan()
    plan.start(0.0)
    assert plan.pull_replied(PullReply(code), 0.1) == []
    assert plan.phase is Phase.PULLING and plan.next_wake() is not None


def test_migration_restarts_with_700_on_the_new_node_and_clears_old_cids() -> None:
    plan = make_plan()
    plan.start(0.0)
    plan.pull_replied(PullReply(601, (piece(0),)), 0.1)
    plan.piece_done(piece(0), False, 0.2, 0)  # pull with 500 outstanding
    assert isinstance(plan.pull_replied(PullReply(500), 0.3)[0], Migrate)
    (first,) = plan.migrated("10.0.0.2:8002", "task2", PS, 0.4)
    assert first.node == "10.0.0.2:8002"
    assert (first.query.status, first.query.result, first.query.task_id) == (700, 502, "task2")


def test_outcomes_queued_during_migration_lose_their_cids() -> None:
    plan = make_plan()
    plan.start(0.0)
    plan.pull_replied(PullReply(601, (piece(0),)), 0.1)
    plan.pull_failed(0.2, http_status=None)  # nothing outstanding now; a retry is pending
    assert plan.pull_failed(0.3) == []
    # a second transport failure without an outstanding pull is harmless; force migration:
    plan2 = make_plan(transport_retries=0)
    plan2.start(0.0)
    plan2.pull_replied(PullReply(601, (piece(0),)), 0.1)
    plan2.piece_done(piece(0), True, 0.2, 0)  # pull outstanding with 503
    assert isinstance(plan2.pull_failed(0.3)[0], Migrate)
    assert plan2.pending_results == ()
    (p700,) = plan2.migrated("10.0.0.2:8002", "task", PS, 0.4)
    assert p700.query.status == 700


def test_running_piece_finishing_after_migration_reports_without_dst() -> None:
    plan = make_plan()
    plan.start(0.0)
    (fetch,) = plan.pull_replied(PullReply(601, (piece(0),)), 0.1)
    (pull,) = plan.tick(0.1) or [None]  # nothing: piece running
    assert pull is None
    plan._outstanding = None  # simulate a pull racing the migration
    plan.phase = Phase.MIGRATING
    assert plan.piece_done(piece(0), True, 0.2, fetch.generation) == []
    assert plan.pending_results == (("0-4194303", SN_CID, 503),)
    plan.migrated("10.0.0.2:8002", "task", PS, 0.3)  # sends the 700 first
    assert plan.pending_results == (("0-4194303", "", 503),)


def test_migration_failure_gives_up_with_reason_3() -> None:
    plan = make_plan()
    plan.start(0.0)
    plan.pull_replied(PullReply(502), 0.1)
    (cmd,) = plan.migration_failed(0.2)
    assert isinstance(cmd, GiveUp) and cmd.reason is BackSourceReason.DOWNLOAD_ERROR


def test_transport_errors_are_retried_then_migrate() -> None:
    plan = make_plan(transport_retries=2)
    (first,) = plan.start(0.0)
    assert plan.pull_failed(1.0) == []
    assert plan.tick(1.1) == []
    (retry,) = plan.tick(1.2)
    assert retry.query == first.query
    assert plan.pull_failed(2.0) == []
    (retry2,) = plan.tick(2.4)
    assert retry2.query == first.query
    assert isinstance(plan.pull_failed(3.0)[0], Migrate)


def test_non_200_migrates_at_once() -> None:
    plan = make_plan()
    plan.start(0.0)
    assert isinstance(plan.pull_failed(0.1, http_status=500)[0], Migrate)


def test_duplicates_are_not_fetched_twice_and_done_pieces_are_acknowledged() -> None:
    plan = make_plan()
    plan.start(0.0)
    cmds = plan.pull_replied(PullReply(601, (piece(0), piece(0))), 0.1)
    assert len(only(cmds, FetchPiece)) == 1
    assert len(plan.piece_done(piece(0), True, 0.2, 0)) == 1
    cmds = plan.pull_replied(PullReply(601, (piece(0),)), 0.3)
    (ack,) = cmds  # already held: told to the supernode, not fetched again
    assert isinstance(ack, SendPull) and (ack.query.range, ack.query.result) == ("0-4194303", 503)


def test_max_running_is_respected_and_the_rest_waits() -> None:
    plan = make_plan(max_running=2)
    plan.start(0.0)
    cmds = plan.pull_replied(PullReply(601, tuple(piece(n) for n in range(4))), 0.1)
    assert [c.piece.piece_num for c in only(cmds, FetchPiece)] == [0, 1]
    cmds = plan.piece_done(piece(0), True, 0.2, 0)
    assert [c.piece.piece_num for c in only(cmds, FetchPiece)] == [2]
    assert len(only(cmds, SendPull)) == 1


def test_piece_size_change_on_migration_resets_the_bookkeeping() -> None:
    plan = make_plan()
    plan.start(0.0)
    plan.pull_replied(PullReply(601, (piece(0), piece(1))), 0.1)
    plan.piece_done(piece(0), True, 0.2, 0)
    plan.pull_replied(PullReply(500), 0.3)
    plan.migrated("10.0.0.2:8002", "t", 5 * 1024 * 1024, 0.4)
    assert plan.done == frozenset() and plan.running == () and plan.pending_results == ()
    assert plan.piece_done(piece(1), True, 0.5, 0) == []  # stale generation is ignored


def test_601_without_data_and_nothing_running_repolls() -> None:
    plan = make_plan()
    plan.start(0.0)
    assert plan.pull_replied(PullReply(601), 0.1) == []
    assert plan.next_wake() is not None


def test_too_many_failures_in_a_row_give_up() -> None:
    plan = make_plan(max_failures=2)
    plan.start(0.0)
    now = 0.1
    give_up = None
    for n in range(5):
        cmds = plan.pull_replied(PullReply(601, (piece(n),)), now)
        for cmd in plan.piece_done(piece(n), False, now, 0):
            if isinstance(cmd, GiveUp):
                give_up = cmd
        if give_up:
            break
        now += 0.1
        del cmds
    assert give_up is not None and plan.phase is Phase.FAILED


def test_piece_task_from_wire_validates() -> None:
    item = {
        "range": "4194304-8388607", "pieceNum": 1, "pieceSize": PS,
        "pieceMd5": "904BC91E4244A65FF76B6BA4AF620CE1:15", "cid": "cdnnode:1.2.3.4~t",
        "peerIp": "1.2.3.4", "peerPort": 8001, "path": "/download/t/t", "downLink": 0,
    }  # fmt: skip
    task = PieceTask.from_wire(item)
    assert task.expected_md5 == "904bc91e4244a65ff76b6ba4af620ce1"
    assert task.source is SourceKind.SUPERNODE
    assert PieceTask.from_wire({**item, "cid": "10.0.0.5-1-1.0"}).source is SourceKind.PEER
    for bad in (
        {**item, "pieceNum": 2},  # range and pieceNum disagree
        {**item, "range": "x"},
        {**item, "peerPort": 0},
        {**item, "pieceSize": "4"},
        {**item, "path": ""},
        {**item, "pieceNum": True},
    ):
        with pytest.raises(ValueError):
            PieceTask.from_wire(bad)


# ---- properties ----------------------------------------------------------------------------

UNIVERSE = 6
CODES = [600, 601, 601, 601, 602, 603, 200, 500, 501, 502]


class Env:
    """Plays supernode, peers and registrar around the plan, checking invariants."""

    def __init__(self, plan: Plan, max_running: int = 3) -> None:
        self.plan = plan
        self.max_running = max_running
        self.now = 0.0
        self.outstanding: SendPull | None = None
        self.running: dict[str, tuple[PieceTask, int]] = {}
        self.migrating = False
        self.finished = False
        self.given_up = False
        self.produced: Counter[tuple[str, int]] = Counter()
        self.sent: Counter[tuple[str, int]] = Counter()
        self.expect_700 = True
        self.replied_600 = False

    def apply(self, cmds: list) -> None:
        for cmd in cmds:
            assert not self.finished and not self.given_up
            if isinstance(cmd, SendPull):
                assert self.outstanding is None, "two pulls outstanding"
                assert not self.migrating
                if self.expect_700:
                    assert cmd.query.status == 700 and cmd.query.range == ""
                    self.expect_700 = False
                if cmd.query.status == 701:
                    assert cmd.query.range
                    self.sent[(cmd.query.range, cmd.query.result)] += 1
                self.outstanding = cmd
            elif isinstance(cmd, FetchPiece):
                assert cmd.piece.range not in self.running, "fetched twice at once"
                assert cmd.piece.range not in self.plan.done
                self.running[cmd.piece.range] = (cmd.piece, cmd.generation)
            elif isinstance(cmd, Migrate):
                self.migrating = True
            elif isinstance(cmd, Finish):
                assert self.replied_600
                self.finished = True
            elif isinstance(cmd, GiveUp):
                self.given_up = True
        assert len(self.running) <= self.max_running or self.plan.phase is not Phase.PULLING
        plan = self.plan
        if plan.phase is Phase.PULLING and self.outstanding is None and not self.running:
            assert plan.next_wake() is not None, "stalled: nothing outstanding, nothing scheduled"

    def step(self, action: int, arg: int) -> None:
        plan = self.plan
        self.now += 0.01 * (arg % 7)
        if self.finished or self.given_up:
            return
        if action == 0 and self.outstanding is not None:
            code = CODES[arg % len(CODES)]
            self.outstanding = None
            self.replied_600 = code == 600
            pieces = tuple(piece((arg + k) % UNIVERSE) for k in range(arg % 4))
            self.apply(plan.pull_replied(PullReply(code, pieces if code == 601 else ()), self.now))
        elif action == 1 and self.outstanding is not None:
            self.outstanding = None
            status = None if arg % 2 else 500
            self.apply(plan.pull_failed(self.now, http_status=status))
        elif action == 2 and self.running:
            key = sorted(self.running)[arg % len(self.running)]
            task, gen = self.running.pop(key)
            ok = arg % 3 != 0
            before = plan.pending_results
            cmds = plan.piece_done(task, ok, self.now, gen)
            if len(plan.pending_results) > len(before) or only(cmds, SendPull):
                self.produced[(task.range, 503 if ok else 500)] += 1
            self.apply(cmds)
        elif action == 3 and self.migrating:
            self.migrating = False
            self.expect_700 = True
            if arg % 4 == 0:
                self.apply(plan.migration_failed(self.now))
            else:
                self.apply(plan.migrated(f"n{arg}:8002", "task", PS, self.now))
        else:
            wake = plan.next_wake()
            if wake is not None:
                self.now = max(self.now, wake)
            self.apply(plan.tick(self.now))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1000)), max_size=80))
def test_random_event_sequences_keep_the_invariants(steps: list[tuple[int, int]]) -> None:
    plan = make_plan(max_running=3)
    env = Env(plan)
    env.apply(plan.start(0.0))
    for action, arg in steps:
        env.step(action, arg)
    # no outcome is lost: each was sent, is still pending, or the download ended/restarted
    if plan.phase is Phase.PULLING:
        pending = Counter((r, res) for r, _, res in plan.pending_results)
        for key, count in env.produced.items():
            assert count <= env.sent[key] + pending[key]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.randoms(use_true_random=False))
def test_a_cooperative_supernode_always_finishes(total: int, rnd: random.Random) -> None:
    """With a supernode that hands out missing pieces, every piece is fetched once and 600 ends."""
    plan = make_plan(max_running=4, rng=rnd)
    env = Env(plan, max_running=4)
    env.apply(plan.start(0.0))
    have: set[int] = set()
    for _ in range(2000):
        if env.finished:
            break
        if env.outstanding is not None:
            query = env.outstanding.query
            env.outstanding = None
            if query.result == 503 and query.range:
                have.add(int(query.range.split("-")[0]) // PS)
            missing = [
                n for n in range(total) if n not in have and piece(n).range not in env.running
            ]
            if len(have) == total:
                env.replied_600 = True
                env.apply(plan.pull_replied(PullReply(600), env.now))
            elif missing and rnd.random() < 0.8:
                chosen = tuple(piece(n) for n in missing[:2])
                env.apply(plan.pull_replied(PullReply(601, chosen), env.now))
            else:
                env.apply(plan.pull_replied(PullReply(602), env.now))
        elif env.running:
            key = rnd.choice(sorted(env.running))
            task, gen = env.running.pop(key)
            env.apply(plan.piece_done(task, rnd.random() < 0.9, env.now, gen))
        else:
            env.step(4, 0)
    assert env.finished and len(have) == total
