"""`supernode token …`: personal access tokens in the store of a supernode home (running or not)."""

# The server reads tokens from SQLite on every request (no cache), so a token created here is
# usable at once by a supernode running on the same home; WAL mode lets both write the file.

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from supernode.config import ConfigError, load_config
from supernode.core.oapi import rfc3339
from supernode.core.tokens import AccessToken, TokenState, parse_scopes
from supernode.oapi.store import NameTaken, TokenStore
from supernode.oapi.tokens import Tokens
from supernode.protocol.units import parse_duration
from supernode.store import DB_FILE_NAME, Database, StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supernode token", description="Personal access tokens of the Open API."
    )
    parser.add_argument("--config", help="YAML file (default /etc/dragonfly/supernode.yml)")
    parser.add_argument("--home-dir", dest="home_dir", help="the supernode's home (YAML homeDir)")
    commands = parser.add_subparsers(dest="action", required=True)
    create = commands.add_parser("create", help="create a token and print it (last line)")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", default="job,cluster", help="job, cluster, admin (comma list)")
    create.add_argument("--expires", default="30d", help="lifetime, e.g. 7d, 30d, 12h")
    create.add_argument("--bio", default="")
    commands.add_parser("list", help="list tokens (never their values)")
    for name in ("deactivate", "activate", "delete"):
        sub = commands.add_parser(name, help=f"{name} a token by --name or --id")
        which = sub.add_mutually_exclusive_group(required=True)
        which.add_argument("--name")
        which.add_argument("--id", type=int)
    for sub in commands.choices.values():  # also accepted after the action
        sub.add_argument("--config", dest="config_sub", default=None, help=argparse.SUPPRESS)
        sub.add_argument("--home-dir", dest="home_sub", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(
            args.config_sub or args.config, {"home_dir": args.home_sub or args.home_dir}
        )
    except ConfigError as exc:
        print(f"supernode token: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, Database(config.home_dir / DB_FILE_NAME)))
    except (StoreError, NameTaken, ValueError) as exc:
        print(f"supernode token: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, db: Database) -> int:
    await db.open()
    try:
        store = TokenStore(db)
        if args.action == "create":
            return await _create(args, store)
        if args.action == "list":
            for record in await store.page({}, 0, 1_000_000):
                print(_line(record))
            return 0
        record = await (store.get(args.id) if args.id is not None else store.by_name(args.name))
        if record is None:
            print("supernode token: no such token", file=sys.stderr)
            return 1
        if args.action == "delete":
            await store.delete(record.id)
            print(f"deleted token {record.id} ({record.name})")
        else:
            state = TokenState.ACTIVE if args.action == "activate" else TokenState.INACTIVE
            await store.update(record.id, {"state": state}, time.time())
            print(f"token {record.id} ({record.name}) is now {state.value}")
        return 0
    finally:
        await db.close()


async def _create(args: argparse.Namespace, store: TokenStore) -> int:
    lifetime = parse_duration(args.expires)
    if lifetime <= 0:
        raise ValueError("--expires must be a positive duration")
    scopes = parse_scopes(args.scopes.split(","))
    issued = await Tokens(store, time.time).issue(
        args.name, scopes, time.time() + lifetime, bio=args.bio
    )
    print(_line(issued.record))
    print("the token is shown once; only its hash is stored:")
    print(issued.token)  # alone on the last line, for scripts: `| tail -n 1`
    return 0


def _line(record: AccessToken) -> str:
    scopes = ",".join(s.value for s in record.scopes)
    return (
        f"id={record.id} name={record.name} scopes={scopes} state={record.state.value} "
        f"expires={rfc3339(record.expired_at)}"
    )
