"""Pure Open API decisions: states, task-id mapping, paging links, job rate, token checks."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supernode.core import oapi, tokens
from supernode.core.oapi import JobState, TaskState
from supernode.core.preheat import (
    CreateDecision,
    PreheatSpec,
    PreheatStatus,
    PreheatType,
    decide_create,
    new_job,
)
from supernode.core.tokens import AccessToken, Scope, TokenState


def test_engine_status_maps_to_machinery_states():
    assert [oapi.task_state(s) for s in ("WAITING", "RUNNING", "SUCCESS", "FAILED")] == [
        TaskState.PENDING,
        TaskState.STARTED,
        TaskState.SUCCESS,
        TaskState.FAILURE,
    ]
    assert oapi.task_state("???") is TaskState.FAILURE


@given(st.lists(st.sampled_from(list(TaskState)), max_size=6))
def test_the_group_state_is_only_ever_one_of_three(states):
    state = oapi.group_state(states)
    assert state in (JobState.PENDING, JobState.SUCCESS, JobState.FAILURE)
    if TaskState.FAILURE in states:
        assert state is JobState.FAILURE
    elif states and set(states) == {TaskState.SUCCESS}:
        assert state is JobState.SUCCESS
    else:
        assert state is JobState.PENDING


def test_scope_filter_and_identifier_defaults():
    assert oapi.normalize_scope("") == "single_seed_peer"
    assert oapi.normalize_scope("single_peer") == "single_seed_peer"  # Harbor 2.12
    assert oapi.normalize_scope("all_peers") == "all_peers"
    assert oapi.effective_filter("") == oapi.DEFAULT_FILTERED_QUERY_PARAMS
    assert oapi.effective_filter("a&b") == "a&b"
    keys = oapi.DEFAULT_FILTERED_QUERY_PARAMS.split("&")
    assert len(keys) == 32 and keys[0] == "X-Amz-Algorithm" and keys[-1] == "ns"
    assert oapi.dfget_identifier("v1", "app") == "v1app"
    assert oapi.dfget_identifier("", "") == ""


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "", "٣", "99999999999999999999", "+1"])
def test_bad_job_ids(text):
    with pytest.raises(ValueError):
        oapi.parse_job_id(text)


def test_good_job_ids():
    assert oapi.parse_job_id("42") == 42
    assert oapi.parse_job_id(str(2**63 - 1)) == 2**63 - 1


def test_paging_links_are_dfs_exact_format():
    link = oapi.paging_links(
        "/oapi/v1/jobs", [("type", "preheat"), ("state", "SUCCESS"), ("page", "2")], 2, 10, 35
    )
    q = "state=SUCCESS&type=preheat"
    assert link == (
        f"</oapi/v1/jobs?page=1&per_page=10&{q}>;rel=prev,"
        f"</oapi/v1/jobs?page=3&per_page=10&{q}>;rel=next,"
        f"</oapi/v1/jobs?page=1&per_page=10&{q}>;rel=first,"
        f"</oapi/v1/jobs?page=4&per_page=10&{q}>;rel=last"
    )
    # Nothing at all: last is 0, prev and next stay on page 1.
    assert oapi.paging_links("/j", [], 1, 10, 0) == (
        "</j?page=1&per_page=10>;rel=prev,</j?page=1&per_page=10>;rel=next,"
        "</j?page=1&per_page=10>;rel=first,</j?page=0&per_page=10>;rel=last"
    )
    # Values are query-escaped like Go's url.Values.Encode.
    assert "bio=a+b%26c" in oapi.paging_links("/j", [("bio", "a b&c")], 1, 10, 1)


@given(st.integers(1, 50), st.integers(1, 20), st.integers(0, 500))
def test_paging_links_stay_in_range(page, per_page, total):
    last = oapi.last_page(total, per_page)
    rels = {}
    for part in oapi.paging_links("/x", [], page, per_page, total).split(","):
        url, rel = part.split(";rel=")
        rels[rel] = int(url.split("page=")[1].split("&")[0])
    assert list(rels) == ["prev", "next", "first", "last"]
    assert rels["prev"] >= 1 and rels["first"] == 1 and rels["last"] == last
    assert rels["next"] <= max(last, page)


def test_the_job_rate_bucket():
    bucket = oapi.new_bucket(2.0, now=100.0)
    results = []
    for _ in range(3):
        allowed, bucket = oapi.take(bucket, 100.0)
        results.append(allowed)
    assert results == [True, True, False]
    allowed, bucket = oapi.take(bucket, 100.5)  # one token back after half a second
    assert allowed
    assert not oapi.take(bucket, 100.5)[0]
    unlimited = oapi.new_bucket(0.0, 0.0)
    assert all(oapi.take(unlimited, 0.0)[0] for _ in range(100))
    # A clock going backwards never mints tokens.
    allowed, _ = oapi.take(oapi.Bucket(1.0, 1.0, 0.0, 50.0), 10.0)
    assert not allowed


def test_rfc3339_round_trip_and_naive_times_refused():
    assert oapi.rfc3339(1_718_281_354.85) == "2024-06-13T12:22:34Z"
    assert oapi.parse_rfc3339("2024-06-13T12:22:34Z") == 1_718_281_354
    assert oapi.parse_rfc3339("2024-06-13T14:22:34+02:00") == 1_718_281_354
    with pytest.raises(ValueError):
        oapi.parse_rfc3339("2024-06-13T12:22:34")


# ---- tokens ------------------------------------------------------------------------------------


def record(**changes) -> AccessToken:
    base = dict(
        id=1,
        name="t",
        token_hash=tokens.hash_token("secret"),
        scopes=(Scope.JOB,),
        state=TokenState.ACTIVE,
        expired_at=1000.0,
        created_at=0.0,
        updated_at=0.0,
    )
    base.update(changes)
    return AccessToken(**base)


def test_presented_token():
    assert tokens.presented_token("Bearer abc", None) == "abc"
    assert tokens.presented_token("bearer abc", None) == "abc"
    assert tokens.presented_token("  BEARER   abc  ", None) == "abc"
    assert tokens.presented_token("Bearer abc", "q") == "q"
    for header in (None, "", "Bearer", "Basic abc", "Bearer a b", "abc"):
        assert tokens.presented_token(header, None) is None
    assert tokens.presented_token("Bearer abc", "") is None


def test_check_in_dfs_order():
    good = tokens.hash_token("secret")
    assert tokens.check(record(), good, Scope.JOB, 10.0).allowed
    assert tokens.check(None, good, Scope.JOB, 10.0) == tokens.Decision(401, "Unauthorized")
    assert tokens.check(record(), tokens.hash_token("x"), Scope.JOB, 10.0).status == 401
    inactive = record(state=TokenState.INACTIVE, expired_at=0.0)
    assert tokens.check(inactive, good, Scope.JOB, 10.0).message == "Token is inactive"
    assert tokens.check(record(), good, Scope.JOB, 1000.5).message == "Token has expired"
    assert tokens.check(record(), good, Scope.JOB, 1000.0).allowed  # expiry is "now > expired_at"
    denied = tokens.check(record(), good, Scope.CLUSTER, 10.0)
    assert denied.status == 403 and denied.message == (
        "Token doesn't have permission to access this resource. Required permission: cluster"
    )
    # DF2: no scopes at all grants everything, except our admin scope, which must be named.
    assert tokens.check(record(scopes=()), good, Scope.CLUSTER, 10.0).allowed
    assert tokens.check(record(scopes=()), good, Scope.ADMIN, 10.0).status == 403
    assert tokens.check(record(scopes=(Scope.ADMIN,)), good, Scope.JOB, 10.0).status == 403


def test_parse_scopes():
    assert tokens.parse_scopes([]) == (Scope.JOB, Scope.CLUSTER)
    assert tokens.parse_scopes(["Job", " job", "cluster", ""]) == (Scope.JOB, Scope.CLUSTER)
    with pytest.raises(ValueError, match="preheat"):
        tokens.parse_scopes(["preheat"])


def test_refresh_reruns_a_finished_engine_job():
    spec = PreheatSpec(PreheatType.FILE, "http://o/f")
    waiting = new_job("id", spec, 0.0, 10.0)
    for status in (PreheatStatus.SUCCESS, PreheatStatus.FAILED):
        finished = dataclasses.replace(waiting, status=status)
        assert decide_create(finished, None, spec, refresh=True) is CreateDecision.RERUN
    assert decide_create(waiting, None, spec, refresh=True) is CreateDecision.KEEP
    succeeded = dataclasses.replace(waiting, status=PreheatStatus.SUCCESS)
    assert decide_create(succeeded, None, spec) is CreateDecision.DUPLICATE
