"""Real processes on 127.0.0.1 for end-to-end tests and benchmarks: an origin, supernodes,
dfgets and their uploaders. Every process is started here and stopped by its pid."""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SUMMARY_RE = re.compile(
    r"summary pieces supernode=(\d+) peer=(\d+) origin=(\d+) "
    r"bytes supernode=(\d+) peer=(\d+) origin=(\d+) failed=(\d+)"
)
RESULT_RE = re.compile(
    r"download (SUCCESS|FAIL\((\d+)\)) cost:([\d.]+)s length:(-?\d+) reason:(\d+)"
)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), out.get("PYTHONPATH", "")) if p)
    return out


def wait_http(url: str, timeout: float, expect: bytes | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read()
                if resp.status == 200 and (expect is None or body == expect):
                    return
                last = (resp.status, body[:80])
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fobj:
        while chunk := fobj.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_file(path: Path, size: int, seed: int = 1) -> str:
    """A reproducible random file; → its md5."""
    rng = random.Random(seed)
    digest = hashlib.md5()
    with open(path, "wb") as fobj:
        left = size
        while left:
            chunk = rng.randbytes(min(left, 1 << 20))
            fobj.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def line(self) -> str:
        lines = [ln for ln in self.stdout.splitlines() if ln.startswith("download ")]
        return lines[-1] if lines else ""

    @property
    def reason(self) -> int:
        match = RESULT_RE.search(self.line)
        return int(match.group(5)) if match else -1

    def split(self) -> dict[str, int]:
        """Pieces and bytes per source from the `--verbose` summary line."""
        match = SUMMARY_RE.search(self.stdout)
        if not match:
            return {}
        keys = ("supernode", "peer", "origin", "supernode_bytes", "peer_bytes", "origin_bytes",
                "failed")  # fmt: skip
        return dict(zip(keys, map(int, match.groups()), strict=True))


@dataclass
class Cluster:
    """Owns every process it starts; `close()` stops them all by pid."""

    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    homes: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Processes start from cached bytecode, as from a pip install: with
        # PYTHONDONTWRITEBYTECODE set, nothing else writes it for a source tree.
        for package in ("supernode", "dfget_client"):
            compileall.compile_dir(REPO / package, quiet=1)

    def _spawn(self, cmd: list[str], log: Path, **kw: object) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env(), cwd=REPO, **kw
        )  # type: ignore[call-overload]
        out.close()
        self.procs.append(proc)
        return proc

    def origin(self, directory: Path) -> Origin:
        port = free_port()
        cmd = [sys.executable, str(HERE / "origin_server.py"), "--dir", str(directory),
               "--port", str(port)]  # fmt: skip
        proc = self._spawn(cmd, self.root / f"origin-{port}.log")
        wait_http(f"http://127.0.0.1:{port}/_stats", 20)
        return Origin(port, proc)

    def supernode(self, name: str = "sn", *extra: str) -> Supernode:
        port, download = free_port(), free_port()
        home = self.root / name
        cmd = [sys.executable, "-m", "supernode.cli", "--listen-ip", "127.0.0.1",
               "--port", str(port), "--download-port", str(download), "--home-dir", str(home),
               "--advertise-ip", "127.0.0.1", *extra]  # fmt: skip
        proc = self._spawn(cmd, self.root / f"{name}.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/_ping", 30, expect=b"OK")
        except TimeoutError:
            proc.kill()
            log = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the supernode did not start:\n{log}") from None
        return Supernode(port, download, home, proc)

    def dfget_cmd(self, url: str, out: Path, home: Path, *args: str) -> list[str]:
        if home not in self.homes:
            self.homes.append(home)
        return [sys.executable, "-m", "dfget_client.cli", "-u", url, "-o", str(out),
                "--home", str(home), "--alivetime", "60s", *args]  # fmt: skip

    def dfget(self, url: str, out: Path, home: Path, *args: str, timeout: float = 120) -> Result:
        proc = subprocess.run(
            self.dfget_cmd(url, out, home, *args), capture_output=True, env=env(), cwd=REPO,
            timeout=timeout, check=False,
        )  # fmt: skip
        return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def start_dfget(self, url: str, out: Path, home: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.dfget_cmd(url, out, home, *args), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env(), cwd=REPO, text=True,
        )  # fmt: skip
        self.procs.append(proc)  # type: ignore[arg-type]
        return proc

    def dfgets_together(
        self, url: str, jobs: list[tuple[Path, Path, list[str]]], timeout: float = 120
    ) -> list[Result]:
        """Start a dfget per (output, home, flags) at once; their results in that order."""
        procs = [self.start_dfget(url, out, home, *flags) for out, home, flags in jobs]
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=timeout)
            results.append(Result(proc.returncode, stdout, stderr))
        return results

    def start_uploader(
        self, home: Path, port: int, script: Path | None = None, alive: str = "60s"
    ) -> subprocess.Popen[bytes]:
        """A `dfget server` the test owns (a dfget with the same home will share it)."""
        if home not in self.homes:
            self.homes.append(home)
        entry = [str(script)] if script else ["-m", "dfget_client.cli", "server"]
        cmd = [sys.executable, *entry, "--home", str(home), "--ip", "127.0.0.1",
               "--port", str(port), "--alivetime", alive]  # fmt: skip
        proc = self._spawn(cmd, self.root / f"uploader-{port}.log")
        wait_http(f"http://127.0.0.1:{port}/server/ping", 20)
        return proc

    @staticmethod
    def uploader_pid(home: Path) -> int | None:
        try:
            return int((home / "meta" / "uploader.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill_uploader(self, home: Path, sig: int = signal.SIGKILL) -> bool:
        pid = self.uploader_pid(home)
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        for home in self.homes:
            self.kill_uploader(home, signal.SIGTERM)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for home in self.homes:
            self.kill_uploader(home, signal.SIGKILL)


@dataclass
class Origin:
    port: int
    proc: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stats(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class Supernode:
    port: int
    download_port: int
    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def node(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
