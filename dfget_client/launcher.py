"""Finds or starts this host's uploader (`dfget server`) for a p2p download (§6.5).

The port in `<home>/meta/host.meta` is tried first with `/check/<TaskFileName>` (which also
registers the task file); otherwise, under an exclusive lock on the meta directory so that
concurrent dfgets start only one, a detached `python3 -m dfget_client.cli server …` is
spawned, its `dfget uploader server port is <port>` line read, and the port checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from dfget_client.config import DfgetConfig
from dfget_client.errors import UploaderError
from supernode.protocol.units import format_duration

if TYPE_CHECKING:  # the uploader imports this module for its meta file: keep it light
    from dfget_client.peer_api import PeerApi

log = logging.getLogger("dfget")
SPAWN_TIMEOUT = 15.0


@contextlib.asynccontextmanager
async def locked_dir(path: Path) -> AsyncIterator[None]:
    """flock on the directory itself, as the original's `fileutils.NewFileLock`."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        await asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def server_command(cfg: DfgetConfig, ip: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "dfget_client.cli", "server",
        "--ip", ip,
        "--port", str(cfg.port),
        "--meta", str(cfg.meta_path),
        "--data", str(cfg.data_dir),
        "--home", str(cfg.home),
        "--expiretime", format_duration(cfg.expire_time),
        "--alivetime", format_duration(cfg.alive_time),
    ]  # fmt: skip
    if cfg.total_limit:
        cmd += ["--totallimit", str(cfg.total_limit)]
    if cfg.verbose:
        cmd.append("--verbose")
    return cmd


def read_meta_port(meta_path: Path) -> int:
    try:
        value = json.loads(meta_path.read_text(encoding="utf-8")).get("servicePort", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value > 0 else 0


def write_meta_port(meta_path: Path, port: int) -> None:
    """`{"servicePort":N}`, written atomically."""
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"servicePort": port}, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, meta_path)


def child_env() -> dict[str, str]:
    """The uploader must import this very code, whatever the cwd or the installed copy."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


async def spawn_server(cmd: list[str], cwd: Path) -> int:
    """Start the uploader detached (own session, outlives us) and read its port line."""
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd=cwd,
            env=child_env(),
        )
    except OSError as exc:
        raise UploaderError(f"cannot start the uploader: {exc.strerror}") from exc
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(
            loop.run_in_executor(None, proc.stdout.readline), SPAWN_TIMEOUT
        )
    except TimeoutError as exc:
        raise UploaderError("the uploader did not report its port in time") from exc
    finally:
        proc.stdout.close()
    text = line.decode("utf-8", "replace").strip()
    try:
        return int(text.split()[-1])
    except (IndexError, ValueError) as exc:
        code = proc.poll()
        raise UploaderError(f"the uploader did not start (exit {code}): {text!r}") from exc


async def ensure_uploader(
    cfg: DfgetConfig, *, ip: str, task_file_name: str, peer_api: PeerApi
) -> int:
    """→ the port of a live uploader that now knows `task_file_name`."""
    data_dir = str(cfg.data_dir)

    async def usable(port: int) -> bool:
        echoed = await peer_api.uploader_check(ip, port, task_file_name, data_dir, cfg.total_limit)
        return echoed == task_file_name

    port = read_meta_port(cfg.meta_path)
    if port and await usable(port):
        return port
    async with locked_dir(cfg.meta_path.parent):
        port = read_meta_port(cfg.meta_path)
        if port and await usable(port):
            return port
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        port = await spawn_server(server_command(cfg, ip), cfg.home)
        log.info("started the uploader on port %d", port)
        if not await usable(port):
            raise UploaderError(f"the uploader on port {port} does not answer /check")
        return port
