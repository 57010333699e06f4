"""A real Prometheus (Debian's `prometheus` package) on 127.0.0.1 for scrape tests."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import in_ci
from tests.processes import free_port, wait_until_answers


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if in_ci():
            pytest.fail("prometheus is not installed (apt-get install prometheus); CI needs it")
        pytest.skip("prometheus is not installed")
    return binary


class Prometheus:
    def __init__(self, workdir: Path, jobs: dict[str, list[str]], interval: str = "1s") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.jobs = jobs
        self.interval = interval
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in self.jobs.items()
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            await wait_until_answers(self.proc, f"http://127.0.0.1:{self.port}/-/ready")
        except AssertionError as exc:
            log_text = (self.workdir / "prometheus.log").read_text()[-2000:]
            raise AssertionError(f"{exc}\n{log_text}") from exc

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{self.port}/api/v1/query"
            async with session.get(url, params={"query": expr}) as resp:
                body = await resp.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def wait_for(self, expr: str, check: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll `expr` until `check(result)` holds (scrapes are periodic)."""
        result: list[dict[str, Any]] = []
        for _ in range(int(timeout / 0.25)):
            result = await self.query(expr)
            if result and check(result):
                return result
            await asyncio.sleep(0.25)
        raise AssertionError(f"{expr} never satisfied the check; last result {result}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
