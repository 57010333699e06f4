"""dfget's side of observability with real processes: one JSON `peer task done` line per download,
the uploaders' `/metrics` scraped by a real Prometheus next to the supernode, failures counted
on both sides, and no secret in any log file or metric."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Files
from tests.e2e.harness import Cluster, free_port, md5_of
from tests.prom import Prometheus, prometheus_binary

pytestmark = pytest.mark.e2e
NAME = "f32m"
PIECE_CONTENT = 4 * 1024 * 1024 - 5
SAVED = (
    "1 - dragonfly_supernode_origin_bytes_total / "
    "(dragonfly_supernode_cdn_served_bytes_total + dragonfly_supernode_p2p_bytes_total)"
)
DONE_RE = re.compile(r"^peer task done, cost: \d+ms$")
CID_RE = re.compile(r"^127\.0\.0\.1-\d+-\d+\.\d{3}$")


def json_lines(path: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        assert {"level", "ts", "caller", "msg", "component"} <= set(line), line
    return lines


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` of a process → {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(result: list[dict[str, object]]) -> float:
    return float(result[0]["value"][1])  # type: ignore[index]


async def test_three_dfgets_logs_and_a_real_scrape(cluster: Cluster, files: Files) -> None:
    prometheus_binary()
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url, size = origin.url(NAME), files.size[NAME]
    ports = [free_port() for _ in range(3)]
    homes = [cluster.root / f"home{i}" for i in range(3)]
    outs = [cluster.root / f"out{i}" for i in range(3)]
    uploaders = [f"127.0.0.1:{port}" for port in ports]
    prom = Prometheus(cluster.root / "prom", {"supernode": [sn.node], "dfget": uploaders})
    prom.workdir.mkdir()
    await prom.start()
    try:
        flags = [
            ["--node", sn.node, "--port", str(port), "--verbose", "-s", "1G"] for port in ports
        ]
        first = cluster.dfget(url, outs[0], homes[0], *flags[0])
        jobs = [(outs[i], homes[i], flags[i]) for i in (1, 2)]
        results = [first, *cluster.dfgets_together(url, jobs, timeout=60)]
        for i, result in enumerate(results):
            assert result.code == 0, result.stdout + result.stderr
            assert md5_of(outs[i]) == files.md5[NAME]

        tasks = set()
        for home in homes:
            client_lines = json_lines(home / "logs" / "dfclient.log")
            done = [ln for ln in client_lines if "peer task done" in str(ln["msg"])]
            assert len(done) == 1, client_lines
            (line,) = done
            assert DONE_RE.match(str(line["msg"])) and line["component"] == "dfget", line
            assert CID_RE.match(str(line["peer"])), line
            tasks.add(line["task"])
            server_lines = json_lines(home / "logs" / "dfserver.log")
            assert server_lines and {ln["component"] for ln in server_lines} == {"uploader"}
        (task,) = tasks  # one file, one task id
        assert re.fullmatch(r"[0-9a-f]{64}", str(task))

        up = await prom.wait_for("up", lambda r: len(r) == 4 and all(value([x]) == 1 for x in r))
        assert {x["metric"]["job"] for x in up} == {"supernode", "dfget"}
        delivered = (
            "dragonfly_supernode_cdn_served_bytes_total + dragonfly_supernode_p2p_bytes_total"
        )
        await prom.wait_for(delivered, lambda r: value(r) == 3 * size)
        assert abs(value(await prom.query(SAVED)) - 2 / 3) < 0.01
        # The seeding dfget took every piece from the supernode, alone.
        seed = f'instance="{uploaders[0]}"'
        seed_bytes = f"dragonfly_dfget_peer_download_bytes_total{{{seed}}}"
        by_source = await prom.wait_for(
            f"sum by (source) ({seed_bytes})", lambda r: sum(value([x]) for x in r) == size
        )
        assert {x["metric"]["source"]: value([x]) for x in by_source} == {
            "supernode": size, "peer": 0, "origin": 0,
        }  # fmt: skip
        pieces = await prom.query(f'dragonfly_dfget_peer_pieces_total{{{seed},result="verified"}}')
        assert value(pieces) == -(-size // PIECE_CONTENT)
        ok = await prom.query(f'dragonfly_dfget_peer_downloads_total{{{seed},result="success"}}')
        assert value(ok) == 1
        # Across the host uploaders: what they uploaded is what the dfgets got from peers, and
        # both agree with what the supernode heard in `/peer/piece/suc`.
        total = 'sum(dragonfly_dfget_peer_downloads_total{result="success"})'
        await prom.wait_for(total, lambda r: value(r) == 3)
        peer_bytes = 'sum(dragonfly_dfget_peer_download_bytes_total{source="peer"})'
        uploaded = "sum(dragonfly_dfget_peer_upload_bytes_total)"
        await prom.wait_for(f"{uploaded} - {peer_bytes}", lambda r: value(r) == 0)
        assert value(await prom.query(peer_bytes)) > 0
        await prom.wait_for(
            f"{peer_bytes} - scalar(dragonfly_supernode_p2p_bytes_total)", lambda r: value(r) == 0
        )
        sn_bytes = 'sum(dragonfly_dfget_peer_download_bytes_total{source="supernode"})'
        await prom.wait_for(
            f"{sn_bytes} - scalar(dragonfly_supernode_cdn_served_bytes_total)",
            lambda r: value(r) == 0,
        )
        assert value(await prom.query(f"{sn_bytes} + {peer_bytes}")) == 3 * size
    finally:
        prom.stop()


def test_a_wrong_md5_is_counted_by_the_supernode_and_the_uploader(
    cluster: Cluster, files: Files
) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    home, port = cluster.root / "h", free_port()
    result = cluster.dfget(origin.url("small"), cluster.root / "w.out", home, "--node", sn.node,
                           "--port", str(port), "--md5", "0" * 32)  # fmt: skip
    # The CDN refuses the fill (md5 mismatch), the pull fails, the origin copy does not verify.
    assert result.code == 1104 % 256 and "md5" in result.line, result.stdout + result.stderr
    reason = str(result.reason)
    assert reason != "-1" and not (cluster.root / "w.out").exists()
    sn_metrics = scrape(sn.port)
    failed = {
        labels: v
        for (name, labels), v in sn_metrics.items()
        if name == "dragonfly_dfget_download_failed_total"
    }
    assert failed == {(("callsystem", ""), ("peer", "127.0.0.1"), ("reason", reason)): 1.0}
    up = scrape(port)
    assert up[("dragonfly_dfget_peer_backsource_total", (("reason", reason),))] == 1
    assert up[("dragonfly_dfget_peer_downloads_total", (("result", "fail"),))] == 1
    assert up[("dragonfly_dfget_peer_downloads_total", (("result", "success"),))] == 0
    assert up[("dragonfly_dfget_peer_download_bytes_total", (("source", "origin"),))] == 1000
    lines = json_lines(home / "logs" / "dfclient.log")
    assert not [ln for ln in lines if "peer task done" in str(ln["msg"])]
    (failed_line,) = [ln for ln in lines if str(ln["msg"]).startswith("peer task failed")]
    assert failed_line["level"] == "error" and failed_line["reason"] == int(reason)


def test_no_secret_in_any_log_or_metric(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    home, port = cluster.root / "h", free_port()
    secret = ["--header", "Authorization: Bearer s3cr3t"]
    common = ["--node", sn.node, "--port", str(port), "--verbose", "--console", *secret]
    ok = cluster.dfget(origin.url("small") + "?sig=s3cr3t", cluster.root / "ok", home, *common)
    assert ok.code == 0 and md5_of(cluster.root / "ok") == files.md5["small"], ok.stdout + ok.stderr
    # a URL the origin does not have: every error path logs the URL
    missing = cluster.dfget(origin.url("nope") + "?x=1&sig=s3cr3t", cluster.root / "no", home,
                            *common)  # fmt: skip
    assert missing.code == 1104 % 256, missing.stdout + missing.stderr
    assert "peer task done" in ok.stderr and "sig=***" in missing.stderr  # --console logs
    texts = {"dfget stdout/stderr": ok.stdout + ok.stderr + missing.stdout + missing.stderr}
    logs = sorted(cluster.root.rglob("*.log"))
    names = {p.name for p in logs}
    assert {"dfclient.log", "dfserver.log", "app.log"} <= names, names
    texts.update({str(p): p.read_text(errors="replace") for p in logs})
    for where in (sn.port, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{where}/metrics", timeout=5) as resp:
            texts[f"/metrics of :{where}"] = resp.read().decode()
    leaks = [where for where, text in texts.items() if "s3cr3t" in text]
    assert not leaks, leaks
