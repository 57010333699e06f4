"""SQLite rows of the Open API: jobs (groups of preheat-engine jobs) and personal access tokens."""

# The tables are migration step 2 of `supernode.store.MIGRATIONS`; the connection and its
# write lock are the preheat engine's `Database`, so one file holds everything and the
# `supernode token` CLI can write to it while the server runs (WAL mode).

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from supernode.core.oapi import JobState
from supernode.core.tokens import AccessToken, Scope, TokenState
from supernode.store import Database, StoreError


class NameTaken(Exception):
    """A token with this name exists already (names are unique, as in DF2)."""


@dataclass(frozen=True, slots=True)
class BlobOutcome:
    url: str
    status: str  # the engine's blob status
    error: str = ""


@dataclass(frozen=True, slots=True)
class JobTask:
    """One preheat-engine job of an Open API job. `state` is "" while the engine job is live,
    then the engine's final status, frozen so a later rerun of that engine job (another
    client preheating the same URL) does not rewrite this job's history."""

    index: int
    task_uuid: str
    preheat_id: str
    url: str
    created_at: float
    attempt: int = 0
    state: str = ""
    error: str = ""
    finished_at: float = 0.0
    blobs: tuple[BlobOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class OapiJob:
    id: int
    task_id: str  # group_<uuid>
    type: str
    bio: str
    args_json: str  # the echoed args, secrets already masked
    cluster_ids: tuple[int, ...]
    user_id: int
    state: JobState
    created_at: float
    updated_at: float
    tasks: tuple[JobTask, ...] = ()


Row = TypeVar("Row")


class _Table(Generic[Row]):
    """Lookups and newest-first paging shared by the Open API's tables; a subclass names its
    table and reads its rows (`_select`)."""

    table: ClassVar[str]

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[Row]:
        raise NotImplementedError

    async def _one(self, where: str, params: tuple[Any, ...]) -> Row | None:
        rows = await self._select(where, params)
        return rows[0] if rows else None

    async def get(self, row_id: int) -> Row | None:
        return await self._one("WHERE id = ?", (row_id,))

    async def page(self, filters: dict[str, Any], offset: int, limit: int) -> list[Row]:
        where, params = _where(filters)
        query = f"{where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        return await self._select(query, (*params, limit, offset))

    async def count(self, filters: dict[str, Any]) -> int:
        where, params = _where(filters)
        query = f"SELECT COUNT(*) FROM {self.table} {where}"
        async with self.db.conn.execute(query, params) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


class JobStore(_Table[OapiJob]):
    table = "oapi_jobs"

    async def insert(self, job: OapiJob) -> OapiJob:
        """Store a new job and its tasks in one transaction; returns it with its id."""
        row: tuple[Any, ...] = (job.task_id, job.type, job.bio, job.args_json)
        row += (json.dumps(job.cluster_ids), job.user_id, job.state.value)
        row += (job.created_at, job.updated_at)
        async with self.db.lock:
            try:
                cursor = await self.db.conn.execute(
                    "INSERT INTO oapi_jobs (task_id, type, bio, args, cluster_ids, user_id, "
                    "state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    row,
                )
                job_id = int(cursor.lastrowid or 0)
                await self.db.conn.executemany(
                    "INSERT INTO oapi_job_tasks (job_id, idx, task_uuid, preheat_id, url, "
                    "attempt, created_at) VALUES (?,?,?,?,?,?,?)",
                    [
                        (job_id, t.index, t.task_uuid, t.preheat_id, t.url, t.attempt, t.created_at)
                        for t in job.tasks
                    ],
                )
                await self.db.conn.commit()
            except sqlite3.Error as exc:
                await self.db.conn.rollback()
                raise StoreError(f"cannot store the job: {exc}") from exc
        return OapiJob(job_id, *_fields_after_id(job))

    async def pending(self) -> list[OapiJob]:
        return await self._select("WHERE state = 'PENDING'", ())

    async def set_state(self, job_id: int, state: JobState, updated_at: float) -> None:
        await self._write(
            "UPDATE oapi_jobs SET state = ?, updated_at = ? WHERE id = ?",
            [(state.value, updated_at, job_id)],
        )

    async def patch(self, job_id: int, changes: dict[str, Any], updated_at: float) -> None:
        columns = [c for c in ("bio", "user_id") if c in changes]
        sets = ", ".join(f"{c} = ?" for c in [*columns, "updated_at"])
        values = (*(changes[c] for c in columns), updated_at, job_id)
        await self._write(f"UPDATE oapi_jobs SET {sets} WHERE id = ?", [values])

    async def delete(self, job_id: int) -> None:
        await self._write("DELETE FROM oapi_jobs WHERE id = ?", [(job_id,)])

    async def set_attempt(self, job_id: int, index: int, attempt: int) -> None:
        sql = "UPDATE oapi_job_tasks SET attempt = ? WHERE job_id = ? AND idx = ?"
        await self._write(sql, [(attempt, job_id, index)])

    async def freeze(self, job_id: int, task: JobTask) -> None:
        blobs = json.dumps([[b.url, b.status, b.error] for b in task.blobs])
        await self._write(
            "UPDATE oapi_job_tasks SET state = ?, error = ?, finished_at = ?, blobs = ? "
            "WHERE job_id = ? AND idx = ? AND state = ''",
            [(task.state, task.error, task.finished_at, blobs, job_id, task.index)],
        )

    async def live_tasks_of(self, preheat_id: str, attempt: int) -> list[tuple[int, int]]:
        """(job id, index) of tasks still following this attempt of an engine job."""
        query = (
            "SELECT job_id, idx FROM oapi_job_tasks "
            "WHERE preheat_id = ? AND attempt = ? AND state = ''"
        )
        async with self.db.conn.execute(query, (preheat_id, attempt)) as cursor:
            return [(int(a), int(b)) for a, b in await cursor.fetchall()]

    async def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        await self.db.write("Open API jobs", (sql, rows))

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[OapiJob]:
        rows, children = await self.db.select_with_children(
            "oapi_jobs", "oapi_job_tasks", where, params
        )
        tasks = {
            job_id: [
                JobTask(
                    t[1],
                    t[2],
                    t[3],
                    t[4],
                    t[6],
                    t[5],
                    t[7],
                    t[8],
                    t[9],
                    tuple(BlobOutcome(*b) for b in json.loads(t[10])),
                )
                for t in group
            ]
            for job_id, group in children.items()
        }
        return [
            OapiJob(
                id=r[0],
                task_id=r[1],
                type=r[2],
                bio=r[3],
                args_json=r[4],
                cluster_ids=tuple(json.loads(r[5])),
                user_id=r[6],
                state=JobState(r[7]),
                created_at=r[8],
                updated_at=r[9],
                tasks=tuple(tasks.get(r[0], ())),
            )
            for r in rows
        ]


def _fields_after_id(job: OapiJob) -> tuple[Any, ...]:
    return (
        job.task_id, job.type, job.bio, job.args_json, job.cluster_ids, job.user_id,
        job.state, job.created_at, job.updated_at, job.tasks,
    )  # fmt: skip


def _where(filters: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    clauses = [f"{column} = ?" for column in filters]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(filters.values())


class TokenStore(_Table[AccessToken]):
    table = "personal_access_tokens"

    async def insert(self, record: AccessToken) -> AccessToken:
        row: tuple[Any, ...] = (record.name, record.bio, record.token_hash, _scopes(record.scopes))
        row += (record.state.value, record.expired_at, record.user_id)
        row += (record.created_at, record.updated_at)
        async with self.db.lock:
            try:
                cursor = await self.db.conn.execute(
                    "INSERT INTO personal_access_tokens (name, bio, token_hash, scopes, state, "
                    "expired_at, user_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    row,
                )
                await self.db.conn.commit()
            except sqlite3.IntegrityError as exc:
                await self.db.conn.rollback()
                raise NameTaken(f"a token named {record.name!r} exists already") from exc
            except sqlite3.Error as exc:
                await self.db.conn.rollback()
                raise StoreError(f"cannot store the token: {exc}") from exc
        found = await self.get(int(cursor.lastrowid or 0))
        if found is None:
            raise StoreError("the token vanished right after it was stored")
        return found

    async def by_hash(self, token_hash: str) -> AccessToken | None:
        return await self._one("WHERE token_hash = ?", (token_hash,))

    async def by_name(self, name: str) -> AccessToken | None:
        return await self._one("WHERE name = ?", (name,))

    async def update(self, token_id: int, changes: dict[str, Any], updated_at: float) -> None:
        values = dict(changes)
        if "scopes" in values:
            values["scopes"] = _scopes(values["scopes"])
        if "state" in values:
            values["state"] = TokenState(values["state"]).value
        columns = [c for c in ("bio", "scopes", "state", "expired_at", "user_id") if c in values]
        sets = ", ".join(f"{c} = ?" for c in [*columns, "updated_at"])
        row = (*(values[c] for c in columns), updated_at, token_id)
        sql = f"UPDATE personal_access_tokens SET {sets} WHERE id = ?"
        await self.db.write("the token", (sql, [row]))

    async def delete(self, token_id: int) -> None:
        sql = "DELETE FROM personal_access_tokens WHERE id = ?"
        await self.db.write("the token", (sql, [(token_id,)]))

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[AccessToken]:
        query = f"SELECT * FROM personal_access_tokens {where}"
        async with self.db.conn.execute(query, params) as cursor:
            rows = await cursor.fetchall()
        return [
            AccessToken(
                id=r[0],
                name=r[1],
                bio=r[2],
                token_hash=r[3],
                scopes=tuple(Scope(s) for s in json.loads(r[4])),
                state=TokenState(r[5]),
                expired_at=r[6],
                user_id=r[7],
                created_at=r[8],
                updated_at=r[9],
            )
            for r in rows
        ]


def _scopes(scopes: Iterable[Scope]) -> str:
    return json.dumps([Scope(s).value for s in scopes])
