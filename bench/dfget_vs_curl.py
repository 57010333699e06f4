"""Benchmark: one dfget against `curl` of the same origin file, no rate limits, same run.

Timed as whole processes (start to exit, output written and, for dfget, fsynced):
  curl   — `curl -s -o OUT URL`, best of --repeat;
  cold   — a fresh supernode (its CDN fills from the origin while dfget downloads; its
           origin cap lifted with `--max-bandwidth 100G`) and a fresh dfget home (the
           uploader is spawned too); that host's uploader stays, a peer holding the file;
  warm   — the same supernode (cache full), a new host (home and uploader) each run;
  cdn    — warm, `--pattern cdn` (no uploader of its own).
After every run, curl's too, the output is deleted and the run's uploader stopped (it tells
the supernode and deletes its `.service` copy): each run then writes into page-cache pages
the previous one freed. On this VM a page touched for the first time costs several times a
recycled one, so runs that left their copy behind were measured on dearer pages than curl.
Ratios are dfget / curl (best of each); `*_failed_pieces` counts pieces fetched again per
run (0 expected). JSON on stdout (and in --json).

Usage: python3 bench/dfget_vs_curl.py [--size 512M] [--repeat 3] [--json F]
Env (for `python -m bench`): BENCH_SIZE.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import emit
from supernode.protocol.units import parse_size
from tests.e2e.harness import REPO, Cluster, Result, env, free_port, make_file, md5_of


def timed(cmd: list[str]) -> tuple[float, int, str]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, env=env(), cwd=REPO, check=False)
    return time.monotonic() - start, proc.returncode, proc.stdout.decode()


def failed_pieces(stdout: str) -> int:
    """Pieces that had to be fetched again (dfget's `--verbose` summary line)."""
    return Result(0, stdout, "").split().get("failed", 0)


def stop_uploader(cluster: Cluster, home: Path) -> None:
    """SIGTERM: it tells the supernode it is gone and deletes its `.service` copy; wait (≤ 10 s)
    until it has exited, so the pages it held are free before the next run."""
    pid = cluster.uploader_pid(home)
    if pid is None or not cluster.kill_uploader(home, signal.SIGTERM):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def run(size: int, repeat: int, root: Path) -> dict[str, object]:
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed")
    cluster = Cluster(root)
    try:
        www = root / "www"
        www.mkdir()
        md5 = make_file(www / "blob", size)
        origin = cluster.origin(www)
        url = origin.url("blob")
        curl_times = []
        for i in range(repeat):
            out = root / f"curl{i}"
            elapsed, code, _ = timed([curl, "-s", "-o", str(out), url])
            assert code == 0 and out.stat().st_size == size
            curl_times.append(elapsed)
            out.unlink()
        # The supernode's default origin cap (maxBandwidth − reserved = 180 MB/s) would decide
        # the cold time on its own; lift it so the cold run measures the data path.
        sn = cluster.supernode("sn", "--max-bandwidth", "100G")
        before = origin.stats()["bytes"].get("blob", 0)
        flags = ["--node", sn.node, "--locallimit", "100G", "--verbose"]
        results: dict[str, list[float]] = {"cold": [], "warm": [], "cdn": []}
        failures: dict[str, list[int]] = {kind: [] for kind in results}
        out = root / "cold.out"
        cold = [*flags, "--port", str(free_port())]
        elapsed, code, tail = timed(cluster.dfget_cmd(url, out, root / "cold", *cold))
        assert code == 0 and md5_of(out) == md5, tail[-300:]
        results["cold"].append(elapsed)
        failures["cold"].append(failed_pieces(tail))
        out.unlink()  # its `.service` copy stays: the cold host's uploader is a peer from now on
        for i in range(repeat):
            for kind, extra in (("warm", []), ("cdn", ["--pattern", "cdn"])):
                out, host = root / f"{kind}{i}.out", root / f"{kind}{i}"
                cmd = cluster.dfget_cmd(url, out, host, *flags, "--port", str(free_port()), *extra)
                elapsed, code, tail = timed(cmd)
                assert code == 0 and out.stat().st_size == size, tail[-300:]
                results[kind].append(elapsed)
                failures[kind].append(failed_pieces(tail))
                out.unlink()
                stop_uploader(cluster, host)
        stats = origin.stats()
    finally:
        cluster.close()
    best_curl = min(curl_times)
    report: dict[str, object] = {
        "benchmark": "dfget_vs_curl",
        "size_bytes": size,
        "curl_s": [round(t, 3) for t in curl_times],
        "origin_bytes_ratio_dfget": round((stats["bytes"].get("blob", 0) - before) / size, 4),
    }
    for kind, times in results.items():
        report[f"{kind}_s"] = [round(t, 3) for t in times]
        report[f"{kind}_ratio"] = round(min(times) / best_curl, 3)
        report[f"{kind}_failed_pieces"] = failures[kind]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default=os.environ.get("BENCH_SIZE", "512M"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dfget-vs-curl-") as tmp:
        report = run(parse_size(args.size), args.repeat, Path(tmp))
    emit(report, args.json)


if __name__ == "__main__":
    main()
