"""Control-plane benchmark: 1,000 simulated Go dfgets pull one 64-piece task to the end.

The supernode runs as its own process pinned to one core (CDN replaced by one that reports
every piece at once, so no bytes move); this process, pinned to the other core, plays the
peers exactly as a Go dfget talks (register, pull, piece/suc, pull with the result, 602
back-off of 50–100 ms doubling to 800–1600 ms). Baseline, same run, same client: `GET /_ping`,
the cheapest route the same server has. Reported: pulls+reports per second, pull latency
p50/p99, messages per piece, and the throughput ratio to the baseline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.loadgen import Pool
from supernode.protocol import pieces

PIECE_SIZE = 4 * 1024 * 1024
ORIGIN = "http://127.0.0.1:9/bench/256MiB.bin"


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {core})


async def wait_ready(port: int, deadline: float = 20.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            pool = await Pool.open("127.0.0.1", port, 1)
            status, _ = await pool.request("GET", "/_ping")
            pool.close()
            if status == 200:
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("supernode did not start")


async def baseline(pool: Pool, total: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await pool.request("GET", "/_ping")

    start = time.perf_counter()
    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return (total // concurrency * concurrency) / (time.perf_counter() - start)


class Stats:
    def __init__(self) -> None:
        self.pulls: list[float] = []
        self.reports = 0
        self.codes: dict[int, int] = {}
        self.pieces = 0


async def peer(pool: Pool, index: int, stats: Stats, rng: random.Random, deadline: float) -> None:
    ip = f"127.0.{index // 250}.{index % 250 + 1}"
    cid = f"{ip}-{1000 + index}-1600000000.{index % 1000:03d}"
    body = {
        "superNodeIp": "127.0.0.1",
        "rawUrl": ORIGIN,
        "taskUrl": ORIGIN,
        "cid": cid,
        "ip": ip,
        "hostName": f"peer{index}",
        "port": 15000 + index,
        "path": f"/peer/file/f-{index}",
        "version": "1.0.6",
        "pattern": "p2p",
    }
    status, raw = await pool.request("POST", "/peer/registry", json.dumps(body).encode())
    assert status == 200, raw
    task_id = json.loads(raw)["data"]["taskId"]
    # Like a Go dfget: each fetched piece is announced by a pull carrying its result (503),
    # then confirmed by /peer/piece/suc; a 602 with nothing in hand backs off.
    pending: list[dict] = []
    backoff = (0.05, 0.1)
    idle = f"srcCid={cid}&dstCid=&range=&result=502&status=700&taskId={task_id}"
    query, done_piece = idle, None
    while time.monotonic() < deadline:
        status, raw, seconds = await pool.timed("GET", f"/peer/task?{query}")
        stats.pulls.append(seconds)
        reply = json.loads(raw)
        code = reply["code"]
        stats.codes[code] = stats.codes.get(code, 0) + 1
        if done_piece is not None:
            suc = (
                f"/peer/piece/suc?taskId={task_id}&cid={cid}&dstCid={done_piece['cid']}"
                f"&pieceRange={done_piece['range']}"
            )
            status, _ = await pool.request("GET", suc)
            assert status == 200
            stats.reports += 1
            stats.pieces += 1
        if code == 600:
            return
        if code not in (601, 602):
            raise RuntimeError(f"unexpected reply {reply}")
        pending.extend(reply.get("data") or [])
        if pending:
            backoff = (0.05, 0.1)
            done_piece = pending.pop(0)
            query = (
                f"srcCid={cid}&dstCid={done_piece['cid']}&range={done_piece['range']}"
                f"&result=503&status=701&taskId={task_id}"
            )
        else:
            query, done_piece = idle, None
            await asyncio.sleep(rng.uniform(*backoff))
            backoff = (min(backoff[0] * 2, 0.8), min(backoff[1] * 2, 1.6))
    raise RuntimeError(f"peer {index} did not finish before the deadline")


async def run(peers: int, connections: int) -> dict:
    length = 64 * (PIECE_SIZE - pieces.PIECE_WRAP_SIZE)  # exactly 64 pieces, 256 MiB − 320 B
    port = 18000 + os.getpid() % 1000
    home = tempfile.mkdtemp(prefix="bench-sn-")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.synthetic_supernode",
            "--port",
            str(port),
            "--home-dir",
            home,
            "--length",
            str(length),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        preexec_fn=lambda: pin(0),
    )
    try:
        await wait_ready(port)
        pool = await Pool.open("127.0.0.1", port, connections)
        ping_rate = await baseline(pool, 20_000, connections)
        stats = Stats()
        rng = random.Random(7)
        start = time.perf_counter()
        deadline = time.monotonic() + 300
        await asyncio.gather(*(peer(pool, i, stats, rng, deadline) for i in range(peers)))
        elapsed = time.perf_counter() - start
        pool.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    pulls = sorted(stats.pulls)
    messages = len(pulls) + stats.reports
    rate = messages / elapsed
    p99 = pulls[int(len(pulls) * 0.99)] * 1000
    return {
        "benchmark": "peer_task",
        "peers": peers,
        "pieces_per_task": 64,
        "file_bytes": length,
        "elapsed_s": round(elapsed, 2),
        "pulls": len(pulls),
        "reports": stats.reports,
        "reply_codes": {str(k): v for k, v in sorted(stats.codes.items())},
        "pulls_plus_reports_per_s": round(rate),
        "pull_p50_ms": round(pulls[len(pulls) // 2] * 1000, 2),
        "pull_p99_ms": round(p99, 2),
        "messages_per_piece": round(messages / max(stats.pieces, 1), 2),
        "baseline_ping_per_s": round(ping_rate),
        "ratio_to_ping_baseline": round(rate / ping_rate, 3),
        "targets": {"pulls_plus_reports_per_s": ">= 3000", "pull_p99_ms": "<= 25"},
        "meets_targets": rate >= 3000 and p99 <= 25,
    }


def main() -> None:
    peers = int(os.environ.get("BENCH_PEERS", "1000"))
    connections = int(os.environ.get("BENCH_CONNECTIONS", "64"))
    pin(1)
    result = asyncio.run(run(peers, connections))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
