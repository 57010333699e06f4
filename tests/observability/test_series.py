"""Every series of the reference's §12 is exposed with its documented type and labels."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.web.helpers import ORIGIN, download_all, register

# name → (type, label names) as §12 documents them
SERIES = {
    "dragonfly_supernode_build_info": ("gauge", {"version", "revision", "os", "arch", "goversion"}),
    "dragonfly_supernode_http_requests_total": ("counter", {"code", "handler"}),
    "dragonfly_supernode_http_request_duration_seconds": ("histogram", {"handler"}),
    "dragonfly_supernode_http_request_size_bytes": ("histogram", {"handler"}),
    "dragonfly_supernode_http_response_size_bytes": ("histogram", {"handler"}),
    "dragonfly_supernode_pieces_downloaded_size_bytes_total": ("counter", set()),
    "dragonfly_dfget_download_duration_seconds": ("histogram", {"callsystem", "peer"}),
    "dragonfly_dfget_download_size_bytes_total": ("counter", {"callsystem", "peer"}),
    "dragonfly_dfget_download_total": ("counter", {"callsystem", "peer"}),
    "dragonfly_dfget_download_failed_total": ("counter", {"callsystem", "peer", "reason"}),
    "dragonfly_supernode_cdn_cache_hit_total": ("counter", set()),
    "dragonfly_supernode_cdn_download_total": ("counter", set()),
    "dragonfly_supernode_cdn_download_size_bytes_total": ("counter", set()),
    "dragonfly_supernode_cdn_download_failed_total": ("counter", set()),
    "dragonfly_supernode_dfgettasks": ("gauge", {"callsystem", "status"}),
    "dragonfly_supernode_dfgettasks_registered_total": ("counter", {"callsystem"}),
    "dragonfly_supernode_dfgettasks_failed_total": ("counter", {"callsystem"}),
    "dragonfly_supernode_gc_tasks_total": ("counter", set()),
    "dragonfly_supernode_gc_peers_total": ("counter", set()),
    "dragonfly_supernode_gc_disks_total": ("counter", set()),
    "dragonfly_supernode_last_gc_disks_timestamp_seconds": ("gauge", set()),
    "dragonfly_supernode_peers": ("gauge", {"peer"}),
    "dragonfly_supernode_tasks": ("gauge", {"cdnstatus"}),
    "dragonfly_supernode_tasks_registered_total": ("counter", set()),
    "dragonfly_supernode_cdn_trigger_total": ("counter", set()),
    "dragonfly_supernode_cdn_trigger_failed_total": ("counter", set()),
    "dragonfly_supernode_schedule_duration_milliseconds": ("histogram", {"peer"}),
}
HISTOGRAM_BUCKETS = {
    "dragonfly_supernode_http_request_duration_seconds": [
        0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 1, 2, 4, 8, 20, 60, 120,
    ],
    "dragonfly_supernode_http_request_size_bytes": [100.0 * 10**k for k in range(8)],
    "dragonfly_dfget_download_duration_seconds": [1, 2, 5, 10, 30, 60, 120, 300, 600],
    "dragonfly_supernode_schedule_duration_milliseconds": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64,
    ],
}  # fmt: skip


def samples_by_series(text: str) -> dict[str, tuple[str, list]]:
    out = {}
    for family in text_string_to_metric_families(text):
        suffix = "_total" if family.type == "counter" else ""
        out[family.name + suffix] = (family.type, family.samples)
    return out


async def test_every_documented_series_after_three_downloads_and_one_failure(
    make_client, memory_cdn
):
    memory_cdn.origins[ORIGIN] = bytes(5 * 1024 * 1024)
    client = await make_client()
    for n in range(3):
        cid = f"127.0.0.{n + 2}-{n}-1.000"
        task_id = (await register(client, cid, call_system="ci"))["taskId"]
        await download_all(client, task_id, cid)
        report = {
            "IP": f"127.0.0.{n + 2}",
            "cID": cid,
            "callSystem": "ci",
            "duration": 1.5,
            "fileLength": 5 * 1024 * 1024,
            "success": True,
            "taskId": task_id,
        }
        await client.post("/task/metrics", data=json.dumps(report))
    # one more download that fails (the origin is gone when it registers the fill again)
    bad = "127.0.0.9-9-9.000"
    await register(client, bad, call_system="ci")
    failed = {
        "IP": "127.0.0.9",
        "cID": bad,
        "callSystem": "ci",
        "backsourceReason": "1",
        "success": False,
        "taskId": task_id,
    }
    await client.post("/task/metrics", data=json.dumps(failed))
    await client.delete(f"/api/v1/tasks/{task_id}")  # a GC'd task
    families = samples_by_series(await (await client.get("/metrics")).text())
    for name, (kind, labels) in SERIES.items():
        assert name in families, f"{name} missing"
        found_kind, samples = families[name]
        assert found_kind == kind, (name, found_kind)
        assert samples, f"{name} has no sample"
        for sample in samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    for name, buckets in HISTOGRAM_BUCKETS.items():
        edges = sorted({float(s.labels["le"]) for s in families[name][1] if "le" in s.labels})
        assert edges == [float(b) for b in buckets] + [float("inf")], name
    dl = {
        tuple(sorted(s.labels.items())): s.value
        for s in families["dragonfly_dfget_download_total"][1]
    }
    assert sum(dl.values()) == 4
    failed_samples = families["dragonfly_dfget_download_failed_total"][1]
    assert [(s.labels["reason"], s.value) for s in failed_samples] == [("1", 1.0)]
    assert [s.value for s in families["dragonfly_supernode_dfgettasks_failed_total"][1]] == [1.0]
    process = [n for n in families if n.startswith("process_")]
    assert "process_resident_memory_bytes" in process
