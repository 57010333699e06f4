"""`supernode` command line: run the server, `version`, `config`, `token`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

import yaml
from aiohttp import web

from supernode.config import KEYS_BY_FLAG, ConfigError, SupernodeConfig, load_config
from supernode.home_lock import lock_home
from supernode.protocol.logs import setup_logging
from supernode.version import VERSION

log = logging.getLogger("supernode")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supernode", description="Dragonfly-compatible supernode: tracker, scheduler, CDN."
    )
    parser.add_argument("command", nargs="?", choices=["run", "version", "config"], default="run")
    parser.add_argument("--config", help="YAML file (default /etc/dragonfly/supernode.yml)")
    for flag, spec in KEYS_BY_FLAG.items():
        if spec.kind == "bool":
            parser.add_argument(
                flag, dest=spec.attr, action="store_const", const=True, default=None
            )
        else:
            parser.add_argument(flag, dest=spec.attr, default=None, help=f"YAML base.{spec.yaml}")
    parser.add_argument("-D", dest="debug", action="store_const", const=True, default=None)
    parser.add_argument("--console", action="store_true", help="also log to stderr")
    parser.add_argument("--profiler", action="store_true", help="accepted for compatibility")
    parser.add_argument("--pool-size", default=None, help="accepted for compatibility (unused)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:  # `supernode token …`: its own parser, not the server's flags
        from supernode.oapi import cli as token_cli

        return token_cli.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"supernode version {VERSION}")
        return 0
    overrides: dict[str, Any] = {
        spec.attr: getattr(args, spec.attr) for spec in KEYS_BY_FLAG.values()
    }
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"supernode: {exc}", file=sys.stderr)
        return 2
    if args.command == "config":
        print(yaml.safe_dump(config.to_yaml_dict(), sort_keys=False), end="")
        return 0
    try:
        setup_logging(
            config.home_dir / "logs" / "app.log",
            level=logging.DEBUG if config.debug else logging.INFO,
            to_stderr=args.console,
        )
    except OSError as exc:
        print(f"supernode: cannot write logs under {config.home_dir}: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(f"supernode: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve(config: SupernodeConfig) -> None:
    """Run the control plane on listenPort and the download port beside it until a signal."""
    try:
        config.home_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create home dir {config.home_dir}: {exc}") from exc
    home_lock = lock_home(config.home_dir)  # released when the process ends
    try:
        await _serve(config)
    finally:
        os.close(home_lock)


async def _serve(config: SupernodeConfig) -> None:
    from supernode.web.app import create_app

    app = create_app(config)
    runners = [web.AppRunner(app, access_log=None)]
    download_app = _download_app(app)
    if download_app is not None:
        runners.append(web.AppRunner(download_app, access_log=None))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for runner in runners:
            await runner.setup()
        await web.TCPSite(runners[0], config.listen_ip, config.listen_port).start()
        if len(runners) > 1:
            await web.TCPSite(runners[1], config.listen_ip, config.download_port).start()
        log.info(
            "supernode %s listening on %s:%d (download port %d), home %s",
            VERSION,
            config.listen_ip,
            config.listen_port,
            config.download_port,
            config.home_dir,
        )
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _download_app(app: web.Application) -> web.Application | None:
    """The download port serves the CDN's files when the CDN keeps files on disk."""
    from supernode.web.keys import SERVICE

    try:
        from supernode.web.download import create_download_app
    except ImportError:
        return None
    return create_download_app(app[SERVICE].cdn)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
