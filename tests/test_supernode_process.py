"""The real `supernode` process on 127.0.0.1 with its disk CDN and download port, a real
origin, and a client that talks exactly like a Go dfget (register, pull, fetch framed pieces
from :8001, strip the framing, report) — then a restart that reuses the cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Supernode:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port, self.download_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supernode.cli",
                "--listen-ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--download-port",
                str(self.download_port),
                "--home-dir",
                str(self.home),
                "--advertise-ip",
                "127.0.0.1",
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/_ping") as resp:
                        if resp.status == 200 and await resp.read() == b"OK":
                            return
                except aiohttp.ClientError:
                    pass
                if self.proc.poll() is not None:
                    raise AssertionError(self.proc.stderr.read().decode())
                await asyncio.sleep(0.1)
        raise AssertionError("supernode did not answer /_ping")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Origin:
    """Serves one body with Range, Last-Modified and ETag; counts GETs and 304s."""

    def __init__(self, body: bytes) -> None:
        self.body, self.gets, self.not_modified = body, 0, 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        etag = '"v1-' + hashlib.md5(self.body).hexdigest()[:8] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304)
        self.gets += 1
        headers = {
            "ETag": etag,
            "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT",
            "Accept-Ranges": "bytes",
        }
        rng = request.headers.get("Range")
        if rng:
            start, _, end = rng.removeprefix("bytes=").partition("-")
            first, last = (
                int(start),
                min(int(end) if end else len(self.body) - 1, len(self.body) - 1),
            )
            headers["Content-Range"] = f"bytes {first}-{last}/{len(self.body)}"
            return web.Response(status=206, body=self.body[first : last + 1], headers=headers)
        return web.Response(body=self.body, headers=headers)


async def go_dfget(sn: Supernode, url: str, cid: str) -> tuple[bytes, dict]:
    """What a Go dfget does on the wire, in cdn pattern (no uploader)."""
    base = f"http://127.0.0.1:{sn.port}"
    body = {
        "superNodeIp": "127.0.0.1",
        "rawUrl": url,
        "taskUrl": url,
        "cid": cid,
        "ip": "127.0.0.1",
        "hostName": "h",
        "port": 0,
        "path": f"/peer/file/x-{cid}",
        "version": "1.0.6",
        "pattern": "cdn",
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{base}/peer/registry",
            data=json.dumps(body),
            headers={"Content-Type": "application/json;charset=utf-8"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            reg = (await resp.json())["data"]
        task_id, length = reg["taskId"], reg["fileLength"]
        out = bytearray(length)
        query = f"srcCid={cid}&dstCid=&range=&result=502&status=700&taskId={task_id}"
        for _ in range(2000):
            async with s.get(f"{base}/peer/task?{query}") as resp:
                reply = await resp.json()
            if reply["code"] == 600:
                return bytes(out), reply
            if reply["code"] == 602:
                await asyncio.sleep(0.02)
                continue
            assert reply["code"] == 601, reply
            for piece in reply["data"]:
                url_ = f"http://{piece['peerIp']}:{piece['peerPort']}{piece['path']}"
                headers = {
                    "Range": f"bytes={piece['range']}",
                    "pieceNum": str(piece["pieceNum"]),
                    "pieceSize": str(piece["pieceSize"]),
                    "User-Agent": "dfget/1.0.6",
                }
                async with s.get(url_, headers=headers) as resp:
                    assert resp.status == 206, resp.status
                    wrapped = await resp.read()
                assert hashlib.md5(wrapped).hexdigest() == piece["pieceMd5"].split(":")[0]
                content = wrapped[4:-1]
                offset = piece["pieceNum"] * (piece["pieceSize"] - 5)
                out[offset : offset + len(content)] = content
                async with s.get(
                    f"{base}/peer/piece/suc?taskId={task_id}&cid={cid}&dstCid={piece['cid']}"
                    f"&pieceRange={piece['range']}"
                ) as resp:
                    assert await resp.json() == {"code": 611}
                query = (
                    f"srcCid={cid}&dstCid={piece['cid']}&range={piece['range']}&result=503"
                    f"&status=701&taskId={task_id}"
                )
        raise AssertionError("no 600")


@pytest.fixture
async def origin(aiohttp_server):
    body = os.urandom(9 * MIB + 12345)
    origin = Origin(body)
    app = web.Application()
    app.router.add_get("/file.bin", origin.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    origin.url = f"http://127.0.0.1:{server.port}/file.bin"
    return origin


async def test_download_through_the_real_process_and_reuse_after_restart(tmp_path, origin):
    sn = Supernode(tmp_path / "home")
    await sn.start()
    try:
        data, done = await go_dfget(sn, origin.url, "127.0.0.1-1-1.000")
        assert hashlib.md5(data).hexdigest() == hashlib.md5(origin.body).hexdigest()
        assert done["data"]["md5"] == hashlib.md5(origin.body).hexdigest()
        assert origin.gets == 2  # the probe and the fill
        data2, _ = await go_dfget(sn, origin.url, "127.0.0.1-2-2.000")
        assert data2 == origin.body and origin.gets == 2, (
            "the second download is served by the cache"
        )
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
