"""Open API jobs on the app (MemoryCdn origins): create, poll, list, patch, delete, errors."""

from __future__ import annotations

import asyncio
import json
import re

from multidict import CIMultiDict

from supernode.config import ClusterConfig
from supernode.core.oapi import DEFAULT_FILTERED_QUERY_PARAMS
from supernode.core.tokens import Scope
from supernode.protocol import ids
from tests.web.helpers import download_all, register

ORIGIN = "http://127.0.0.1:9/files/"
# seed 001, "Preheat file", byte for byte as its curl sends it.
SEED_FILE_BODY = """{
    "type": "preheat",
    "args": {
        "type": "file",
        "url": "https://example.com",
        "filteredQueryParams": "Expires&Signature"
    }
}"""
RFC3339_ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def file_body(*urls: str, **args) -> dict:
    body = {"type": "preheat", "args": {"type": "file", "url": urls[0], **args}}
    if len(urls) > 1:
        body["args"]["urls"] = list(urls[1:])
    return body


async def wait_job(client, job_id: int, headers: dict, polls: int = 400) -> dict:
    for _ in range(polls):
        resp = await client.get(f"/oapi/v1/jobs/{job_id}", headers=headers)
        assert resp.status == 200, await resp.text()
        job = await resp.json()
        assert job["state"] in ("PENDING", "SUCCESS", "FAILURE"), job
        if job["state"] != "PENDING":
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never finished: {job}")


async def create(client, body: dict, headers: dict) -> dict:
    resp = await client.post("/oapi/v1/jobs", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_file_job_succeeds_with_job_states_and_zoned_times(api):
    url = ORIGIN + "a.bin"
    api.cdn.origins[url] = b"A" * 5000
    auth = await api.bearer(Scope.JOB)
    created = await create(api.client, file_body(url), auth)
    assert type(created["id"]) is int and created["state"] == "PENDING"
    assert created["result"] is None and created["task_id"].startswith("group_")
    assert created["args"]["filtered_query_params"] == DEFAULT_FILTERED_QUERY_PARAMS
    assert created["args"]["scope"] == "single_seed_peer"
    assert created["args"]["timeout"] == int(api.config.preheat_deadline * 1e9)
    assert [c["name"] for c in created["scheduler_clusters"]] == ["cluster-1"]
    job = await wait_job(api.client, created["id"], auth)
    assert job["state"] == "SUCCESS" and job["task_id"] == created["task_id"]
    for stamp in (job["created_at"], job["updated_at"], job["result"]["created_at"]):
        assert RFC3339_ZONED.match(stamp), stamp
    (state,) = job["result"]["job_states"]
    assert state["state"] == "SUCCESS" and state["error"] == "" and state["task_name"] == "preheat"
    (result,) = state["results"]
    assert result["scheduler_cluster_id"] == 1 and result["failure_tasks"] == []
    assert result["success_tasks"] == [
        {"url": url, "hostname": result["success_tasks"][0]["hostname"], "ip": "127.0.0.1"}
    ]
    # The legacy API shows the same work under the dfget task id.
    legacy = await (await api.client.get(f"/preheats/{state['preheat_id']}")).json()
    assert legacy["status"] == "SUCCESS" and legacy["url"] == url


async def test_the_seeds_file_curl_flow_with_two_authorization_headers(api):
    """seed 001 "Preheat file": curl sends the PAT and a second `Authorization: token …`."""
    url = "https://example.com"
    api.cdn.origins[url] = b"<html>example</html>"
    token = await api.token(Scope.JOB)
    headers = CIMultiDict(
        [
            ("Content-Type", "application/json"),
            ("Authorization", f"Bearer {token}"),
            ("Authorization", "token your_example.com_personal_access_token"),
        ]
    )
    data = SEED_FILE_BODY
    resp = await api.client.post("/oapi/v1/jobs", data=data, headers=headers)
    assert resp.status == 200, await resp.text()
    created = await resp.json()
    assert created["args"]["filtered_query_params"] == "Expires&Signature"
    poll = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    job = await wait_job(api.client, created["id"], poll)
    assert job["state"] == "SUCCESS"


async def test_a_bad_url_ends_failure_with_the_error_in_job_states(api):
    missing = ORIGIN + "missing.bin"  # the origin answers 404
    auth = await api.bearer()
    job = await wait_job(
        api.client, (await create(api.client, file_body(missing), auth))["id"], auth
    )
    assert job["state"] == "FAILURE"
    (state,) = job["result"]["job_states"]
    assert state["state"] == "FAILURE" and "404" in state["error"], state
    (failed,) = state["results"][0]["failure_tasks"]
    assert failed["url"] == missing and failed["description"]
    # An image URL that names no manifest fails the same way, at once.
    body = {
        "type": "preheat",
        "args": {"type": "image", "url": "http://127.0.0.1:9/not/a/manifest"},
    }
    job = await wait_job(api.client, (await create(api.client, body, auth))["id"], auth)
    assert job["state"] == "FAILURE" and job["result"]["job_states"][0]["error"], job


async def test_several_urls_one_failing_make_the_group_fail(api):
    good, bad = ORIGIN + "g.bin", ORIGIN + "b.bin"
    api.cdn.origins[good] = b"good"
    auth = await api.bearer()
    job = await wait_job(
        api.client, (await create(api.client, file_body(good, bad, good), auth))["id"], auth
    )
    states = {s["preheat_id"]: s["state"] for s in job["result"]["job_states"]}
    assert job["state"] == "FAILURE" and sorted(states.values()) == ["FAILURE", "SUCCESS"]


async def test_task_id_mapping_is_what_dfget_requests(api):
    """`filtered_query_params` F and `tag` T warm the task of `dfget -u URL -f F -i T`."""
    url = ORIGIN + "signed.bin?Expires=1&Signature=abc&keep=1"
    api.cdn.origins[url] = b"S" * 3000
    auth = await api.bearer()
    body = file_body(url, filtered_query_params="Expires&Signature", tag="v2", application="app")
    job = await wait_job(api.client, (await create(api.client, body, auth))["id"], auth)
    assert job["state"] == "SUCCESS"
    task_url = ids.filter_url(url, ["Expires", "Signature"])
    expected = ids.task_id(task_url, identifier="v2app")
    assert job["result"]["job_states"][0]["preheat_id"] == expected
    fills = len(api.cdn.fills)
    cid = "10.0.0.7-100-1700000000.000"
    data = await register(api.client, cid, url=url, taskUrl=task_url, identifier="v2app")
    assert data["taskId"] == expected
    reply, got = await download_all(api.client, data["taskId"], cid)
    assert reply["code"] == 600 and got
    assert len(api.cdn.fills) == fills, "dfget's download filled the CDN again"


async def test_validation_errors_are_422_with_errors(api):
    auth = await api.bearer()
    post = api.client.post
    cases = [
        ("{not json", None),
        ('{"type": "preheat", "args": {"type": "file", "url": "https://example.com"},}', None),
        (None, {"type": "sync_peers", "args": {}}),
        (None, {"args": {"type": "file", "url": "https://x"}}),
        (None, {"type": "preheat", "args": {"type": "video", "url": "https://x"}}),
        (None, {"type": "preheat", "args": {"type": "image"}}),
        (None, {"type": "preheat", "args": {"type": "file", "url": "ftp://x/y"}}),
        (None, {"type": "preheat", "args": {"type": "file", "url": "https://x", "timeout": "30m"}}),
        (
            None,
            {"type": "preheat", "args": {"type": "file", "url": "https://x", "piece_length": 1}},
        ),
        (
            None,
            {
                "type": "preheat",
                "args": {"type": "file", "url": "https://x"},
                "scheduler_cluster_ids": ["1"],
            },
        ),
        (None, ["not", "an", "object"]),
    ]
    for raw, body in cases:
        resp = await (
            post("/oapi/v1/jobs", data=raw, headers=auth)
            if raw
            else post("/oapi/v1/jobs", json=body, headers=auth)
        )
        assert resp.status == 422, (raw, body, await resp.text())
        reply = await resp.json()
        assert set(reply) == {"errors"} and isinstance(reply["errors"], str) and reply["errors"]
    resp = await post("/oapi/v1/jobs", json={"type": "nope", "args": {}}, headers=auth)
    assert await resp.json() == {"errors": "Unknow type"}
    for path in (
        "/oapi/v1/jobs/abc",
        "/oapi/v1/jobs/0",
        "/oapi/v1/jobs/-1",
        "/oapi/v1/jobs/99999999999999999999",
    ):
        resp = await api.client.get(path, headers=auth)
        assert resp.status == 422 and "errors" in await resp.json(), path
    for query in ("state=DONE", "per_page=-1", "page=x", "per_page=10000001"):
        resp = await api.client.get(f"/oapi/v1/jobs?{query}", headers=auth)
        assert resp.status == 422 and "errors" in await resp.json(), query
    assert await api.open_api.jobs.store.count({}) == 0, "a refused create stored something"


async def test_unknown_job_and_cluster_are_404(api):
    auth = await api.bearer()
    for method in ("GET", "DELETE"):
        resp = await api.client.request(method, "/oapi/v1/jobs/42", headers=auth)
        assert resp.status == 404 and await resp.json() == {"message": "record not found"}
    resp = await api.client.patch("/oapi/v1/jobs/42", json={"bio": "x"}, headers=auth)
    assert resp.status == 404 and await resp.json() == {"message": "record not found"}
    body = file_body(ORIGIN + "x.bin")
    body["scheduler_cluster_ids"] = [1, 2]
    resp = await api.client.post("/oapi/v1/jobs", json=body, headers=auth)
    assert resp.status == 404
    assert await resp.json() == {"message": "scheduler cluster id 2: record not found"}
    body["scheduler_cluster_ids"] = [1]
    assert (await api.client.post("/oapi/v1/jobs", json=body, headers=auth)).status == 200


async def test_clusters_need_the_cluster_scope_and_follow_the_config(make_api):
    api = await make_api(cluster=ClusterConfig(id=7, name="edge", is_default=False))
    job_only, cluster_only = await api.bearer(Scope.JOB), await api.bearer(Scope.CLUSTER)
    resp = await api.client.get("/oapi/v1/clusters", headers=job_only)
    assert resp.status == 403
    assert (await resp.json())["message"].endswith("Required permission: cluster")
    resp = await api.client.get("/oapi/v1/clusters", headers=cluster_only)
    (cluster,) = await resp.json()
    assert (cluster["id"], cluster["name"], cluster["is_default"]) == (7, "edge", False)
    assert resp.headers["Link"].endswith("</oapi/v1/clusters?page=1&per_page=10>;rel=last")
    assert (await api.client.get("/oapi/v1/clusters/7", headers=cluster_only)).status == 200
    assert (await api.client.get("/oapi/v1/clusters/1", headers=cluster_only)).status == 404
    # scheduler_cluster_ids null = every cluster served here.
    url = ORIGIN + "c.bin"
    api.cdn.origins[url] = b"c"
    body = file_body(url)
    body["scheduler_cluster_ids"] = None
    created = await create(api.client, body, job_only)
    assert [c["id"] for c in created["scheduler_clusters"]] == [7]
    job = await wait_job(api.client, created["id"], job_only)
    assert job["result"]["job_states"][0]["results"][0]["scheduler_cluster_id"] == 7


async def test_list_pages_newest_first_with_the_link_header(api):
    auth = await api.bearer()
    ids_in_order = []
    for n in range(5):
        url = f"{ORIGIN}{n}.bin"
        api.cdn.origins[url] = b"x" * (n + 1)
        ids_in_order.append((await create(api.client, file_body(url), auth))["id"])
        api.clock.now += 1
    resp = await api.client.get("/oapi/v1/jobs?per_page=2&page=2&type=preheat", headers=auth)
    assert resp.status == 200
    assert [j["id"] for j in await resp.json()] == ids_in_order[::-1][2:4]
    assert resp.headers["Link"] == (
        "</oapi/v1/jobs?page=1&per_page=2&type=preheat>;rel=prev,"
        "</oapi/v1/jobs?page=3&per_page=2&type=preheat>;rel=next,"
        "</oapi/v1/jobs?page=1&per_page=2&type=preheat>;rel=first,"
        "</oapi/v1/jobs?page=3&per_page=2&type=preheat>;rel=last"
    )
    everything = await (await api.client.get("/oapi/v1/jobs", headers=auth)).json()
    assert [j["id"] for j in everything] == ids_in_order[::-1]
    for job in everything:
        await wait_job(api.client, job["id"], auth)
    resp = await api.client.get("/oapi/v1/jobs?state=SUCCESS&per_page=10", headers=auth)
    assert len(await resp.json()) == 5
    resp = await api.client.get("/oapi/v1/jobs?state=PENDING", headers=auth)
    assert await resp.json() == []
    assert resp.headers["Link"].endswith(
        "</oapi/v1/jobs?page=0&per_page=10&state=PENDING>;rel=last"
    )
    resp = await api.client.get("/oapi/v1/jobs?type=gc", headers=auth)
    assert await resp.json() == []
    # The query token never goes back out in the Link header.
    token = auth["Authorization"].split()[1]
    resp = await api.client.get(f"/oapi/v1/jobs?access_token={token}&per_page=3")
    assert resp.status == 200 and token not in resp.headers["Link"]


async def test_patch_and_delete(api):
    url = ORIGIN + "p.bin"
    api.cdn.origins[url] = b"p"
    auth = await api.bearer()
    job_id = (await create(api.client, file_body(url), auth))["id"]
    resp = await api.client.patch(
        f"/oapi/v1/jobs/{job_id}", json={"bio": "hello", "user_id": 3}, headers=auth
    )
    patched = await resp.json()
    assert resp.status == 200 and (patched["bio"], patched["user_id"]) == ("hello", 3)
    resp = await api.client.delete(f"/oapi/v1/jobs/{job_id}", headers=auth)
    assert resp.status == 200 and await resp.read() == b""
    assert (await api.client.get(f"/oapi/v1/jobs/{job_id}", headers=auth)).status == 404


async def test_over_the_cluster_job_rate_is_429(make_api):
    api = await make_api(cluster=ClusterConfig(job_rate_limit=2))
    url = ORIGIN + "r.bin"
    api.cdn.origins[url] = b"r"
    auth = await api.bearer()
    statuses = []
    for _ in range(3):
        resp = await api.client.post("/oapi/v1/jobs", json=file_body(url), headers=auth)
        statuses.append(resp.status)
    assert statuses == [200, 200, 429]
    assert resp.content_type == "text/plain" and await resp.text() == "rate limit exceeded"
    api.clock.now += 1  # the bucket refills at 2 a second
    assert (await api.client.post("/oapi/v1/jobs", json=file_body(url), headers=auth)).status == 200


async def test_secrets_are_masked_in_replies(api):
    url = ORIGIN + "s.bin"
    api.cdn.origins[url] = b"s"
    auth = await api.bearer()
    body = file_body(
        url,
        headers={"Authorization": "Bearer registry-secret", "X-Keep": "1"},
        password="pw-secret",
    )
    created = await create(api.client, body, auth)
    job = await wait_job(api.client, created["id"], auth)
    for reply in (created, job):
        text = json.dumps(reply)
        assert "registry-secret" not in text and "pw-secret" not in text
        assert reply["args"]["headers"]["X-Keep"] == "1"


async def test_jobs_and_tokens_survive_a_restart(make_api, tmp_path):
    home = tmp_path / "shared-home"
    first = await make_api(home=home)
    url = ORIGIN + "keep.bin"
    first.cdn.origins[url] = b"k"
    token = await first.token(Scope.JOB)
    auth = {"Authorization": f"Bearer {token}"}
    job = await wait_job(
        first.client, (await create(first.client, file_body(url), auth))["id"], auth
    )
    await first.client.close()
    second = await make_api(home=home)
    again = await (await second.client.get(f"/oapi/v1/jobs/{job['id']}", headers=auth)).json()
    assert again["state"] == "SUCCESS" and again["task_id"] == job["task_id"]
    assert again["result"]["job_states"] == job["result"]["job_states"]


async def test_a_later_rerun_does_not_rewrite_an_earlier_jobs_history(api):
    url = ORIGIN + "flaky.bin"
    auth = await api.bearer()
    first = await wait_job(api.client, (await create(api.client, file_body(url), auth))["id"], auth)
    assert first["state"] == "FAILURE"
    api.cdn.origins[url] = b"now it is there"
    api.clock.now += api.config.fail_access_interval + 1  # the supernode caches a 404 that long
    second = await wait_job(
        api.client, (await create(api.client, file_body(url), auth))["id"], auth
    )
    assert second["state"] == "SUCCESS"
    # Both ran on the same engine job (one dfget task); the first still tells its own outcome.
    preheat_ids = {j["result"]["job_states"][0]["preheat_id"] for j in (first, second)}
    assert len(preheat_ids) == 1
    again = await (await api.client.get(f"/oapi/v1/jobs/{first['id']}", headers=auth)).json()
    assert again["state"] == "FAILURE" and again["result"] == first["result"]


async def test_the_timeout_argument_is_the_jobs_deadline(api):
    url = ORIGIN + "slow.bin"
    api.cdn.origins[url] = b"z" * 10
    api.cdn.gate = asyncio.Semaphore(0)  # the fill never gets a piece out
    auth = await api.bearer()
    body = file_body(url, timeout=200_000_000)  # 0.2 s in nanoseconds
    created = await create(api.client, body, auth)
    assert created["args"]["timeout"] == 200_000_000
    job = await wait_job(api.client, created["id"], auth)
    assert job["state"] == "FAILURE" and "timeout" in job["result"]["job_states"][0]["error"]
