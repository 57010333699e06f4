"""Benchmark: a cold CDN fill + fetching every piece from the download port, against curl.

Usage: python3 bench/cdn_fill.py [SIZE]   (SIZE like 1G, 256M; default 1G; or BENCH_SIZE=...)
Env: ORIGIN_RATE=bytes/s caps the origin for both runs (default: unlimited);
     BENCH_VERIFY=1 makes the piece fetcher check every piece's md5.
Three processes: the origin (threaded http.server + sendfile), this one (DiskCdn and the
download app: the supernode side, whose RSS is measured), and a piece fetcher that GETs each
piece from the download port as soon as the CDN reports it ready. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supernode.cdn.interface import FillOutcome, FillSpec, OriginRequest
from supernode.protocol.ids import task_id as make_task_id
from supernode.protocol.pieces import piece_count, piece_size_for
from supernode.protocol.units import parse_size

# -- the origin process ---------------------------------------------------------------------


def run_origin(path: str, port_file: str, rate: int) -> None:
    size = os.path.getsize(path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            start, end, status = 0, size - 1, 200
            header = self.headers.get("Range", "")
            if header.startswith("bytes="):
                first, _, last = header[6:].partition("-")
                start = int(first or 0)
                end = min(int(last), size - 1) if last else size - 1
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Last-Modified", "Mon, 14 Sep 2020 12:26:40 GMT")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            with open(path, "rb") as handle:
                offset, remaining = start, end - start + 1
                began = time.monotonic()
                while remaining:
                    step = min(remaining, 4 << 20 if not rate else max(rate // 100, 65536))
                    try:
                        sent = os.sendfile(self.connection.fileno(), handle.fileno(), offset, step)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if sent == 0:
                        return
                    offset += sent
                    remaining -= sent
                    if rate:
                        ahead = (offset - start) / rate - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # clients hang up (the probe closes early): nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    Path(port_file + ".tmp").write_text(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)  # the parent polls for the file: no torn reads
    server.serve_forever()


# -- the piece fetcher process ----------------------------------------------------------------


def run_fetcher(port: int, verify: bool) -> None:
    """Reads `num start end md5` lines on stdin, GETs each range, prints `num t_done` lines."""
    local = threading.local()
    out_lock = threading.Lock()

    def fetch(line: str) -> None:
        num, start, end, md5 = line.split()
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", PATH, headers={"Range": f"bytes={start}-{end}", "pieceNum": num})
        response = conn.getresponse()
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        hasher = hashlib.md5() if verify else None
        total = 0
        while True:
            count = response.readinto(buffer)
            if not count:
                break
            total += count
            if hasher:
                hasher.update(view[:count])
        ok = response.status == 206 and (hasher is None or hasher.hexdigest() == md5.split(":")[0])
        with out_lock:
            print(f"{num} {time.monotonic()} {total} {int(ok)}", flush=True)

    with ThreadPoolExecutor(4) as pool:
        for line in sys.stdin:
            if line.strip():
                pool.submit(fetch, line.strip())


PATH = ""


# -- the supernode side (this process) ------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def curl_seconds(url: str, output: str = "/dev/null") -> float:
    out = subprocess.run(
        ["curl", "-s", "-o", output, "-w", "%{time_total}", url],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    if output != "/dev/null":
        os.unlink(output)
    return float(out.stdout)


class BenchListener:
    def __init__(self, fetcher: subprocess.Popen[str], piece_size: int, length: int) -> None:
        self.fetcher = fetcher
        self.piece_size = piece_size
        self.length = length
        self.done = asyncio.Event()
        self.outcome: FillOutcome | None = None
        self.reason = ""
        self.ready_at: dict[int, float] = {}

    def piece_ready(self, task_id: str, num: int, md5: str) -> None:
        self.ready_at[num] = time.monotonic()
        start = num * self.piece_size
        assert self.fetcher.stdin is not None
        self.fetcher.stdin.write(f"{num} {start} {start + self.piece_size - 1} {md5}\n")
        self.fetcher.stdin.flush()

    def fill_succeeded(self, task_id: str, outcome: FillOutcome) -> None:
        self.outcome = outcome
        self.done.set()

    def fill_failed(self, task_id: str, reason: str) -> None:
        self.reason = reason
        self.done.set()

    def file_md5_known(self, task_id: str, real_md5: str) -> None:
        self.real_md5 = real_md5


async def bench(size: int, origin_port: int, verify: bool) -> dict[str, object]:
    from aiohttp import web

    from supernode.cdn.manager import DiskCdn
    from supernode.config import SupernodeConfig
    from supernode.metrics import SupernodeMetrics
    from supernode.web.download import create_download_app

    global PATH
    url = f"http://127.0.0.1:{origin_port}/file"
    home = Path(tempfile.mkdtemp(prefix="bench-cdn-home-", dir="/tmp"))
    delays: dict[int, float] = {}
    config = SupernodeConfig(home_dir=home, max_bandwidth=0, system_reserved_bandwidth=0)
    cdn = DiskCdn(
        config,
        SupernodeMetrics(),
        on_piece_timing=lambda t, n, last, ready: delays.__setitem__(n, (ready - last) * 1000),
    )
    runner = web.AppRunner(create_download_app(cdn))
    await runner.setup()
    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        probe = await cdn.probe(OriginRequest(url))
        assert probe.length == size, probe
        piece_size = piece_size_for(size)
        tid = make_task_id(url)
        PATH = f"/download/{tid[:3]}/{tid}"
        fetcher = subprocess.Popen(
            [sys.executable, __file__, "--fetcher", str(port), PATH, "1" if verify else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        listener = BenchListener(fetcher, piece_size, size)
        spec = FillSpec(tid, url, OriginRequest(url), size, piece_size)
        peak = baseline = rss_bytes()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.02):
                peak = max(peak, rss_bytes())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu0 = os.times()
        t0 = time.monotonic()
        cdn.start_fill(spec, listener)
        await listener.done.wait()
        t_fill = time.monotonic()
        if listener.outcome is None:
            raise SystemExit(f"fill failed: {listener.reason}")
        assert fetcher.stdin is not None and fetcher.stdout is not None
        fetcher.stdin.close()
        count = piece_count(size, piece_size)
        lines = await asyncio.get_running_loop().run_in_executor(None, fetcher.stdout.readlines)
        fetcher.wait()
        t_done = max(float(line.split()[1]) for line in lines)
        fetched = sum(int(line.split()[2]) for line in lines)
        all_ok = len(lines) == count and all(line.split()[3] == "1" for line in lines)
        cpu1 = os.times()
        await cdn.wait_fill(tid)
        stop.set()
        sampler.join()
        ordered = sorted(delays.values())
        return {
            "pieces": count,
            "piece_size": piece_size,
            "pieces_fetched_ok": all_ok,
            "bytes_fetched": fetched,
            "fill_seconds": round(t_fill - t0, 3),
            "fill_and_fetch_seconds": round(t_done - t0, 3),
            "first_piece_ready_ms_after_start": round((listener.ready_at[0] - t0) * 1000, 1),
            "piece_ready_delay_ms": {
                "first_piece": round(delays[0], 2),
                "p50": round(ordered[len(ordered) // 2], 2),
                "max": round(ordered[-1], 2),
            },
            "supernode_cpu_seconds": {
                "user": round(cpu1.user - cpu0.user, 2),
                "system": round(cpu1.system - cpu0.system, 2),
            },
            "rss_baseline_mb": round(baseline / 2**20, 1),
            "rss_growth_mb": round((peak - baseline) / 2**20, 1),
        }
    finally:
        await runner.cleanup()
        await cdn.close()
        shutil.rmtree(home, ignore_errors=True)


def ensure_file(size: int) -> str:
    path = f"/tmp/bench-cdn-origin-{size}.bin"
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path + ".tmp", "wb") as handle:
            left = size
            while left:
                block = os.urandom(min(left, 16 << 20))
                handle.write(block)
                left -= len(block)
        os.replace(path + ".tmp", path)
    return path


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--origin":
        run_origin(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--fetcher":
        global PATH
        PATH = sys.argv[3]
        run_fetcher(int(sys.argv[2]), sys.argv[4] == "1")
        return
    size = parse_size(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_SIZE", "1G"))
    rate = parse_size(os.environ.get("ORIGIN_RATE", "0"))
    verify = os.environ.get("BENCH_VERIFY", "0") == "1"
    path = ensure_file(size)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    port_file = tempfile.mktemp(prefix="bench-origin-port-")
    origin = subprocess.Popen([sys.executable, __file__, "--origin", path, port_file, str(rate)])
    try:
        while not os.path.exists(port_file):
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        url = f"http://127.0.0.1:{port}/file"
        curl = min(curl_seconds(url) for _ in range(2))
        # What a user compares a download with: curl writing the file to the same disk.
        to_disk = os.path.join(tempfile.gettempdir(), f"bench-curl-{os.getpid()}.bin")
        curl_file = min(curl_seconds(url, to_disk) for _ in range(2))
        result = asyncio.run(bench(size, port, verify))
        ours = float(result["fill_and_fetch_seconds"])  # type: ignore[arg-type]
        report = {
            "size_bytes": size,
            "origin_rate_limit": rate or "unlimited",
            "curl_devnull_seconds": round(curl, 3),
            "curl_devnull_mb_per_s": round(size / curl / 2**20, 1),
            "curl_to_file_seconds": round(curl_file, 3),
            "curl_to_file_mb_per_s": round(size / curl_file / 2**20, 1),
            "cdn_mb_per_s": round(size / ours / 2**20, 1),
            "throughput_ratio_vs_curl_devnull": round(curl / ours, 3),
            "throughput_ratio_vs_curl_to_file": round(curl_file / ours, 3),
            **result,
        }
        print(json.dumps(report, indent=2))
    finally:
        origin.terminate()
        origin.wait()
        os.unlink(port_file)


if __name__ == "__main__":
    main()
