"""The real `supernode` process with its disk CDN and download port, a real origin, and a
client that talks exactly like a Go dfget; then a restart that reuses the cache."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from supernode.protocol.ids import task_id
from tests.processes import ROOT, Origin, Supernode, go_dfget

MIB = 1024 * 1024


@pytest.fixture
async def origin(aiohttp_server):
    body = os.urandom(9 * MIB + 12345)
    origin = Origin(body)
    app = web.Application()
    app.router.add_get("/file.bin", origin.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    origin.url = f"http://127.0.0.1:{server.port}/file.bin"
    return origin


async def wait_for_real_md5(sn: Supernode, url: str, expected: str) -> None:
    """Poll the task info (bounded) until the CDN has recorded the file md5."""
    info_url = f"http://127.0.0.1:{sn.port}/api/v1/tasks/{task_id(url)}"
    seen = ""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(info_url) as resp:
                seen = (await resp.json()).get("realMd5", "")
            if seen:
                break
            await asyncio.sleep(0.05)
    assert seen == expected


async def test_download_through_the_real_process_and_reuse_after_restart(tmp_path, origin):
    sn = Supernode(tmp_path / "home")
    await sn.start()
    try:
        real_md5 = hashlib.md5(origin.body).hexdigest()
        data, done = await go_dfget(sn, origin.url, "127.0.0.1-1-1.000")
        assert hashlib.md5(data).hexdigest() == real_md5
        # The file md5 is read back after the fill: until then a 600 carries "" (the original's
        # quick path does the same; dfget then relies on its per-piece checks).
        assert done["data"]["md5"] in ("", real_md5)
        assert origin.gets == 2  # the probe and the fill
        await wait_for_real_md5(sn, origin.url, real_md5)
        data2, done2 = await go_dfget(sn, origin.url, "127.0.0.1-2-2.000")
        assert data2 == origin.body and origin.gets == 2, (
            "the second download is served by the cache"
        )
        assert done2["data"]["md5"] == real_md5
    finally:
        sn.stop()
    task_dir = next((tmp_path / "home" / "repo" / "download").iterdir())
    assert {p.suffix for p in task_dir.iterdir()} >= {"", ".meta", ".md5"}
    assert (tmp_path / "home" / "logs" / "app.log").read_text().count("peer task done") == 2
    sn2 = Supernode(tmp_path / "home")
    await sn2.start()
    try:
        data3, _ = await go_dfget(sn2, origin.url, "127.0.0.1-3-3.000")
        assert data3 == origin.body
        assert origin.not_modified == 1 and origin.gets == 3, "revalidated with 304, not refetched"
    finally:
        sn2.stop()


def test_cli_version_config_and_bad_flags(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "supernode.cli", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)

    assert run("version").stdout.startswith("supernode version ")
    config = run(
        "config", "--port", "9000", "--home-dir", str(tmp_path), "--task-expire-time", "5m"
    )
    assert "listenPort: 9000" in config.stdout and "taskExpireTime: 5m0s" in config.stdout
    bad = run("--port", "abc")
    assert bad.returncode == 2 and "listenPort" in bad.stderr
    yml = tmp_path / "sn.yml"
    yml.write_text("base:\n  listenPort: 9100\n  peerUpLimit: 7\n")
    assert "peerUpLimit: 7" in run("config", "--config", str(yml)).stdout
    yml.write_text("base: [1, 2]\n")
    assert run("config", "--config", str(yml)).returncode == 2


async def test_a_second_supernode_on_the_same_home_refuses_to_start(tmp_path):
    """It would sweep the first one's cache files as orphans: it exits with a clear error."""
    first = Supernode(tmp_path / "home")
    await first.start()
    try:
        second = Supernode(tmp_path / "home")
        proc = subprocess.run(
            [sys.executable, "-m", "supernode.cli", "--listen-ip", "127.0.0.1",
             "--port", str(second.port), "--download-port", str(second.download_port),
             "--home-dir", str(tmp_path / "home")],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 1
        pid = first.proc.pid if first.proc else 0
        assert f"is in use by another supernode (pid {pid})" in proc.stderr
        ping = f"http://127.0.0.1:{first.port}/_ping"
        async with aiohttp.ClientSession() as session, session.get(ping) as resp:
            assert resp.status == 200, "the first one keeps serving"
    finally:
        first.stop()
    restarted = Supernode(tmp_path / "home")
    await restarted.start()  # the lock goes with its process
    restarted.stop()
