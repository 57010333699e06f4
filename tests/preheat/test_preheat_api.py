"""The F1 and F0 preheat APIs over the engine, against a real registry, replayed as Harbor."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from aiohttp import web

from supernode.config import SupernodeConfig
from supernode.metrics import SupernodeMetrics
from supernode.preheat.app import install
from supernode.protocol import ids
from tests.preheat.conftest import TOKEN_PASSWORD, TOKEN_USER, PlainSetup, TokenSetup
from tests.preheat.harbor import PHRASE, harbor_body, harbor_preheat
from tests.preheat.registry_kit import mint_token

TERMINAL = ("SUCCESS", "FAILED")


async def _ping(_: web.Request) -> web.Response:
    return web.Response(text="OK")


def make_app(home: Path, warmer, *, clock=None, metrics=None, **overrides) -> web.Application:
    config = dataclasses.replace(SupernodeConfig(home_dir=home), **overrides)
    app = web.Application()
    app.router.add_get("/_ping", _ping)
    install(app, warmer, config, metrics or SupernodeMetrics(), clock=clock)
    return app


@pytest.fixture
async def client(aiohttp_client, tmp_path, warmer):
    return await aiohttp_client(make_app(tmp_path / "home", warmer))


async def wait_done(client, job_id: str, prefix: str = "/preheats", polls: int = 400) -> dict:
    for _ in range(polls):
        resp = await client.get(f"{prefix}/{job_id}")
        assert resp.status == 200, await resp.text()
        info = await resp.json()
        if info["status"] in TERMINAL:
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never finished: {info}")


# ---- Harbor 2.1–2.11 -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [(2, 1), (2, 3), (2, 8), (2, 11)])
async def test_harbor_sequence_warms_every_blob(client, warmer, plain: PlainSetup, version):
    image = plain.image
    body = harbor_body(
        image.manifest_url(plain.registry), "", image.repository, "v1", image.manifest_digest
    )
    outcome = await harbor_preheat(client, body, version)
    assert outcome.status == "SUCCESS"
    assert {r.url for r in warmer.requests} == {
        f"{plain.registry.base}/v2/{image.repository}/blobs/{d}" for d in image.blobs
    }
    # The preheat id is the task id of the manifest URL, like Go's.
    assert outcome.task_id == ids.task_id(image.manifest_url(plain.registry))
    # Harbor again (the same tag): 208, which every version reads as success.
    again = await harbor_preheat(client, body, version)
    assert again.status == "SUCCESS"
    resp = await client.post("/preheats", json=body)
    assert resp.status == 208
    reply = json.loads(await resp.read())
    assert reply["code"] == 208 and reply["ID"] == outcome.task_id
    assert reply["message"] == f"preheat task already exists, id:{outcome.task_id}"


async def test_blobs_hit_the_cache_and_the_origin_serves_nothing_more(
    client, warmer, plain: PlainSetup
):
    image = plain.image
    resp = await client.post(
        "/preheats", json={"type": "image", "url": image.manifest_url(plain.registry)}
    )
    assert resp.status == 201
    info = await wait_done(client, (await resp.json())["ID"])
    assert info["status"] == "SUCCESS", info
    assert info["blobsTotal"] == info["blobsDone"] == len(image.blobs)
    assert all(b["status"] == "SUCCESS" and b["digest"] in image.blobs for b in info["blobs"])
    served = plain.store.bytes_sent
    # What a later dfget of each blob does: the same task id → a cache hit, no origin bytes.
    from supernode.preheat.warmer import WarmRequest

    for blob in info["blobs"]:
        result = await warmer.warm(WarmRequest(url=blob["url"]))
        assert result.cache_hit and result.task_id == blob["taskId"]
    assert plain.store.bytes_sent == served
    # Blobs really went through the registry's redirect to the object store.
    assert any("/docker/registry/v2/blobs/sha256/" in p for p in plain.store.requests)


async def test_second_tag_of_the_same_digest_redirects(client, warmer, plain: PlainSetup):
    image = plain.image
    first = harbor_body(
        image.manifest_url(plain.registry), "", image.repository, "v1", image.manifest_digest
    )
    resp = await client.post("/preheats", json=first)
    target = (await resp.json())["ID"]
    second = dict(first, url=image.manifest_url(plain.registry, "v1-alias"), tag="v1-alias")
    resp = await client.post("/preheats", json=second)
    assert resp.status == 201
    follower = (await resp.json())["ID"]
    assert follower != target
    info = await wait_done(client, follower)
    assert info["errorMsg"] == '{"Code":208,"Msg":"' + PHRASE + target + '"}'
    assert info["status"] == "SUCCESS"  # mirrors its target for Harbor 2.1–2.7
    # Harbor 2.8+ follows the redirect; older versions read the mirrored status.
    for version in [(2, 1), (2, 8)]:
        outcome = await harbor_preheat(client, second, version)
        assert outcome.status == "SUCCESS"
    urls = [r.url for r in warmer.requests]
    assert len(urls) == len(set(urls)) == len(image.blobs)  # the work was done once


async def test_harbor_token_is_used_for_manifest_and_blobs(
    client, warmer, token_registry: TokenSetup, pki
):
    token = mint_token(pki, "secret/app", ["pull"])
    image = token_registry.image
    before = len(token_registry.tokens.requests)
    body = harbor_body(
        image.manifest_url(token_registry.registry),
        token,
        "secret/app",
        "v1",
        image.manifest_digest,
    )
    outcome = await harbor_preheat(client, body, (2, 11))
    assert outcome.status == "SUCCESS"
    assert len(token_registry.tokens.requests) == before
    assert all(dict(r.headers)["Authorization"] == f"Bearer {token}" for r in warmer.requests)


async def test_token_exchange_when_no_authorization_is_given(
    client, warmer, token_registry: TokenSetup
):
    url = token_registry.image.manifest_url(token_registry.registry)
    body = {"type": "image", "url": url, "username": TOKEN_USER, "password": TOKEN_PASSWORD}
    resp = await client.post("/preheats", json=body)
    info = await wait_done(client, (await resp.json())["ID"])
    assert info["status"] == "SUCCESS", info
    auth = {dict(r.headers)["Authorization"] for r in warmer.requests}
    assert len(auth) == 1 and auth.pop().startswith("Bearer ")
    listed = await (await client.get("/preheats")).json()
    assert TOKEN_PASSWORD not in json.dumps(listed)


async def test_failed_job_fails_harbor_from_2_8(client, warmer, plain: PlainSetup):
    warmer.fail["/blobs/"] = "origin exploded"
    body = harbor_body(
        plain.image.manifest_url(plain.registry),
        "",
        "library/app",
        "v1",
        plain.image.manifest_digest,
    )
    outcome = await harbor_preheat(client, body, (2, 8))
    assert outcome.status == "FAIL"
    info = await (await client.get(f"/preheats/{outcome.task_id}")).json()
    assert info["status"] == "FAILED"
    assert info["errorMsg"].startswith(f"{plain.registry.base}/v2/library/app/blobs/sha256:")
    assert info["errorMsg"].endswith(" origin exploded")
    # A retry after a failure runs again instead of claiming success (Go would answer 208).
    warmer.fail.clear()
    assert (await harbor_preheat(client, body, (2, 8))).status == "SUCCESS"


# ---- F1 routes, list, get, delete, files -------------------------------------------------


@pytest.mark.parametrize(
    "prefix", ["/preheats", "/api/v1/preheats", "/v1.24/preheats", "/v1.24/api/v1/preheats"]
)
async def test_file_preheat_on_every_route_form(client, warmer, plain: PlainSetup, prefix):
    digest = next(iter(plain.image.blobs))
    url = f"{plain.registry.base}/v2/library/app/blobs/{digest}?token=x&keep=1"
    body = {
        "type": "file",
        "url": url,
        "filter": "token",
        "identifier": "id1",
        "headers": {"X-A": "b"},
    }
    resp = await client.post(prefix, json=body)
    assert resp.status == 201
    job_id = (await resp.json())["ID"]
    filtered = f"{plain.registry.base}/v2/library/app/blobs/{digest}?keep=1"
    assert job_id == ids.task_id(filtered, identifier="id1")
    info = await wait_done(client, job_id, prefix)
    assert info["status"] == "SUCCESS" and info["blobs"][0]["digest"] == digest
    assert info["finishTime"] != "1970-01-01T00:00:00.000Z" and info["startTime"].endswith("Z")
    listed = await (await client.get(prefix)).json()
    record = next(r for r in listed if r["ID"] == job_id)
    assert record["URL"] == url and record["Filter"] == "token" and record["Type"] == "file"
    assert record["Status"] == "SUCCESS" and record["FinishTime"] >= record["StartTime"] > 0
    resp = await client.delete(f"{prefix}/{job_id}")
    assert resp.status == 200 and await resp.read() == b"true\n"
    resp = await client.get(f"{prefix}/{job_id}")
    assert resp.status == 404
    assert await resp.json() == {"code": 404, "message": f"{job_id} doesn't exists"}


async def test_blobs_of_an_image_are_children(client, plain: PlainSetup):
    resp = await client.post(
        "/preheats", json={"type": "image", "url": plain.image.manifest_url(plain.registry)}
    )
    parent = (await resp.json())["ID"]
    info = await wait_done(client, parent)
    child = info["blobs"][1]["taskId"]
    child_info = await (await client.get(f"/preheats/{child}")).json()
    assert child_info["status"] == "SUCCESS" and child_info["parentID"] == parent
    listed = await (await client.get("/preheats")).json()
    assert next(r for r in listed if r["ID"] == parent)["Children"] == [
        b["taskId"] for b in info["blobs"]
    ]
    assert next(r for r in listed if r["ID"] == child)["ParentID"] == parent
    # A file preheat of a blob the image already warmed is a finished duplicate.
    resp = await client.post("/preheats", json={"type": "file", "url": info["blobs"][1]["url"]})
    assert resp.status == 208


# ---- F0: the 2018 check / preheat / query API ------------------------------------------------


async def test_f0_image_by_reference(client, plain: PlainSetup):
    resp = await client.get("/api/check")
    assert resp.status == 200 and await resp.json() == {"code": 200}
    reference = f"{plain.registry.host}/library/app:v1"
    resp = await client.post("/api/preheat", json={"type": "image", "url": reference, "header": {}})
    reply = await resp.json()
    assert resp.status == 200 and reply["code"] == 200, reply
    task = reply["data"]["taskId"]
    assert task == ids.task_id(plain.image.manifest_url(plain.registry))  # loopback → http
    for _ in range(400):
        reply = await (await client.get(f"/api/preheat/{task}")).json()
        if reply["data"]["status"] != "RUNNING":
            break
        await asyncio.sleep(0.05)
    assert reply == {"code": 200, "data": {"taskId": task, "status": "SUCCESS"}}


@pytest.mark.parametrize(
    "body",
    [
        {"type": "video", "url": "http://h/x"},
        {"type": "image", "url": "UPPER/Case:tag"},
        {"type": "file", "url": "ftp://h/x"},
        {"url": "http://h/x"},
        {"type": "file", "url": "http://h/x", "header": {"a": 1}},
    ],
)
async def test_f0_errors_are_http_200_code_400(client, body):
    resp = await client.post("/api/preheat", json=body)
    reply = await resp.json()
    assert resp.status == 200 and reply["code"] == 400 and reply["msg"]
    resp = await client.get("/api/preheat/" + "0" * 64)
    assert resp.status == 200 and (await resp.json())["code"] == 400


async def test_f0_failed_job_reads_fail(client, plain: PlainSetup):
    reference = f"{plain.registry.host}/library/nope:v1"
    reply = await (
        await client.post("/api/preheat", json={"type": "image", "url": reference})
    ).json()
    task = reply["data"]["taskId"]
    for _ in range(400):
        reply = await (await client.get(f"/api/preheat/{task}")).json()
        if reply["data"]["status"] != "RUNNING":
            break
        await asyncio.sleep(0.05)
    assert reply["data"]["status"] == "FAIL" and "HTTP 404" in reply["msg"]


# ---- metrics -------------------------------------------------------------------------------


async def test_jobs_gauge(aiohttp_client, tmp_path, warmer, plain: PlainSetup):
    from prometheus_client import generate_latest

    metrics = SupernodeMetrics()
    client = await aiohttp_client(make_app(tmp_path / "home", warmer, metrics=metrics))
    resp = await client.post(
        "/preheats", json={"type": "image", "url": plain.image.manifest_url(plain.registry)}
    )
    await wait_done(client, (await resp.json())["ID"])
    # The gauge follows the stored state, a save behind what GET shows: poll it briefly.
    for _ in range(100):
        text = generate_latest(metrics.registry).decode()
        if 'dragonfly_supernode_preheat_jobs{state="SUCCESS"} 1.0' in text:
            break
        await asyncio.sleep(0.02)
    assert 'dragonfly_supernode_preheat_jobs{state="SUCCESS"} 1.0' in text
    assert 'dragonfly_supernode_preheat_jobs{state="RUNNING"} 0.0' in text
