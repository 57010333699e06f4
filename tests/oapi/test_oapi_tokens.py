"""Personal access tokens on the app: the 401/403 matrix, the admin token API, no leaks."""

from __future__ import annotations

import json
import logging

import pytest

from supernode.core.tokens import Scope, hash_token
from supernode.protocol.logs import JsonFormatter
from tests.oapi.conftest import DAY

JOBS = "/oapi/v1/jobs"
TOKENS = "/api/v1/personal-access-tokens"
NO_JOB = "Token doesn't have permission to access this resource. Required permission: job"


async def status_and_body(resp) -> tuple[int, dict]:
    return resp.status, await resp.json()


async def test_healthy_needs_no_token_and_accepts_any_header(api):
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dTpw"}):
        resp = await api.client.get("/healthy", headers=headers)
        assert resp.status == 200 and await resp.json() == "OK"
    assert (await api.client.get("/v1.24/healthy")).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dTpw"},
        {"Authorization": "token abc"},
        {"Authorization": "Bearer a b"},
        {"Authorization": "Bearer unknown-token"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
)
async def test_missing_malformed_or_unknown_token_is_401(api, headers):
    await api.token()  # a real token exists, it is just not the one sent
    for method, path in (
        ("GET", JOBS),
        ("POST", JOBS),
        ("GET", JOBS + "/1"),
        ("DELETE", JOBS + "/1"),
    ):
        resp = await api.client.request(method, path, headers=headers, json={})
        assert await status_and_body(resp) == (401, {"message": "Unauthorized"}), (method, path)


async def test_scheme_is_case_insensitive_and_the_query_token_works(api):
    token = await api.token(Scope.JOB)
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        resp = await api.client.get(JOBS, headers={"Authorization": f"{scheme} {token}"})
        assert resp.status == 200, scheme
    assert (await api.client.get(f"{JOBS}?access_token={token}")).status == 200
    # The query parameter wins over the header, as DF2's middleware reads it first.
    resp = await api.client.get(
        f"{JOBS}?access_token=wrong", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 401
    resp = await api.client.get(
        f"{JOBS}?access_token=", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 401


async def test_inactive_expired_and_missing_scope_are_403(api):
    store = api.open_api.tokens.store
    token = await api.token(Scope.JOB, lifetime=DAY)
    auth = {"Authorization": f"Bearer {token}"}
    record = await store.by_hash(hash_token(token))
    await store.update(record.id, {"state": "inactive"}, api.clock())
    assert await status_and_body(await api.client.get(JOBS, headers=auth)) == (
        403,
        {"message": "Token is inactive"},
    )
    await store.update(record.id, {"state": "active"}, api.clock())
    assert (await api.client.get(JOBS, headers=auth)).status == 200
    api.clock.now += DAY + 1
    assert await status_and_body(await api.client.get(JOBS, headers=auth)) == (
        403,
        {"message": "Token has expired"},
    )
    cluster_only = await api.bearer(Scope.CLUSTER)
    assert await status_and_body(await api.client.get(JOBS, headers=cluster_only)) == (
        403,
        {"message": NO_JOB},
    )
    # A job token is no admin token.
    job_only = await api.bearer(Scope.JOB)
    status, body = await status_and_body(await api.client.get(TOKENS, headers=job_only))
    assert status == 403 and body["message"].endswith("Required permission: admin")
    # The refusals are counted by code and scope (never by token).
    text = (await (await api.client.get("/metrics")).read()).decode()
    assert 'dragonfly_supernode_oapi_auth_denied_total{code="403",scope="job"} 3.0' in text


async def test_admin_token_api_create_list_deactivate_delete(api):
    admin = await api.bearer(Scope.ADMIN)
    expires = "2030-01-02T03:04:05Z"
    resp = await api.client.post(
        TOKENS,
        json={"name": "harbor", "scopes": ["job"], "expired_at": expires, "bio": "h"},
        headers=admin,
    )
    assert resp.status == 200, await resp.text()
    created = await resp.json()
    token = created["token"]
    assert len(token) == 48 and created["scopes"] == ["job"] and created["state"] == "active"
    assert created["expired_at"] == expires
    # Only its hash is stored; GET and list never show the token.
    record = await api.open_api.tokens.store.get(created["id"])
    assert record.token_hash == hash_token(token) and token not in repr(record)
    one = await (await api.client.get(f"{TOKENS}/{created['id']}", headers=admin)).json()
    listing = await api.client.get(TOKENS, headers=admin)
    assert "token" not in one and token not in await listing.text()
    assert listing.headers["Link"].startswith(f"<{TOKENS}?page=1&per_page=10>;rel=prev")
    # The new token works on the Open API, until it is deactivated, then deleted.
    auth = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get(JOBS, headers=auth)).status == 200
    resp = await api.client.patch(
        f"{TOKENS}/{created['id']}", json={"state": "inactive"}, headers=admin
    )
    assert resp.status == 200 and (await resp.json())["state"] == "inactive"
    assert (await api.client.get(JOBS, headers=auth)).status == 403
    inactive = await (await api.client.get(f"{TOKENS}?state=inactive", headers=admin)).json()
    assert [t["name"] for t in inactive] == ["harbor"]
    resp = await api.client.delete(f"{TOKENS}/{created['id']}", headers=admin)
    assert resp.status == 200 and await resp.read() == b""
    assert (await api.client.get(JOBS, headers=auth)).status == 401
    assert (await api.client.get(f"{TOKENS}/{created['id']}", headers=admin)).status == 404
    # Empty scopes mean DF2's default: job and cluster.
    resp = await api.client.post(TOKENS, json={"name": "d", "expired_at": expires}, headers=admin)
    assert (await resp.json())["scopes"] == ["job", "cluster"]


async def test_token_api_validation(api):
    admin = await api.bearer(Scope.ADMIN)
    good = {"name": "n", "expired_at": "2030-01-01T00:00:00+02:00"}
    bad_bodies = [
        {"expired_at": good["expired_at"]},
        {"name": "n"},
        {**good, "expired_at": "2030-01-01T00:00:00"},  # no zone
        {**good, "expired_at": "tomorrow"},
        {**good, "scopes": ["preheat"]},
        {**good, "scopes": ["admin"]},  # admin tokens come from the CLI only
    ]
    for body in bad_bodies:
        resp = await api.client.post(TOKENS, json=body, headers=admin)
        assert resp.status == 422 and "errors" in await resp.json(), body
    assert (await api.client.post(TOKENS, json=good, headers=admin)).status == 200
    resp = await api.client.post(TOKENS, json=good, headers=admin)
    assert resp.status == 409 and "exists" in (await resp.json())["message"]
    resp = await api.client.patch(f"{TOKENS}/1", json={"state": "gone"}, headers=admin)
    assert resp.status == 422


async def test_no_token_reaches_a_log_line(api, caplog):
    caplog.set_level(logging.DEBUG)
    admin_token = await api.token(Scope.ADMIN)
    admin = {"Authorization": f"Bearer {admin_token}"}
    resp = await api.client.post(
        TOKENS, json={"name": "logged", "expired_at": "2030-01-01T00:00:00Z"}, headers=admin
    )
    minted = (await resp.json())["token"]
    await api.client.get(f"{JOBS}?access_token={minted}")
    await api.client.get(JOBS, headers={"Authorization": "Bearer not-a-real-one"})
    # Every line as the supernode writes it (JsonFormatter), aiohttp's access lines included.
    lines = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "logged" in lines  # creation is logged, by name
    for secret in (admin_token, minted, "not-a-real-one"):
        assert secret not in lines
    text = (await (await api.client.get("/metrics")).read()).decode()
    assert minted not in text and admin_token not in text
    assert minted not in json.dumps(await (await api.client.get(TOKENS, headers=admin)).json())
