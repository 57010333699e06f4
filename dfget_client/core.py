"""One dfget run end to end: prepare, uploader, register, P2P download, back-to-source,
finish, report (§3, §10, §13.1). Returns an `Outcome`; the CLI prints it and exits.

How it works: registration walks the locator (§3.1). A P2P attempt (`P2PDownloader`) runs
under the overall timeout; anything it cannot recover from becomes a back-source reason.
Back-to-source is a plain GET into a fresh temp file, refused under `--notbs` (reason + 1000).
After a p2p attempt the local uploader is told `/client/finish` and the supernode gets
`/task/metrics`. Every run ends with one log line (`peer task done, cost: <n>ms` on success)
and, when this host has an uploader, a `POST /client/stats` for its `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import time
from dataclasses import dataclass

from dfget_client import logs
from dfget_client.config import DfgetConfig
from dfget_client.downloader import (
    BackSourceNeeded,
    DownloadSettings,
    P2PDownloader,
    Registration,
    RegistrationFailed,
)
from dfget_client.errors import (
    FORCE_NOT_BACK_SOURCE,
    BackSourceReason,
    DfgetError,
    DownloadError,
    ExitCode,
    OriginError,
    PrepareError,
    RegisterError,
    SupernodeError,
    UploaderError,
    VerifyError,
    WriteError,
)
from dfget_client.launcher import ensure_uploader, read_meta_port
from dfget_client.locator import Locator, Node
from dfget_client.peer_api import PeerApi
from dfget_client.plan import SourceKind
from dfget_client.progress import Progress
from dfget_client.ratelimit import TokenBucket
from dfget_client.stats import ClientStats
from dfget_client.supernode_api import (
    RegisterRequest,
    SupernodeApi,
    local_ip_towards,
    metrics_body,
)
from dfget_client.writer import TargetWriter
from supernode.protocol.codes import PeerPattern, ResultCode
from supernode.protocol.ids import client_id, client_sign, filter_url, task_file_name, task_id
from supernode.version import COMPAT_VERSION

log = logging.getLogger("dfget")


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: ExitCode
    cost: float
    length: int
    reason: int
    error: str = ""

    def line(self) -> str:
        """The console line of §13.1."""
        if self.exit_code is ExitCode.SUCCESS:
            return (
                f"download SUCCESS cost:{self.cost:.3f}s length:{self.length} reason:{self.reason}"
            )
        return (
            f"download FAIL({int(self.exit_code)}) cost:{self.cost:.3f}s length:{self.length} "
            f"reason:{self.reason} error:{self.error}"
        )


def overall_timeout(cfg: DfgetConfig, file_length: int) -> float:
    """`-e`, else length/minRate + 10 s, else 5 min (§10)."""
    if cfg.timeout > 0:
        return cfg.timeout
    if file_length > 0:
        return file_length / max(cfg.min_rate, 1) + 10
    return 300.0


def header_pairs(headers: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in headers))


class Dfget:
    """State of one run: ids, the APIs, the chosen supernode, the reason and the result."""

    def __init__(self, cfg: DfgetConfig, progress: Progress) -> None:
        self.cfg = cfg
        self.progress = progress
        self.start = time.monotonic()
        self.sign = client_sign(os.getpid(), time.time())
        self.task_url = filter_url(cfg.url, cfg.filters)
        self.task_file_name = task_file_name(cfg.output.name, self.sign)
        self.sn_api = SupernodeApi()
        self.peer_api = PeerApi()
        self.limiter = TokenBucket(cfg.local_limit)
        self.locator = Locator(cfg.nodes)
        self.reason: int = BackSourceReason.NONE
        self.succeeded = False
        self.backsourced = False
        self.length = 0
        self.ip = cfg.ip
        # provisional until the local IP is known; source-pattern runs keep it for their logs
        self.cid = client_id(cfg.ip or "127.0.0.1", self.sign)
        # what the supernode will compute (§8); its registration reply has the final word
        self.task_id = task_id(
            self.task_url, md5=cfg.md5, identifier=cfg.identifier,
            range_header=dict(header_pairs(cfg.headers)).get("Range"),
        )  # fmt: skip
        logs.bind(peer=self.cid, task=self.task_id)
        self.port = 0
        self.pattern = cfg.pattern
        self.registration: Registration | None = None
        self._last_node: Node | None = None

    async def run(self) -> Outcome:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        try:
            try:
                await self._run()
                outcome = self._outcome(ExitCode.SUCCESS)
            except DfgetError as exc:
                outcome = self._outcome(exc.exit_code, str(exc))
            self._log_outcome(outcome)
            # the download is over: a signal now must not turn its result into a failure
            with contextlib.suppress(asyncio.CancelledError):
                await self._report_stats()
            return outcome
        except asyncio.CancelledError:  # SIGINT/SIGTERM: temp files are gone, say so
            log.warning("peer task interrupted")
            return self._outcome(ExitCode.DOWNLOAD, "interrupted")
        finally:
            await self.sn_api.close()
            await self.peer_api.close()

    def _log_outcome(self, outcome: Outcome) -> None:
        """Exactly one line per run; `grep "peer task done"` finds the successful ones."""
        cost_ms = round(outcome.cost * 1000)
        fields = {"peer": self.cid, "task": self.task_id, "cost_ms": cost_ms}
        if outcome.exit_code is ExitCode.SUCCESS:
            log.info("peer task done, cost: %dms", cost_ms, extra=fields)
        else:
            log.error(
                "peer task failed, cost: %dms, reason: %d, error: %s",
                cost_ms, outcome.reason, outcome.error, extra={**fields, "reason": outcome.reason},
            )  # fmt: skip

    def stats(self) -> ClientStats:
        """This run's figures for the uploader (content bytes of verified pieces per source)."""
        progress = self.progress
        return ClientStats(
            success=self.succeeded,
            supernode_bytes=progress.content[SourceKind.SUPERNODE],
            peer_bytes=progress.content[SourceKind.PEER],
            # every byte the origin sent: back-to-source bodies and `cdnSource: source` pieces
            origin_bytes=progress.bytes[SourceKind.ORIGIN],
            pieces_verified=progress.verified,
            pieces_rejected=progress.rejected,
            backsource=self.backsourced,
            reason=int(self.reason),
        )

    async def _report_stats(self) -> None:
        """To this host's uploader: ours, or the one `host.meta` names; none → nothing to do."""
        port = self.port or read_meta_port(self.cfg.meta_path)
        if not port:
            return
        ip = self.ip or self.cfg.ip or "127.0.0.1"
        if not await self.peer_api.uploader_stats(ip, port, self.stats().to_body()):
            log.debug("the uploader on port %d did not take the stats", port)

    def _outcome(self, code: ExitCode, error: str = "") -> Outcome:
        cost = time.monotonic() - self.start
        return Outcome(code, cost, self.length, self.reason, error)

    async def _run(self) -> None:
        cfg = self.cfg
        self._prepare()
        print(f"dfget version:{COMPAT_VERSION}\nworkspace:{cfg.home} sign:{self.sign}", flush=True)
        if self.pattern is PeerPattern.SOURCE:
            self.reason = BackSourceReason.USER_SPECIFIED
            await self._back_source()
            return
        if not cfg.nodes:
            self.reason = BackSourceReason.NODE_EMPTY
            await self._back_source()
            return
        loop = asyncio.get_running_loop()
        self.ip = cfg.ip or await loop.run_in_executor(None, local_ip_towards, cfg.nodes)
        self.ip = self.ip or "127.0.0.1"
        self.cid = client_id(self.ip, self.sign)
        logs.bind(peer=self.cid)
        if self.pattern is PeerPattern.P2P:
            await self._start_uploader()
        try:
            self.registration = await self.register_next()
        except RegistrationFailed as exc:
            if exc.code == ResultCode.NEED_AUTH:
                raise RegisterError(f"register fail: {exc}") from exc
            log.warning("register failed: %s", exc)
            self.reason = BackSourceReason.REGISTER_FAIL
            await self._back_source()
            return
        self._bind_task()
        print(f"client:{self.ip} connected to node:{self.registration.node.host}", flush=True)
        try:
            await self._p2p()
        finally:
            await self._after_p2p()

    def _prepare(self) -> None:
        try:
            self.cfg.output.parent.mkdir(parents=True, exist_ok=True)
            for sub in ("meta", "data", "logs"):
                (self.cfg.home / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrepareError(f"cannot prepare directories: {exc}") from exc

    async def _start_uploader(self) -> None:
        try:
            self.port = await ensure_uploader(
                self.cfg, ip=self.ip, task_file_name=self.task_file_name, peer_api=self.peer_api
            )
        except (UploaderError, OSError) as exc:
            log.warning("start peer server error: %s, change to CDN pattern", exc)
            self.pattern, self.port = PeerPattern.CDN, 0

    def _register_request(self) -> RegisterRequest:
        cfg = self.cfg
        return RegisterRequest(
            raw_url=cfg.url, task_url=self.task_url, cid=self.cid, ip=self.ip,
            host_name=socket.gethostname(), port=self.port,
            path=f"/peer/file/{self.task_file_name}", version=COMPAT_VERSION,
            pattern=self.pattern.value, md5=cfg.md5, identifier=cfg.identifier,
            callsystem=cfg.callsystem, headers=cfg.headers, dfdaemon=cfg.dfdaemon,
            insecure=cfg.insecure, root_cas=cfg.cacerts,
        )  # fmt: skip

    async def register_next(self) -> Registration:
        """Walk the locator (§3.1): next node, skip the one we just left, 609 retried 3×."""
        request = self._register_request()
        last_error = "no supernode left"
        while (node := self.locator.next()) is not None:
            if node is self._last_node:
                continue
            for attempt in range(4):
                try:
                    reply = await self.sn_api.register(node, request)
                except SupernodeError as exc:
                    last_error = str(exc)
                    break
                if reply.code == ResultCode.SUCCESS:
                    self._last_node = node
                    text = f"registered with supernode {node.addr} task {reply.task_id}"
                    log.info("%s piece size %d", text, reply.piece_size)
                    self.progress.note(text)
                    return Registration(
                        node, reply.task_id, reply.file_length, reply.piece_size, reply.cdn_source
                    )
                last_error = f"code {reply.code} {reply.msg}".strip()
                if reply.code in (ResultCode.NEED_AUTH, ResultCode.URL_NOT_REACHABLE):
                    raise RegistrationFailed(last_error, reply.code)
                if reply.code != ResultCode.WAIT_AUTH or attempt == 3:
                    break
                await asyncio.sleep(1.0)
        raise RegistrationFailed(last_error)

    async def _p2p(self) -> None:
        cfg, reg = self.cfg, self.registration
        assert reg is not None
        self.length = max(reg.file_length, 0)
        self.progress.set_total(reg.file_length)
        service = cfg.data_dir / f"{self.task_file_name}.service" if self.port else None
        writer = TargetWriter(
            cfg.output,
            prefix=f"dfget-{self.sign}.tmp-",
            service_path=service,
            hash_while_writing=bool(cfg.md5),
        )
        try:
            writer.open()
        except WriteError as exc:
            raise PrepareError(str(exc)) from exc
        settings = DownloadSettings(
            cid=self.cid,
            piece_timeout=reg.piece_size / max(cfg.min_rate, 1) + 10,
            local_limit=cfg.local_limit,
            max_running=max(4, cfg.client_queue),
            headers=header_pairs(cfg.headers),
            ssl_context=self._ssl_context(),
        )
        downloader = P2PDownloader(
            settings=settings, registration=reg, register_next=self.register_next,
            sn_api=self.sn_api, peer_api=self.peer_api, writer=writer,
            progress=self.progress, limiter=self.limiter, rate_hook=self._rate_hook,
        )  # fmt: skip
        print("start download by dragonfly", flush=True)
        try:
            async with asyncio.timeout(overall_timeout(cfg, reg.file_length)):
                md5 = await downloader.run()
                self.registration = downloader.registration
                # Every piece was md5-checked on arrival: the supernode's whole-file md5 adds
                # nothing but a second pass over the file, so it is checked only when a piece
                # came unchecked; the user's `--md5` is always checked.
                unchecked = downloader.unverified_pieces > 0
                await writer.finish(
                    length=reg.file_length,
                    expected_md5=cfg.md5 or (md5 if unchecked else ""),
                    require_complete=True,
                    need_md5=bool(cfg.md5) or unchecked,
                )
        except BackSourceNeeded as exc:
            log.warning("p2p download failed: %s", exc)
            self.reason = exc.reason
        except TimeoutError:
            log.warning("p2p download timed out")
        except VerifyError as exc:
            log.warning("p2p download did not verify: %s", exc)
            self.reason = BackSourceReason.MD5_NOT_MATCH
        except WriteError as exc:
            log.warning("p2p download could not write: %s", exc)
            self.reason = BackSourceReason.WRITE_ERROR
        except BaseException:
            writer.abort(keep_service=True)
            raise
        else:
            self.length = max(reg.file_length, writer.high_water)
            self.succeeded = True
            return
        finally:
            self.registration = downloader.registration
            self._bind_task()
        writer.abort(keep_service=True)  # the pieces we reported are valid: keep serving them
        await self._back_source()

    def _bind_task(self) -> None:
        if self.registration is not None and self.registration.task_id != self.task_id:
            self.task_id = self.registration.task_id
            logs.bind(task=self.task_id)

    async def _rate_hook(self, rate: int) -> int | None:
        if not self.port:
            return None
        return await self.peer_api.uploader_rate(self.ip, self.port, self.task_file_name, rate)

    async def _after_p2p(self) -> None:
        """Keep serving what we got, and report the run to the supernode."""
        reg = self.registration
        if reg is None:
            return
        if self.port:
            await self.peer_api.uploader_finish(
                self.ip, self.port, task_file_name=self.task_file_name,
                task_id=reg.task_id, cid=self.cid, node=reg.node.addr,
            )  # fmt: skip
        body = metrics_body(
            ip=self.ip, backsource_reason=int(self.reason), cid=self.cid,
            callsystem=self.cfg.callsystem, duration=time.monotonic() - self.start,
            file_length=self.length, port=self.port, success=self.succeeded,
            task_id=reg.task_id,
        )  # fmt: skip
        await self.sn_api.report_metrics(reg.node.addr, body)

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.cfg.insecure:
            return False
        return self._ssl_context() or True

    def _ssl_context(self) -> ssl.SSLContext | None:
        """None: the default verification; else `--insecure` or `--cacerts` applied."""
        if self.cfg.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if not self.cfg.cacerts:
            return None
        context = ssl.create_default_context()
        for cert in self.cfg.cacerts:
            try:
                context.load_verify_locations(cadata=cert.decode("ascii", "replace"))
            except ssl.SSLError as exc:
                raise DownloadError(f"invalid --cacerts content: {exc}") from exc
        return context

    async def _back_source(self) -> None:
        cfg = self.cfg
        self.backsourced = True  # also when `--notbs` refuses it: the reason then has +1000
        log.warning("back to source, reason %d", self.reason)
        if cfg.notbs or self.reason == BackSourceReason.NO_SPACE:
            self.reason += FORCE_NOT_BACK_SOURCE
            raise DownloadError(f"download fail and not back source: {self.reason}")
        writer = TargetWriter(cfg.output, prefix=f"backsource.{self.sign}.")
        try:
            writer.open()
        except WriteError as exc:
            raise DownloadError(str(exc)) from exc
        known = self.registration.file_length if self.registration else -1
        self.progress.set_total(known)
        try:
            async with asyncio.timeout(overall_timeout(cfg, known)):
                length, md5 = await self.peer_api.fetch_origin(
                    cfg.url, writer.write_at, headers=header_pairs(cfg.headers),
                    limiter=self.limiter, ssl=self._ssl(),
                    on_bytes=lambda n: self.progress.add_bytes(SourceKind.ORIGIN, n),
                )  # fmt: skip
                await writer.finish(length=length, expected_md5=cfg.md5, known_md5=md5)
        except (OriginError, WriteError, VerifyError) as exc:
            writer.abort()
            raise DownloadError(str(exc)) from exc
        except TimeoutError as exc:
            writer.abort()
            raise DownloadError("download from the origin timed out") from exc
        except BaseException:
            writer.abort()
            raise
        self.length = length
        self.succeeded = True
        self.progress.origin_done(length)


def start_stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def run(cfg: DfgetConfig, progress: Progress) -> Outcome:
    return asyncio.run(Dfget(cfg, progress).run())
