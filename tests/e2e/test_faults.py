"""Faults dfget must survive, with real processes: a peer killed mid-transfer, a peer serving
corrupted bytes, the origin gone after the CDN is warm, the supernode gone (migration,
back-to-source, `--notbs`)."""

from __future__ import annotations

import selectors
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import Files
from tests.e2e.harness import HERE, Cluster, Result, free_port, md5_of

pytestmark = pytest.mark.e2e
NAME = "f32m"


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """Lines of a running dfget's stdout up to the first one containing `needle`."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.2):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not seen in time; got:\n{''.join(seen)}")


def finish(proc: subprocess.Popen[str], before: str = "", timeout: float = 120) -> Result:
    stdout, stderr = proc.communicate(timeout=timeout)
    result = Result(proc.returncode, before + stdout, stderr)
    print(result.stdout)  # shown with -s: what the dfget saw
    return result


def seed(cluster: Cluster, url: str, node: str, home: Path, *extra: str) -> Result:
    port = [] if "--port" in extra else ["--port", str(free_port())]
    result = cluster.dfget(url, home / "seed.out", home, "--node", node, "--verbose", "-s", "1G",
                           *port, *extra)  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    return result


def test_peer_killed_mid_transfer(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url = origin.url(NAME)
    seeder, seeder_port = cluster.root / "seeder", free_port()
    seed(cluster, url, sn.node, seeder, "--port", str(seeder_port))
    # From now on its uploader serves slowly (a local dfget's `/check` sets the host limit).
    limit = urllib.request.Request(f"http://127.0.0.1:{seeder_port}/check/limit",
                                   headers={"totalLimit": str(6 << 20)})  # fmt: skip
    assert urllib.request.urlopen(limit, timeout=5).status == 200
    out = cluster.root / "b.out"
    proc = cluster.start_dfget(url, out, cluster.root / "b", "--node", sn.node, "--verbose",
                               "-s", "1G", "--port", str(free_port()))  # fmt: skip
    before = read_until(proc, "ok from peer", 60)
    assert cluster.kill_uploader(seeder)  # SIGKILL: no goodbye to the supernode
    result = finish(proc, before)
    assert result.code == 0, result.stdout + result.stderr
    assert md5_of(out) == files.md5[NAME]
    split = result.split()
    assert split["peer"] >= 1 and split["supernode"] >= 1, split  # rescheduled after the kill


def test_corrupting_peer_is_detected_reported_and_avoided(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url = origin.url(NAME)
    bad_home, bad_port = cluster.root / "bad", free_port()
    cluster.start_uploader(bad_home, bad_port, HERE / "corrupt_uploader.py")
    seed(cluster, url, sn.node, bad_home, "--port", str(bad_port))  # shares the bad uploader
    out = cluster.root / "b.out"
    result = cluster.dfget(url, out, cluster.root / "b", "--node", sn.node, "--verbose",
                           "-s", "1G", "--port", str(free_port()))  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert md5_of(out) == files.md5[NAME]
    failures = [ln for ln in result.stdout.splitlines() if "failed from peer" in ln]
    assert failures and all("md5" in ln for ln in failures), result.stdout
    pieces = -(-files.size[NAME] // (4 * 1024 * 1024 - 5))
    # blacklisted after its first failures: the bad peer is not tried for every piece
    assert len(failures) < pieces, result.stdout
    assert result.split()["peer"] == 0


def test_origin_gone_after_the_cdn_is_warm(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url = origin.url(NAME)
    seed(cluster, url, sn.node, cluster.root / "a")
    origin.stop()
    procs = [
        (cluster.root / f"{n}.out", cluster.start_dfget(
            url, cluster.root / f"{n}.out", cluster.root / n, "--node", sn.node, "--verbose",
            "-s", "1G", "--port", str(free_port())))
        for n in ("b", "c")
    ]  # fmt: skip
    for out, proc in procs:
        result = finish(proc)
        assert result.code == 0 and result.reason == 0, result.stdout + result.stderr
        assert md5_of(out) == files.md5[NAME]
        assert result.split()["origin"] == 0


def test_supernode_gone_migrates_to_the_second(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sns = {sn.node: sn for sn in (cluster.supernode("sn1"), cluster.supernode("sn2"))}
    url, out = origin.url(NAME), cluster.root / "m.out"
    proc = cluster.start_dfget(url, out, cluster.root / "m", "--node", ",".join(sns),
                               "--verbose", "-s", "12M", "--port", str(free_port()))  # fmt: skip
    before = read_until(proc, "registered with supernode", 30)
    first = before.rsplit("registered with supernode ", 1)[1].split()[0]
    before += read_until(proc, "ok from", 30)
    sns[first].stop()
    result = finish(proc, before)
    assert result.code == 0 and result.reason == 0, result.stdout + result.stderr
    assert md5_of(out) == files.md5[NAME]
    (second,) = set(sns) - {first}
    assert f"registered with supernode {second}" in result.stdout
    assert f"migrated to node:{second}" in result.stdout


def test_supernode_gone_mid_transfer_goes_back_to_source(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url, out = origin.url(NAME), cluster.root / "s.out"
    proc = cluster.start_dfget(url, out, cluster.root / "s", "--node", sn.node, "--verbose",
                               "-s", "12M", "--port", str(free_port()))  # fmt: skip
    before = read_until(proc, "ok from", 30)
    sn.stop()
    result = finish(proc, before)
    assert result.code == 0, result.stdout + result.stderr
    assert result.reason == 3 and md5_of(out) == files.md5[NAME]
    assert result.split()["origin"] == 1


def test_no_supernode_back_to_source_or_fail_under_notbs(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    url, dead = origin.url("small"), f"127.0.0.1:{free_port()}"
    ok = cluster.dfget(url, cluster.root / "ok.out", cluster.root / "h", "--node", dead)
    assert ok.code == 0 and ok.reason == 1, ok.stdout + ok.stderr
    assert md5_of(cluster.root / "ok.out") == files.md5["small"]
    refused = cluster.dfget(url, cluster.root / "no.out", cluster.root / "h", "--node", dead,
                            "--notbs")  # fmt: skip
    assert refused.code == 1104 % 256, refused.stdout + refused.stderr
    assert refused.line.startswith("download FAIL(1104)") and refused.reason == 1001
    assert "not back source" in refused.line
    assert not (cluster.root / "no.out").exists()
    assert not list(cluster.root.glob("dfget-*")) and not list(cluster.root.glob("backsource.*"))


def test_supernode_gone_under_notbs_fails_with_reason_1003(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url, out = origin.url(NAME), cluster.root / "n.out"
    proc = cluster.start_dfget(url, out, cluster.root / "n", "--node", sn.node, "--verbose",
                               "-s", "12M", "--notbs", "--port", str(free_port()))  # fmt: skip
    before = read_until(proc, "ok from", 30)
    sn.stop()
    result = finish(proc, before)
    assert result.code == 80 and result.reason == 1003, result.stdout + result.stderr
    assert not out.exists()


def test_pattern_source_and_origin_errors(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    direct = cluster.dfget(origin.url("small"), cluster.root / "d.out", cluster.root / "h",
                           "--pattern", "source", "--verbose")  # fmt: skip
    assert direct.code == 0 and direct.reason == 100, direct.stdout + direct.stderr
    assert md5_of(cluster.root / "d.out") == files.md5["small"]
    missing = cluster.dfget(origin.url("nope"), cluster.root / "x.out", cluster.root / "h",
                            "--pattern", "source")  # fmt: skip
    assert missing.code == 80 and "HTTP 404" in missing.line, missing.stdout
    wrong = cluster.dfget(origin.url("small"), cluster.root / "w.out", cluster.root / "h",
                          "--pattern", "source", "--md5", "0" * 32)  # fmt: skip
    assert wrong.code == 80 and "md5" in wrong.line and not (cluster.root / "w.out").exists()
    assert "Traceback" not in missing.stderr + wrong.stderr


def test_interrupted_dfget_leaves_no_temp_file(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    out = cluster.root / "dir" / "i.out"
    proc = cluster.start_dfget(origin.url(NAME), out, cluster.root / "i", "--node", sn.node,
                               "--verbose", "-s", "4M", "--port", str(free_port()))  # fmt: skip
    before = read_until(proc, "ok from", 30)
    proc.terminate()
    result = finish(proc, before, timeout=30)
    assert result.code == 80 and "interrupted" in result.line, result.stdout + result.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []
