"""Jobs keep their promises: bad input is a 400 that stores nothing, failures end FAILED with
the reason, deadlines hold, restarts resume or fail, old jobs are collected."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from supernode.core.preheat import INTERRUPTED
from supernode.preheat.app import PREHEAT_ENGINE
from tests.preheat.conftest import PlainSetup
from tests.preheat.registry_kit import free_port
from tests.preheat.test_preheat_api import make_app, wait_done

MANIFEST = "http://127.0.0.1:5000/v2/library/app/manifests/v1"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(aiohttp_client, tmp_path, warmer):
    return await aiohttp_client(make_app(tmp_path / "home", warmer))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"url": "' + MANIFEST.encode() + b'"}', "type"),
        (b'{"type": "IMAGE", "url": "' + MANIFEST.encode() + b'"}', "type"),
        (b'{"type": "image"}', "url"),
        (b'{"type": "file", "url": "ab"}', "url"),
        (b'{"type": "file", "url": "ftp://host/file"}', "http"),
        (b'{"type": "file", "url": "http://host:port/file"}', "url"),
        (b'{"type": "file", "url": "http://host/a b"}', "whitespace"),
        (
            b'{"type": "image", "url": "http://127.0.0.1:5000/v2/library/app/blobs/x"}',
            "manifest URL",
        ),
        (b'{"type": "file", "url": "http://h/f", "headers": {"X-A": 1}}', "headers"),
        (b'{"type": "file", "url": "http://h/f", "headers": {"Bad Name": "v"}}', "header name"),
        (b'{"type": "file", "url": "http://h/f", "headers": {"X": "a\\r\\nB: c"}}', "line break"),
        (b'{"type": "file", "url": "http://h/f", "headers": ["X: y"]}', "headers"),
        (
            b'{"type": "image", "url": "' + MANIFEST.encode() + b'", "platform": "linux"}',
            "platform",
        ),
        (b'{"type": "file", "url": "http://h/f", "rootCAs": ["%%%"]}', "rootCAs"),
        (b'{"type": "file", "url": "http://h/f", "rootCAs": ["aGVsbG8="]}', "rootCAs"),
        (b'{"type": "file", "url": "http://h/f", "insecure": "yes"}', "insecure"),
    ],
)
async def test_bad_bodies_are_400_and_store_nothing(client, body: bytes, reason: str):
    resp = await client.post("/preheats", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    reply = await resp.json()
    assert reply["code"] == 400 and reason.lower() in reply["message"].lower(), reply
    assert await (await client.get("/preheats")).json() == []


async def test_oversized_body_is_400(aiohttp_client, tmp_path, warmer):
    client = await aiohttp_client(make_app(tmp_path / "home", warmer, max_body_size=256))
    body = {"type": "file", "url": "http://h/f", "identifier": "x" * 300}
    resp = await client.post("/preheats", json=body)
    assert resp.status == 400 and "larger than" in (await resp.json())["message"]


async def test_case_insensitive_keys_and_extra_keys(client, plain: PlainSetup):
    body = {
        "TYPE": "image",
        "Url": plain.image.manifest_url(plain.registry),
        "extra": [1],
        "image": "x",
    }
    resp = await client.post("/preheats", json=body)
    assert resp.status == 201
    assert (await wait_done(client, (await resp.json())["ID"]))["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("broken/app", "HTTP 500 boom"),
        ("garbage/app", "not valid JSON"),
        ("missing/app", "HTTP 404"),
        ("liar/app", "digest mismatch"),
    ],
)
async def test_registry_failures_end_failed_with_the_reason(client, stub, name, reason):
    url = f"http://127.0.0.1:{stub.port}/v2/{name}/manifests/v1"
    resp = await client.post("/preheats", json={"type": "image", "url": url})
    assert resp.status == 201
    info = await wait_done(client, (await resp.json())["ID"])
    assert info["status"] == "FAILED" and reason in info["errorMsg"], info
    assert info["finishTime"] != "1970-01-01T00:00:00.000Z"


async def test_unreachable_hosts_end_failed(client):
    port = free_port()
    image = {"type": "image", "url": f"http://127.0.0.1:{port}/v2/a/b/manifests/v1"}
    info = await wait_done(
        client, (await (await client.post("/preheats", json=image)).json())["ID"]
    )
    assert info["status"] == "FAILED" and "cannot reach registry" in info["errorMsg"]
    file = {"type": "file", "url": f"http://127.0.0.1:{port}/file"}
    info = await wait_done(client, (await (await client.post("/preheats", json=file)).json())["ID"])
    assert info["status"] == "FAILED" and info["errorMsg"].startswith(
        file["url"] + " origin unreachable"
    )


async def test_deadline_ends_a_stuck_job(aiohttp_client, tmp_path, warmer, plain: PlainSetup):
    warmer.gate = asyncio.Event()  # the CDN never finishes
    client = await aiohttp_client(make_app(tmp_path / "home", warmer, preheat_deadline=0.5))
    resp = await client.post(
        "/preheats", json={"type": "image", "url": plain.image.manifest_url(plain.registry)}
    )
    job_id = (await resp.json())["ID"]
    running = await (await client.get(f"/preheats/{job_id}")).json()
    assert running["status"] in ("WAITING", "RUNNING")
    info = await wait_done(client, job_id, polls=100)
    assert info["status"] == "FAILED" and info["errorMsg"].startswith("timeout"), info


async def test_running_job_shows_per_blob_progress(
    aiohttp_client, tmp_path, warmer, plain: PlainSetup
):
    warmer.gate = asyncio.Event()
    client = await aiohttp_client(make_app(tmp_path / "home", warmer))
    resp = await client.post(
        "/preheats", json={"type": "image", "url": plain.image.manifest_url(plain.registry)}
    )
    job_id = (await resp.json())["ID"]
    for _ in range(200):
        info = await (await client.get(f"/preheats/{job_id}")).json()
        if any(b["status"] == "RUNNING" for b in info["blobs"]):
            break
        await asyncio.sleep(0.02)
    running = [b for b in info["blobs"] if b["status"] == "RUNNING"]
    assert running and all((b["piecesDone"], b["pieceTotal"]) == (0, 1) for b in running)
    assert info["status"] == "RUNNING" and info["finishTime"] == "1970-01-01T00:00:00.000Z"
    warmer.gate.set()
    assert (await wait_done(client, job_id))["status"] == "SUCCESS"


async def test_finished_jobs_are_collected_after_retention(
    aiohttp_client, tmp_path, warmer, plain: PlainSetup
):
    clock = Clock()
    client = await aiohttp_client(
        make_app(tmp_path / "home", warmer, clock=clock, preheat_retention=3600)
    )
    resp = await client.post(
        "/preheats", json={"type": "image", "url": plain.image.manifest_url(plain.registry)}
    )
    job_id = (await resp.json())["ID"]
    await wait_done(client, job_id)
    engine = client.app[PREHEAT_ENGINE]
    clock.now += 3599
    await engine.collect()
    assert (await client.get(f"/preheats/{job_id}")).status == 200
    clock.now += 2
    await engine.collect()
    assert (await client.get(f"/preheats/{job_id}")).status == 404
    assert await (await client.get("/preheats")).json() == []


# ---- restarts ------------------------------------------------------------------------------


async def _start(home, warmer, clock) -> TestClient:
    client = TestClient(TestServer(make_app(home, warmer, clock=clock)))
    await client.start_server()
    return client


async def _stop_mid_job(tmp_path, plain: PlainSetup, clock: Clock) -> str:
    from tests.preheat.conftest import DownloadingWarmer

    stuck = DownloadingWarmer()
    stuck.gate = asyncio.Event()
    first = await _start(tmp_path / "home", stuck, clock)
    try:
        resp = await first.post(
            "/preheats", json={"type": "image", "url": plain.image.manifest_url(plain.registry)}
        )
        job_id = (await resp.json())["ID"]
        for _ in range(200):
            if stuck.running:
                break
            await asyncio.sleep(0.02)
        assert stuck.running, "the job never started warming"
    finally:
        await first.close()
    return job_id


async def test_restart_resumes_a_running_job(tmp_path, warmer, plain: PlainSetup):
    clock = Clock()
    job_id = await _stop_mid_job(tmp_path, plain, clock)
    second = await _start(tmp_path / "home", warmer, clock)
    try:
        info = await wait_done(second, job_id)
        assert info["status"] == "SUCCESS", info
        assert info["blobsDone"] == len(plain.image.blobs)
        assert len({r.url for r in warmer.requests}) == len(plain.image.blobs)  # all in this run
    finally:
        await second.close()


async def test_restart_past_the_deadline_fails_the_job(tmp_path, warmer, plain: PlainSetup):
    clock = Clock()
    job_id = await _stop_mid_job(tmp_path, plain, clock)
    clock.now += 1801
    second = await _start(tmp_path / "home", warmer, clock)
    try:
        info = await (await second.get(f"/preheats/{job_id}")).json()
        assert info["status"] == "FAILED" and info["errorMsg"] == INTERRUPTED
        assert warmer.requests == []
    finally:
        await second.close()
