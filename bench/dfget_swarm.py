"""Benchmark: N dfget processes (separate homes and uploader ports) fetch one file at once
through a cold supernode, every peer capped at B (`--locallimit B --totallimit B`).

Reported against the ideal distribution time T* = S/B + log2(N)·p/B (S file size, p piece
size): completion p50/p99 as ratios to T*, origin bytes / S, the supernode's share of all
bytes delivered, peak RSS of every dfget and uploader. JSON on stdout (and in --json), a PNG
with --png when matplotlib is installed.

Usage: python3 bench/dfget_swarm.py [--n 8] [--size 256M] [--rate 32M] [--json F] [--png F]
Env (for `python -m bench`): BENCH_N, BENCH_SIZE, BENCH_RATE.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import emit
from supernode.protocol.pieces import piece_size_for
from supernode.protocol.units import parse_size
from tests.e2e.harness import REPO, Cluster, Result, env, free_port, make_file, md5_of


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process (the uploaders are not our children)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (the uploaders are not our children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def run(n: int, size: int, rate: int, root: Path) -> dict[str, object]:
    cluster = Cluster(root)
    try:
        www = root / "www"
        www.mkdir()
        md5 = make_file(www / "blob", size)
        origin = cluster.origin(www)
        sn = cluster.supernode()
        url = origin.url("blob")
        homes = [root / f"peer{i}" for i in range(n)]
        cmds = [
            cluster.dfget_cmd(
                url, homes[i] / "out", homes[i], "--node", sn.node, "--port", str(free_port()),
                "--locallimit", str(rate), "--totallimit", str(rate), "--verbose",
            )
            for i in range(n)
        ]  # fmt: skip
        start = time.monotonic()
        procs = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=REPO)
            for c in cmds
        ]
        done: dict[int, tuple[float, int, Result, float]] = {}
        # Peak RSS is sampled from /proc while each dfget runs: wait4's ru_maxrss would also
        # count this process's RSS at the fork that started it.
        peak = [0] * n
        while len(done) < n:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                for i, proc in enumerate(procs):
                    if i not in done:
                        peak[i] = max(peak[i], peak_rss_kib(proc.pid))
                time.sleep(0.02)
                continue
            index = next((i for i, p in enumerate(procs) if p.pid == pid), None)
            if index is None:
                continue
            elapsed = time.monotonic() - start
            procs[index].returncode = os.waitstatus_to_exitcode(status)
            out = procs[index].stdout.read().decode()  # type: ignore[union-attr]
            err = procs[index].stderr.read().decode()  # type: ignore[union-attr]
            result = Result(procs[index].returncode, out, err)
            done[index] = (elapsed, peak[index], result, usage.ru_utime + usage.ru_stime)
        uploader_rss = [peak_rss_kib(cluster.uploader_pid(h) or 0) for h in homes]
        uploader_cpu = [cpu_seconds(cluster.uploader_pid(h) or 0) for h in homes]
        supernode_cpu = cpu_seconds(sn.proc.pid)
        stats = origin.stats()
    finally:
        cluster.close()

    times = [done[i][0] for i in range(n)]
    results = [done[i][2] for i in range(n)]
    failures = [r.stdout[-500:] + r.stderr[-500:] for r in results if r.code != 0]
    correct = sum(md5_of(h / "out") == md5 for h in homes if (h / "out").exists())
    splits = [r.split() for r in results]
    delivered = sum(s.get(k, 0) for s in splits for k in ("supernode_bytes", "peer_bytes"))
    from_sn = sum(s.get("supernode_bytes", 0) for s in splits)
    piece = piece_size_for(size)
    ideal = size / rate + math.log2(max(n, 1)) * piece / rate
    return {
        "benchmark": "dfget_swarm",
        "n": n,
        "size_bytes": size,
        "rate_bytes_per_s": rate,
        "piece_size": piece,
        "t_star_s": round(ideal, 3),
        "completion_s": [round(t, 3) for t in times],
        "p50_ratio": round(statistics.median(times) / ideal, 3),
        "p99_ratio": round(percentile(times, 0.99) / ideal, 3),
        "origin_bytes_ratio": round(stats["bytes"].get("blob", 0) / size, 4),
        "supernode_share": round(from_sn / delivered, 4) if delivered else None,
        "dfget_peak_rss_mib": [round(done[i][1] / 1024, 1) for i in range(n)],
        "uploader_peak_rss_mib": [round(k / 1024, 1) for k in uploader_rss],
        "dfget_cpu_s": [round(done[i][3], 2) for i in range(n)],
        "uploader_cpu_s": [round(c, 2) for c in uploader_cpu],
        "supernode_cpu_s": round(supernode_cpu, 2),
        "md5_ok": correct,
        "failures": failures,
        "pieces_by_source": splits,
    }


def plot(report: dict[str, object], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    times = sorted(report["completion_s"])  # type: ignore[arg-type]
    t_star = float(report["t_star_s"])  # type: ignore[arg-type]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(range(1, len(times) + 1), times, marker="o", label="dfget completion")
    left.axhline(t_star, color="green", linestyle="--", label="T*")
    left.axhline(1.3 * t_star, color="red", linestyle=":", label="1.3·T* target")
    left.set_ylim(bottom=0)
    left.set_xlabel("peers (sorted)")
    left.set_ylabel("seconds")
    left.legend()
    rss = report["dfget_peak_rss_mib"]
    right.bar(range(len(rss)), rss)  # type: ignore[arg-type]
    right.axhline(64, color="red", linestyle=":", label="64 MB target")
    right.set_xlabel("dfget")
    right.set_ylabel("peak RSS (MiB)")
    right.legend()
    mib = 1 << 20
    size, rate = int(report["size_bytes"]) // mib, int(report["rate_bytes_per_s"]) // mib  # type: ignore[call-overload]
    fig.suptitle(
        f"N={report['n']} S={size}MiB B={rate}MiB/s origin={report['origin_bytes_ratio']}·S"
        f" supernode share={report['supernode_share']}"
    )
    fig.tight_layout()
    fig.savefig(path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "8")))
    parser.add_argument("--size", default=os.environ.get("BENCH_SIZE", "256M"))
    parser.add_argument("--rate", default=os.environ.get("BENCH_RATE", "32M"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--keep", type=Path, help="keep homes and logs in this new directory")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        report = run(args.n, parse_size(args.size), parse_size(args.rate), args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="dfget-swarm-") as tmp:
            report = run(args.n, parse_size(args.size), parse_size(args.rate), Path(tmp))
    if args.png is not None:
        report["png"] = str(args.png) if plot(report, args.png) else "matplotlib not installed"
    emit(report, args.json)


if __name__ == "__main__":
    main()
