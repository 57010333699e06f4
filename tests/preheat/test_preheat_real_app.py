"""Preheat through the real supernode (create_app: service + disk CDN) from a real registry."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from supernode.config import load_config
from supernode.protocol import pieces
from supernode.web.app import create_app
from supernode.web.keys import SERVICE
from tests.preheat.conftest import PlainSetup
from tests.preheat.harbor import harbor_body, harbor_preheat
from tests.preheat.test_preheat_api import wait_done
from tests.web.helpers import download_all, register


def _config(home: Path):
    return load_config(overrides={"home_dir": str(home), "advertise_ip": "127.0.0.1"}, env={})


async def _start(home: Path) -> TestClient:
    client = TestClient(TestServer(create_app(_config(home))))
    await client.start_server()
    return client


def _cached_content(client: TestClient, task_id: str) -> bytes:
    """The origin bytes inside the CDN's framed data file (header | content | 0x7F)."""
    path = client.app[SERVICE].cdn.data_file(task_id)
    assert path is not None, f"no CDN file for {task_id}"
    framed, content, offset = path.read_bytes(), bytearray(), 0
    while offset < len(framed):
        length, piece_size = pieces.parse_frame_header(framed[offset : offset + 4])
        content += framed[offset + 4 : offset + 4 + length]
        assert framed[offset + 4 + length : offset + 5 + length] == pieces.PIECE_TAIL
        offset += piece_size
    return bytes(content)


def _harbor(plain: PlainSetup) -> dict:
    image = plain.image
    url = image.manifest_url(plain.registry)
    return harbor_body(url, "", image.repository, image.tag, image.manifest_digest)


async def test_harbor_preheat_then_dfget_pulls_from_the_cache(tmp_path, plain: PlainSetup):
    client = await _start(tmp_path / "home")
    try:
        outcome = await harbor_preheat(client, _harbor(plain), (2, 11))
        assert outcome.status == "SUCCESS"
        info = await (await client.get(f"/preheats/{outcome.task_id}")).json()
        assert [b["digest"] for b in info["blobs"]] == list(plain.image.blobs)
        for blob in info["blobs"]:
            content = _cached_content(client, blob["taskId"])
            assert "sha256:" + hashlib.sha256(content).hexdigest() == blob["digest"]
        served, full = plain.store.bytes_sent, plain.store.full_gets
        # Each host's dfget now registers the blob URL and pulls every piece from the CDN.
        for n, blob in enumerate(info["blobs"]):
            cid = f"10.0.0.{n + 1}-100-1700000000.000"
            data = await register(client, cid, url=blob["url"])
            assert data["taskId"] == blob["taskId"]  # the preheat id is dfget's task id
            reply, got = await download_all(client, data["taskId"], cid)
            assert reply["code"] == 600 and got
        assert plain.store.full_gets == full, "the origin served a blob after the preheat"
        assert plain.store.bytes_sent == served
    finally:
        await client.close()


async def test_restart_mid_preheat_ends_terminal_and_reuses_the_cache(tmp_path, plain: PlainSetup):
    home = tmp_path / "home"
    first = await _start(home)
    try:
        resp = await first.post("/preheats", json=_harbor(plain))
        assert resp.status == 201
        job_id = (await resp.json())["ID"]
        await asyncio.sleep(0.01)  # somewhere in the middle, or already done: both must work
    finally:
        await first.close()
    second = await _start(home)
    try:
        info = await wait_done(second, job_id)
        assert info["status"] == "SUCCESS", info.get("errorMsg")
    finally:
        await second.close()
    # A third life: the job is remembered (208) and the CDN files are reused (ETag → 304).
    served, full = plain.store.bytes_sent, plain.store.full_gets
    third = await _start(home)
    try:
        assert (await third.post("/preheats", json=_harbor(plain))).status == 208
        for n, blob in enumerate(info["blobs"]):
            cid = f"10.0.1.{n + 1}-100-1700000000.000"
            data = await register(third, cid, url=blob["url"])
            reply, _ = await download_all(third, data["taskId"], cid)
            assert reply["code"] == 600
        assert plain.store.full_gets == full, "the CDN fetched again after a restart"
        # What remains is the registration probe (`Range: bytes=0-0`), one byte per blob.
        assert plain.store.bytes_sent - served <= len(info["blobs"])
    finally:
        await third.close()


@pytest.mark.parametrize("path", ["/_ping", "/preheats", "/api/check"])
async def test_harbor_health_and_routes_on_the_real_app(tmp_path, path):
    client = await _start(tmp_path / "home")
    try:
        resp = await client.get(path)
        assert 200 <= resp.status < 300
    finally:
        await client.close()


async def test_a_blob_that_lies_about_its_digest_fails_on_the_real_cdn(tmp_path, stub):
    """The disk CDN's sha256 of what it cached is checked against the manifest's digest."""
    client = await _start(tmp_path / "home")
    try:
        url = f"http://127.0.0.1:{stub.port}/v2/liar/app/manifests/v1"
        resp = await client.post("/preheats", json={"type": "image", "url": url})
        assert resp.status == 201
        info = await wait_done(client, (await resp.json())["ID"])
        assert info["status"] == "FAILED" and "digest mismatch" in info["errorMsg"], info
    finally:
        await client.close()
