"""The Open API of a real `supernode` process: Harbor 2.12 / 2.13 replays against a real
`docker-registry`, the seed's curl flows, `supernode token` on the running home, a restart."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from aiohttp import web

from supernode.protocol import ids
from tests.oapi.harbor2 import Harbor2Outcome, HarborError, harbor2_preheat, harbor_body
from tests.oapi.process import SupernodeProcess, create_token, token_cli
from tests.preheat import registry_kit as kit
from tests.preheat.conftest import PlainSetup, TokenSetup

FILE_BODY = os.urandom(300 * 1024 + 17)


@pytest.fixture
async def origin(aiohttp_server):
    async def serve(request: web.Request) -> web.Response:
        if request.match_info["name"] != "file.bin":
            return web.Response(status=404)
        return web.Response(body=FILE_BODY, headers={"ETag": '"f1"'})

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def supernode(tmp_path):
    process = SupernodeProcess(tmp_path / "home")
    await process.start()
    yield process
    process.stop()


async def _get(url: str, token: str) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _blob_task_ids(base: str, token: str, outcome: Harbor2Outcome) -> dict[str, str]:
    """blob url → the task id the engine warmed, read through the legacy API."""
    _, job = await _get(f"{base}/oapi/v1/jobs/{outcome.task_id}", token)
    out = {}
    for state in job["result"]["job_states"]:  # type: ignore[index]
        _, info = await _get(f"{base}/preheats/{state['preheat_id']}", token)
        out.update({b["url"]: b["taskId"] for b in info["blobs"]})  # type: ignore[index]
    return out


async def test_harbor_2_12_and_2_13_preheat_an_image(
    supernode, plain: PlainSetup, token_registry: TokenSetup
):
    pat = create_token(supernode.home, "harbor")  # the CLI, on the running supernode's home
    # 2.12: the plain registry (Harbor's JWT header is sent, the registry ignores it).
    url = plain.image.manifest_url(plain.registry)
    body = harbor_body(url, "harbor-issued-jwt", (2, 12), None)
    outcome = await harbor2_preheat(supernode.base, pat, body)
    assert outcome.status == "SUCCESS", outcome
    blobs = [
        f"{plain.registry.base}/v2/{plain.image.repository}/blobs/{d}" for d in plain.image.blobs
    ]
    assert sorted(blobs) == sorted(await _blob_task_ids(supernode.base, pat, outcome))
    for blob_url, task in (await _blob_task_ids(supernode.base, pat, outcome)).items():
        assert task == ids.task_id(blob_url)  # what `dfget -u <blob url>` registers
    # 2.13: a token registry; Harbor's JWT is an already-issued pull token, used as is.
    image = token_registry.image
    jwt = kit.mint_token(token_registry.tokens.pki, image.repository, ["pull"])
    body = harbor_body(image.manifest_url(token_registry.registry), jwt, (2, 13), [1])
    outcome = await harbor2_preheat(supernode.base, pat, body)
    assert outcome.status == "SUCCESS", outcome
    assert len(await _blob_task_ids(supernode.base, pat, outcome)) == len(image.blobs)
    assert token_registry.tokens.requests == [], "Harbor's token must be used as is"
    # Harbor's JWT and the PAT never reach the supernode's log file.
    log = supernode.log_text()
    assert "open api job" in log and jwt not in log and pat not in log


async def test_a_file_and_bad_urls_through_the_harbor_client(supernode, origin, plain: PlainSetup):
    pat = create_token(supernode.home, "files", scopes="job")
    good = {"type": "preheat", "args": {"type": "file", "url": f"{origin}/file.bin", "timeout": 0}}
    outcome = await harbor2_preheat(supernode.base, pat, good)
    assert outcome.status == "SUCCESS" and f"{origin}/file.bin" in outcome.message
    missing = {"type": "preheat", "args": {"type": "file", "url": f"{origin}/missing.bin"}}
    outcome = await harbor2_preheat(supernode.base, pat, missing)
    assert outcome.status == "FAIL" and "404" in outcome.message, outcome
    no_image = harbor_body(
        f"{plain.registry.base}/v2/library/nothing/manifests/v1", "", (2, 13), None
    )
    outcome = await harbor2_preheat(supernode.base, pat, no_image)
    assert outcome.status == "FAIL" and outcome.message, outcome
    # Harbor with a PAT it does not have: the health check passes, the create does not.
    with pytest.raises(HarborError, match="401"):
        await harbor2_preheat(supernode.base, "wrong-pat", good)


async def test_the_seed_image_curl_flow_with_a_query_token(supernode, plain: PlainSetup):
    pat = create_token(supernode.home, "curl")
    url = plain.image.manifest_url(plain.registry)
    body = {
        "type": "preheat",
        "args": {
            "type": "image",
            "url": url,
            "filteredQueryParams": "Expires&Signature",
            "username": "your_registry_username",
            "password": "your_registry_password",
        },
    }
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/json"}
        resp = await session.post(
            f"{supernode.base}/oapi/v1/jobs?access_token={pat}", json=body, headers=headers
        )
        assert resp.status == 200, await resp.text()
        created = await resp.json()
        assert (
            created["state"] == "PENDING"
            and created["args"]["password"] != "your_registry_password"
        )
        for _ in range(300):
            resp = await session.get(
                f"{supernode.base}/oapi/v1/jobs/{created['id']}",
                headers={**headers, "Authorization": f"Bearer {pat}"},
            )
            job = await resp.json()
            if job["state"] != "PENDING":
                break
            await asyncio.sleep(0.05)
    assert job["state"] == "SUCCESS", job
    assert job["scheduler_clusters"][0]["name"] == "cluster-1"


async def test_token_cli_on_a_running_home_and_a_restart(tmp_path, origin):
    process = SupernodeProcess(
        tmp_path / "home", cluster={"id": 3, "name": "edge", "job_rate_limit": 1}
    )
    await process.start()
    try:
        done = token_cli(
            "create",
            "--home-dir",
            str(process.home),
            "--name",
            "ops",
            "--scopes",
            "job,cluster",
            "--expires",
            "1d",
        )
        assert done.returncode == 0, done.stderr
        token = done.stdout.splitlines()[-1]
        assert len(token) == 48 and " " not in token and token not in done.stdout.splitlines()[0]
        status, clusters = await _get(f"{process.base}/oapi/v1/clusters", token)
        assert status == 200 and [(c["id"], c["name"]) for c in clusters] == [(3, "edge")]  # type: ignore[union-attr]
        body = {"type": "preheat", "args": {"type": "file", "url": f"{origin}/file.bin"}}
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            first = await session.post(f"{process.base}/oapi/v1/jobs", json=body)
            second = await session.post(f"{process.base}/oapi/v1/jobs", json=body)
            assert (first.status, second.status) == (200, 429)
            assert await second.text() == "rate limit exceeded"
            job_id = (await first.json())["id"]
        listing = token_cli("list", "--home-dir", str(process.home))
        assert "name=ops" in listing.stdout and token not in listing.stdout
        assert (
            token_cli("deactivate", "--home-dir", str(process.home), "--name", "ops").returncode
            == 0
        )
        assert (await _get(f"{process.base}/oapi/v1/clusters", token))[0] == 403
        assert (
            token_cli("activate", "--home-dir", str(process.home), "--name", "ops").returncode == 0
        )
    finally:
        process.stop()
    again = SupernodeProcess(tmp_path / "home", cluster={"id": 3, "name": "edge"})
    await again.start()
    try:
        for _ in range(300):
            status, job = await _get(f"{again.base}/oapi/v1/jobs/{job_id}", token)
            assert status == 200, job
            if job["state"] != "PENDING":  # type: ignore[index]
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "SUCCESS", job  # type: ignore[index]
        assert token not in again.log_text() and token not in process.log_text()
    finally:
        again.stop()
    bad = token_cli(
        "create", "--home-dir", str(tmp_path / "home"), "--name", "x", "--scopes", "preheat"
    )
    assert bad.returncode != 0 and "unknown scope" in bad.stderr
