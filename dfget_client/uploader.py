"""The peer server `dfget server`: serves `.service` files piece by piece to other dfgets
(§6.5), answers the local dfgets' control routes, expires served files with
`/peer/service/down`, and exits after `alivetime` without requests. HTTP is served by
`http_server` (h11), which starts far faster than aiohttp.web: dfgets wait for it.

How it works: a local dfget registers its task file with `/check/<name>` before downloading
and marks it finished with `/client/finish`; only registered names are served, and a name is
one path component whose file is `<data>/<name>.service`, so nothing else on disk can be
reached. Piece bytes go out with `loop.sendfile` between the 4-byte header and the trailer,
through the host-wide token bucket when `totalLimit` is set. Ours, additive: `GET /metrics`
(Prometheus) and `POST /client/stats`, where each local dfget reports its download.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dfget_client.config import ServerConfig
from dfget_client.http_server import Body, Handler, HttpServer, Request, Response, text
from dfget_client.launcher import read_meta_port, write_meta_port
from dfget_client.ratelimit import TokenBucket
from dfget_client.stats import MAX_BODY as MAX_STATS_BODY
from dfget_client.stats import parse_client_stats
from dfget_client.uploader_metrics import UploaderMetrics
from dfget_client.uploader_ranges import (
    RangeNotSatisfiable,
    UploadPlan,
    amend_range,
    parse_upload_params,
)
from supernode.version import COMPAT_VERSION

if TYPE_CHECKING:  # imported when first needed: most uploaders never call their supernode
    from dfget_client.supernode_api import SupernodeApi

log = logging.getLogger("dfget.server")
SERVICE_SUFFIX = ".service"
PORT_LINE = "dfget uploader server port is {port}"
_OCTET = "application/octet-stream"
# A rate-limited piece goes out in sendfile calls of ~1/16 s of the rate (at least 256 KiB):
# each `loop.sendfile` costs ~0.5 ms of CPU, and at 32 MiB/s 256 KiB calls cost 4x as much
# CPU as the 2 MiB ones (bench: 0.25 vs 0.06 CPU-s per 96 MiB served).
_SEND_CHUNK = 256 * 1024
_SENDS_PER_SECOND = 16


@dataclass(slots=True)
class TaskEntry:
    """One task file this uploader serves (`taskConfig` of the original)."""

    data_dir: Path
    task_id: str = ""
    cid: str = ""
    super_node: str = ""
    finished: bool = False
    access_time: float = 0.0
    rate_limit: int = 0


def valid_task_file_name(name: str) -> bool:
    """One path component, no NUL: `/peer/file/../x` or `a/b` can never name a file."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


def generate_port(attempt: int, now: float) -> int:
    """`(unix_time/300) % 50000 + 15000 + attempt`, as the original picks its port."""
    return int(now // 300) % 50000 + 15000 + attempt


def _text(status: int, message: str) -> Response:
    return text(status, message + ("\n" if status >= 400 else ""))


def _octets(message: str) -> Response:
    return text(200, message, _OCTET)


class Uploader:
    """The routes and the lifecycle of one `dfget server` process."""

    def __init__(self, cfg: ServerConfig, *, sn_api: SupernodeApi | None = None) -> None:
        self.cfg = cfg
        self.tasks: dict[str, TaskEntry] = {}
        self.limiter = TokenBucket(cfg.total_limit)
        self.total_limit = cfg.total_limit
        self._sn_api = sn_api
        self.port = 0
        self.bytes_uploaded = 0
        self.metrics = UploaderMetrics()
        self._last_alive = time.monotonic()
        self._stop = asyncio.Event()
        self._data_dir = cfg.data_dir.resolve()

    # ---- application ---------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/peer/file/", self.upload),
            ("GET", "/check/", self.check),
            ("GET", "/rate/", self.rate),
            ("GET", "/client/finish", self.finish),
            ("GET", "/server/ping", self.ping),
            # ours, additive: Prometheus, and the figures each local dfget reports when it ends
            ("GET", "/metrics", self.metrics_handler),
            ("POST", "/client/stats", self.stats),
        ]

    @property
    def sn_api(self) -> SupernodeApi:
        if self._sn_api is None:
            from dfget_client.supernode_api import SupernodeApi

            self._sn_api = SupernodeApi()
        return self._sn_api

    def _alive(self) -> None:
        self._last_alive = time.monotonic()

    def _local(self, request: Request) -> bool:
        """Control routes answer only the local host."""
        remote = request.remote
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(remote).is_loopback:
                return True
        return request.sockname is not None and remote == request.sockname[0]

    async def upload(self, request: Request) -> Response | Body:
        self._alive()
        name = request.tail
        headers = request.headers
        try:
            params = parse_upload_params(
                headers.get("Range", ""), headers.get("pieceNum", ""), headers.get("pieceSize", "")
            )
        except ValueError as exc:
            return _text(400, str(exc))
        entry = self.tasks.get(name) if valid_task_file_name(name) else None
        if entry is None:
            return _text(500, f"failed to get taskPath: {name}")
        entry.access_time = time.time()
        path = entry.data_dir / (name + SERVICE_SUFFIX)
        loop = asyncio.get_running_loop()
        try:
            fobj = await loop.run_in_executor(None, open, path, "rb")
        except FileNotFoundError as exc:
            return _text(404, f"open {path}: {exc.strerror}")
        except PermissionError as exc:
            return _text(403, f"open {path}: {exc.strerror}")
        except OSError as exc:
            return _text(500, f"open {path}: {exc.strerror}")
        try:
            size = os.fstat(fobj.fileno()).st_size
            wrapped = headers.get("cdnSource", "") != "source"
            try:
                plan = amend_range(size, params, wrapped=wrapped)
            except RangeNotSatisfiable as exc:
                return _text(416, str(exc))
            return await self._send_piece(request, fobj, plan)
        finally:
            fobj.close()

    async def _send_piece(self, request: Request, fobj: IO[bytes], plan: UploadPlan) -> Body:
        body = await request.start(206, plan.length, _OCTET)
        self.bytes_uploaded += plan.length
        if plan.pad:
            await body.write(plan.header())
        await self.send_content(body, fobj, plan.raw_start, plan.content_length)
        if plan.pad:
            await body.write(plan.trailer())
        # content bytes, counted once sent: they match what the peer counts as downloaded
        self.metrics.uploaded(plan.content_length)
        return body

    async def send_content(self, body: Body, fobj: IO[bytes], offset: int, count: int) -> None:
        """Raw bytes [offset, offset+count) of the file, by sendfile, through the rate limit."""
        if count <= 0:
            return
        rate = self.limiter.rate
        step = max(_SEND_CHUNK, rate // _SENDS_PER_SECOND) if rate else count
        end = offset + count
        while offset < end:
            size = min(step, end - offset)
            await self.limiter.acquire(size)
            sent = await body.sendfile(fobj, offset, size)
            if sent <= 0:
                raise ConnectionResetError("peer closed the connection")
            offset += sent

    async def check(self, request: Request) -> Response:
        self._alive()
        if not self._local(request):
            return _text(403, "local requests only")
        name = request.tail
        data_dir = request.headers.get("dataDir", "")
        if not valid_task_file_name(name):
            return _text(400, f"invalid task file name {name!r}")
        if data_dir and Path(data_dir).resolve() != self._data_dir:
            return _text(400, f"dataDir {data_dir} is not served by this uploader")
        with contextlib.suppress(ValueError):
            total = int(request.headers.get("totalLimit", "0"))
            if total > 0:
                self.total_limit = total
                self.limiter.set_rate(total)
        self.tasks[name] = TaskEntry(data_dir=self._data_dir, access_time=time.time())
        return _octets(f"{name}@{COMPAT_VERSION}")

    async def rate(self, request: Request) -> Response:
        self._alive()
        if not self._local(request):
            return _text(403, "local requests only")
        text = request.headers.get("rateLimit", "")
        try:
            client_rate = int(text)
        except ValueError:
            return _text(400, f'strconv.Atoi: parsing "{text}": invalid syntax')
        entry = self.tasks.get(request.tail)
        if entry is not None:
            entry.rate_limit = client_rate
        if self.total_limit <= 0:
            return _octets(text)
        total = sum(t.rate_limit for t in self.tasks.values() if not t.finished)
        if total > self.total_limit:
            client_rate = (client_rate * self.total_limit + total - 1) // total
        return _octets(str(client_rate))

    async def finish(self, request: Request) -> Response:
        if not self._local(request):
            return _text(403, "local requests only")
        query = request.query
        name = query.get("taskFileName", "")
        task_id = query.get("taskID", "") or query.get("taskId", "")
        cid = query.get("cid", "")
        if not name or not task_id or not cid or not valid_task_file_name(name):
            return _text(400, "invalid params")
        entry = self.tasks.setdefault(name, TaskEntry(data_dir=self._data_dir))
        entry.task_id, entry.cid = task_id, cid
        entry.super_node = query.get("superNode", "")
        entry.finished, entry.rate_limit, entry.access_time = True, 0, time.time()
        return _octets("success")

    async def ping(self, request: Request) -> Response:
        return _octets("success")

    async def metrics_handler(self, request: Request) -> Response:
        """Not a sign of life: a scraping Prometheus must not keep an idle uploader running."""
        body, content_type = self.metrics.render()
        return Response(200, body, content_type)

    async def stats(self, request: Request) -> Response:
        if not self._local(request):
            return _text(403, "local requests only")
        if len(request.body) > MAX_STATS_BODY:
            return _text(400, f"body larger than {MAX_STATS_BODY} bytes")
        try:
            stats = parse_client_stats(request.body)
        except ValueError as exc:
            return _text(400, f"invalid stats: {exc}")
        self.metrics.record(stats)
        log.debug("download stats from a local dfget: %s", stats)
        return _octets("success")

    # ---- expiry and shutdown -------------------------------------------------------------

    async def collect_garbage(self, now: float | None = None) -> list[str]:
        """Delete expired `.service` files of finished tasks (telling their supernode)."""
        now = time.time() if now is None else now
        removed: list[str] = []
        try:
            files = [p for p in self._data_dir.iterdir() if p.name.endswith(SERVICE_SUFFIX)]
        except OSError:
            return removed
        for path in files:
            name = path.name[: -len(SERVICE_SUFFIX)]
            entry = self.tasks.get(name)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if entry is not None and not entry.finished:
                continue
            last = max(mtime, entry.access_time) if entry is not None else mtime
            if now - last <= self.cfg.expire_time:
                continue
            if entry is not None:
                await self._service_down(entry)
                self.tasks.pop(name, None)
            with contextlib.suppress(OSError):
                path.unlink()
            removed.append(name)
            context = {"peer": entry.cid, "task": entry.task_id} if entry is not None else {}
            log.info("expired %s", path, extra=context)
        return removed

    async def _service_down(self, entry: TaskEntry) -> None:
        if entry.super_node and entry.task_id and entry.cid:
            await self.sn_api.service_down(entry.super_node, entry.task_id, entry.cid)

    async def shutdown_tasks(self) -> None:
        """Tell every supernode we are gone and delete what we served."""
        for name, entry in list(self.tasks.items()):
            await self._service_down(entry)
            with contextlib.suppress(OSError):
                (entry.data_dir / (name + SERVICE_SUFFIX)).unlink()
        self.tasks.clear()

    async def _housekeeping(self) -> None:
        next_gc = time.monotonic() + self.cfg.gc_interval
        while not self._stop.is_set():
            await asyncio.sleep(min(1.0, self.cfg.alive_time / 4, self.cfg.gc_interval))
            if time.monotonic() - self._last_alive > self.cfg.alive_time:
                log.info("no request for %.0fs, stopping", self.cfg.alive_time)
                self._stop.set()
            elif time.monotonic() >= next_gc:
                next_gc = time.monotonic() + self.cfg.gc_interval
                await self.collect_garbage()

    # ---- process -------------------------------------------------------------------------

    async def _bind(self, server: HttpServer) -> bool:
        attempts = (
            [self.cfg.port]
            if self.cfg.port > 0
            else [generate_port(i, time.time()) for i in range(10)]
        )
        for port in attempts:
            try:
                self.port = await server.start(self.cfg.ip, port)
            except OSError as exc:
                log.warning("cannot listen on %s:%d: %s", self.cfg.ip, port, exc.strerror)
                continue
            return True
        return False

    async def serve(self) -> int:
        """Bind, announce the port, serve until idle or signalled; → exit status."""
        self.cfg.data_dir.mkdir(parents=True, exist_ok=True)
        server = HttpServer(self.routes())
        if not await self._bind(server):
            print("dfget server: no port to listen on", file=sys.stderr)
            return 1
        write_meta_port(self.cfg.meta_path, self.port)
        pid_file = self.cfg.meta_path.with_name("uploader.pid")
        pid_file.write_text(str(os.getpid()), encoding="utf-8")  # lets operators and tests stop it
        print(PORT_LINE.format(port=self.port), flush=True)
        _detach_stdout()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._stop.set)
        log.info("serving %s on %s:%d", self._data_dir, self.cfg.ip, self.port)
        housekeeping = asyncio.create_task(self._housekeeping())
        try:
            await self._stop.wait()
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            await self.shutdown_tasks()
            if read_meta_port(self.cfg.meta_path) == self.port:
                write_meta_port(self.cfg.meta_path, 0)
                with contextlib.suppress(OSError):
                    pid_file.unlink()
            await server.close()
            if self._sn_api is not None:
                await self._sn_api.close()
        return 0


def _detach_stdout() -> None:
    """The spawning dfget reads one line and closes the pipe: later prints must not break."""
    with contextlib.suppress(OSError, ValueError):
        if not sys.stdout.isatty():
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def run_server(cfg: ServerConfig, factory: Any = Uploader) -> int:
    """Entry point of `dfget server` (tests pass a subclass as `factory`)."""
    status: int = asyncio.run(factory(cfg).serve())
    return status
