"""Real processes for tests: the `supernode` on 127.0.0.1, a counting origin, and a client that
talks exactly like a Go dfget in cdn pattern (register, pull, fetch framed pieces from the
download port, strip the framing, report)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


async def wait_until_answers(
    proc: subprocess.Popen[bytes], url: str, body: bytes | None = None, attempts: int = 150
) -> None:
    """Poll `url` every 0.1 s until it answers 200 (with `body`, when given); fail at once with
    the process's stderr if it exits meanwhile."""
    async with aiohttp.ClientSession() as session:
        for _ in range(attempts):
            try:
                async with session.get(url) as resp:
                    if resp.status == 200 and (body is None or await resp.read() == body):
                        return
            except aiohttp.ClientError:
                pass
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"process exited ({proc.returncode}): {stderr}")
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer in time")


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
        await wait_until_answers(self.proc, f"http://127.0.0.1:{self.port}/_ping", b"OK")

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
