"""The `dfget` console script: flags of §13.1, sub-commands `server` and `version`, logging,
the result line and the exit code; `dfdaemon` is a placeholder for now."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dfget_client import logs
from dfget_client.config import (
    DEFAULT_ALIVE_TIME,
    DEFAULT_CLIENT_QUEUE,
    DEFAULT_EXPIRE_TIME,
    DEFAULT_LOCAL_LIMIT,
    DEFAULT_MIN_RATE,
    DfgetConfig,
    ServerConfig,
    check_headers,
    check_ip,
    check_md5,
    check_output,
    check_port,
    check_url,
    default_home,
    load_properties,
    parse_rate,
    parse_seconds,
    read_cacerts,
    resolve_nodes,
)
from dfget_client.errors import ConfigError, ExitCode
from supernode.protocol.codes import PeerPattern
from supernode.protocol.ids import split_filter
from supernode.protocol.logs import redact
from supernode.version import COMPAT_VERSION, VERSION

SUBCOMMANDS = ("server", "version", "daemon", "gen-doc")


class _Parser(argparse.ArgumentParser):
    """Bad flags are a one-line ConfigError (exit 1), not argparse's exit 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dfget", description="client of Dragonfly used to download and upload files")
    add = p.add_argument
    add("-u", "--url", default="", help="URL of the file to download (http/https)")
    add("-o", "-O", "--output", default="", help="destination file path")
    add("-s", "--locallimit", default="", help="rate limit of this download, e.g. 20M")
    add("--minrate", default="", help="minimal rate used for timeouts, e.g. 64K")
    add("--totallimit", default="", help="upload rate limit of the whole host, e.g. 50M")
    add("-e", "--timeout", default="", help="overall timeout, e.g. 300s or 5m (0: automatic)")
    add("-m", "--md5", default="", help="expected md5 of the file")
    add("-i", "--identifier", default="", help="tells apart tasks of the same URL")
    add("--callsystem", default="", help="name of the caller, for logs and metrics")
    add("-p", "--pattern", default="p2p", help="download pattern: p2p, cdn or source")
    add("-f", "--filter", default="", help="query parameters to ignore, e.g. 'key&sign'")
    add("--header", action="append", default=[], help="HTTP header 'Name: value' (repeatable)")
    add("-n", "--node", action="append", default=[], help="supernodes host[:port][=weight],...")
    add("--notbs", action="store_true", help="never download from the origin directly")
    add("--dfdaemon", action="store_true", help="the request comes from dfdaemon")
    add("--insecure", action="store_true", help="do not verify the origin's TLS certificate")
    add("--cacerts", action="append", default=[], help="CA certificate file (repeatable)")
    add("--clientqueue", type=int, default=0, help="pieces processed at once (default 6)")
    add("-b", "--showbar", action="store_true", help="show a progress bar")
    add("--console", action="store_true", help="also log to the console")
    add("--verbose", action="store_true", help="one line per piece and a summary")
    add("--home", default="", help="work home (default $HOME/.small-dragonfly)")
    add("--config", default="", help="config file (default /etc/dragonfly/dfget.yml)")
    add("--ip", default="", help="IP of this host for peers and the uploader")
    add("--port", type=int, default=0, help="uploader port (15000..65000, 0: automatic)")
    add("--expiretime", default="", help="uploader: delete served files unused this long (3m)")
    add("--alivetime", default="", help="uploader: exit after this long without requests (5m)")
    return p


def build_server_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dfget server", description="the peer uploader of this host")
    add = p.add_argument
    add("--home", default="")
    add("--data", default="")
    add("--meta", default="")
    add("--ip", default="0.0.0.0")
    add("--port", type=int, default=0)
    add("--expiretime", default="")
    add("--alivetime", default="")
    add("--totallimit", default="")
    add("--verbose", action="store_true")
    add("--console", action="store_true", help="also log to the console")
    add("--gc-interval", default="", help=argparse.SUPPRESS)
    return p


def parse_args(argv: Sequence[str]) -> DfgetConfig:
    """Flags > config file > defaults; every bad value is a ConfigError."""
    ns = build_parser().parse_args(list(argv))
    props = load_properties(Path(ns.config) if ns.config else None)
    url = check_url(ns.url) if ns.url else ""
    if not url:
        raise ConfigError("missing url: use -u <url>")
    try:
        pattern = PeerPattern(ns.pattern)
    except ValueError as exc:
        raise ConfigError(f"invalid pattern {ns.pattern!r}: use p2p, cdn or source") from exc
    if ns.md5 and ns.identifier:
        ns.identifier = ""  # md5 wins (§8)
    home = Path(os.path.abspath(ns.home)) if ns.home else props.work_home or default_home()
    queue = ns.clientqueue or props.client_queue or DEFAULT_CLIENT_QUEUE
    if queue <= 0:
        raise ConfigError("--clientqueue must be positive")
    return DfgetConfig(
        url=url,
        output=check_output(ns.output, url),
        nodes=resolve_nodes(ns.node, props),
        home=home,
        local_limit=parse_rate("locallimit", ns.locallimit)
        or props.local_limit
        or DEFAULT_LOCAL_LIMIT,
        min_rate=parse_rate("minrate", ns.minrate) or props.min_rate or DEFAULT_MIN_RATE,
        total_limit=parse_rate("totallimit", ns.totallimit) or props.total_limit or 0,
        timeout=parse_seconds("timeout", ns.timeout, 0.0),
        md5=check_md5(ns.md5),
        identifier=ns.identifier,
        callsystem=ns.callsystem,
        pattern=pattern,
        filters=tuple(split_filter(ns.filter)),
        headers=check_headers(ns.header),
        notbs=ns.notbs,
        dfdaemon=ns.dfdaemon,
        insecure=ns.insecure,
        cacerts=read_cacerts(ns.cacerts),
        client_queue=queue,
        showbar=ns.showbar,
        console=ns.console,
        verbose=ns.verbose,
        ip=check_ip(ns.ip),
        port=check_port(ns.port),
        expire_time=parse_seconds("expiretime", ns.expiretime, DEFAULT_EXPIRE_TIME),
        alive_time=parse_seconds("alivetime", ns.alivetime, DEFAULT_ALIVE_TIME),
    )


def parse_server_args(argv: Sequence[str]) -> ServerConfig:
    ns = build_server_parser().parse_args(list(argv))
    home = Path(os.path.abspath(ns.home)) if ns.home else default_home()
    port = ns.port
    if port and not 0 < port < 65536:
        raise ConfigError(f"invalid --port {port}")
    return ServerConfig(
        home=home,
        data_dir=Path(os.path.abspath(ns.data)) if ns.data else home / "data",
        meta_path=Path(os.path.abspath(ns.meta)) if ns.meta else home / "meta" / "host.meta",
        ip=check_ip(ns.ip) if ns.ip != "0.0.0.0" else ns.ip,
        port=port,
        expire_time=parse_seconds("expiretime", ns.expiretime, DEFAULT_EXPIRE_TIME),
        alive_time=parse_seconds("alivetime", ns.alivetime, DEFAULT_ALIVE_TIME),
        total_limit=parse_rate("totallimit", ns.totallimit) or 0,
        verbose=ns.verbose,
        console=ns.console,
        gc_interval=parse_seconds("gc-interval", ns.gc_interval, 15.0) or 15.0,
    )


def setup_server_logging(cfg: ServerConfig) -> None:
    logs.setup(
        cfg.home / "logs" / "dfserver.log",
        component=logs.COMPONENT_UPLOADER,
        verbose=cfg.verbose,
        console=cfg.console,
    )


def server_main(argv: Sequence[str]) -> int:
    from dfget_client.uploader import run_server

    cfg = parse_server_args(argv)
    setup_server_logging(cfg)
    return run_server(cfg)


def version_main() -> int:
    print(f"dfget version {VERSION} (wire-compatible with Dragonfly {COMPAT_VERSION})")
    print(f"python {platform.python_version()} {platform.system().lower()}/{platform.machine()}")
    return 0


def download_main(argv: Sequence[str]) -> int:
    cfg = parse_args(argv)
    logs.setup(
        cfg.log_dir / "dfclient.log",
        component=logs.COMPONENT_DFGET,
        verbose=cfg.verbose,
        console=cfg.console,
    )
    # not for `dfget server`: the uploader starts faster without them
    from dfget_client import core
    from dfget_client.progress import Progress

    progress = Progress(showbar=cfg.showbar and not cfg.console, verbose=cfg.verbose)
    print(f"--{core.start_stamp()}--  {redact(cfg.url)}", flush=True)
    outcome = core.run(cfg, progress)
    progress.close()
    print(redact(outcome.line()), flush=True)
    return int(outcome.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args:
            print("Please use the command 'help' to show the help information.")
            return 0
        if args[0] in ("help",):
            build_parser().print_help()
            return 0
        if args[0] == "server":
            return server_main(args[1:]) % 256
        if args[0] == "version":
            return version_main()
        if args[0] in ("daemon", "gen-doc"):
            print(f"dfget {args[0]}: not implemented yet", file=sys.stderr)
            return 2
        return download_main(args) % 256
    except ConfigError as exc:
        print(f"dfget: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG)
    except KeyboardInterrupt:
        print("dfget: interrupted", file=sys.stderr)
        return 130


def dfdaemon_main(argv: Sequence[str] | None = None) -> int:
    print("dfdaemon: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
