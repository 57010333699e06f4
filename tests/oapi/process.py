"""A real `supernode` process on 127.0.0.1 for the Open API tests, and the `supernode token` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ports import free_port
from tests.processes import wait_until_answers

ROOT = Path(__file__).resolve().parents[2]


class SupernodeProcess:
    """`python -m supernode.cli` on a home dir; `cluster` goes into a YAML config file."""

    def __init__(self, home: Path, cluster: dict | None = None) -> None:
        self.home = home
        self.port, self.download_port = free_port(), free_port()
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        command = [
            sys.executable, "-m", "supernode.cli",
            "--listen-ip", "127.0.0.1", "--port", str(self.port),
            "--download-port", str(self.download_port),
            "--home-dir", str(self.home), "--advertise-ip", "127.0.0.1",
        ]  # fmt: skip
        if self.cluster is not None:
            self.home.mkdir(parents=True, exist_ok=True)
            config = self.home.parent / f"{self.home.name}-supernode.yml"
            config.write_text(json.dumps({"cluster": self.cluster}))  # JSON is YAML
            command += ["--config", str(config)]
        self.proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
        try:
            await wait_until_answers(self.proc, f"{self.base}/healthy")
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        path = self.home / "logs" / "app.log"
        return path.read_text(errors="replace") if path.exists() else ""


def token_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "supernode.cli", "token", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def create_token(home: Path, name: str, scopes: str = "job,cluster", expires: str = "30d") -> str:
    """`supernode token create …`; the token is alone on the last line of stdout."""
    done = token_cli("create", "--home-dir", str(home), "--name", name, "--scopes", scopes,
                     "--expires", expires)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.rstrip("\n").splitlines()[-1]
