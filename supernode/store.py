"""SQLite (aiosqlite) for what must survive a restart: preheat jobs, Open API jobs, tokens."""

# How it works: one database file under the home dir, opened once per app. The schema grows
# by appending to MIGRATIONS (never editing a shipped step); `PRAGMA user_version` records how
# many steps ran. Writes go through one lock so that a multi-statement transaction is never
# interleaved with another coroutine's; aiosqlite runs them on its own thread in order.

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from supernode.core.preheat import Blob, PreheatJob, PreheatSpec, PreheatStatus, PreheatType

DB_FILE_NAME = "supernode.db"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
REDACTED = "<redacted>"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE preheat_jobs (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            url TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            deadline REAL NOT NULL,
            finished_at REAL NOT NULL DEFAULT 0,
            error_msg TEXT NOT NULL DEFAULT '',
            expanded INTEGER NOT NULL DEFAULT 0,
            manifest_digest TEXT NOT NULL DEFAULT '',
            content_key TEXT NOT NULL DEFAULT '',
            redirect_to TEXT NOT NULL DEFAULT '',
            attempt INTEGER NOT NULL DEFAULT 1
        )""",
        "CREATE INDEX preheat_jobs_status ON preheat_jobs(status)",
        "CREATE INDEX preheat_jobs_content ON preheat_jobs(content_key)",
        """CREATE TABLE preheat_blobs (
            job_id TEXT NOT NULL REFERENCES preheat_jobs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            task_id TEXT NOT NULL,
            url TEXT NOT NULL,
            digest TEXT NOT NULL DEFAULT '',
            media_type TEXT NOT NULL DEFAULT '',
            size INTEGER NOT NULL DEFAULT -1,
            platform TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            error TEXT NOT NULL DEFAULT '',
            cache_hit INTEGER NOT NULL DEFAULT 0,
            finished_at REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (job_id, idx)
        )""",
        "CREATE INDEX preheat_blobs_task ON preheat_blobs(task_id)",
    ),
    # 2: the Open API (supernode/oapi): jobs grouping engine jobs, personal access tokens.
    (
        """CREATE TABLE oapi_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            bio TEXT NOT NULL DEFAULT '',
            args TEXT NOT NULL,
            cluster_ids TEXT NOT NULL,
            user_id INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX oapi_jobs_created ON oapi_jobs(created_at)",
        """CREATE TABLE oapi_job_tasks (
            job_id INTEGER NOT NULL REFERENCES oapi_jobs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            task_uuid TEXT NOT NULL,
            preheat_id TEXT NOT NULL,
            url TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            finished_at REAL NOT NULL DEFAULT 0,
            blobs TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (job_id, idx)
        )""",
        "CREATE INDEX oapi_job_tasks_preheat ON oapi_job_tasks(preheat_id)",
        """CREATE TABLE personal_access_tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            bio TEXT NOT NULL DEFAULT '',
            token_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            state TEXT NOT NULL,
            expired_at REAL NOT NULL,
            user_id INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ),
)


class StoreError(Exception):
    """The database could not be opened or written."""


class Database:
    """The supernode's SQLite file; `open` migrates it, `close` ends the connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = asyncio.Lock()
        self._conn: aiosqlite.Connection | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError("database is not open")
        return self._conn

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = await aiosqlite.connect(self.path)
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA foreign_keys=ON")
            await self._migrate()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def write(self, what: str, *statements: tuple[str, list[tuple[Any, ...]]]) -> None:
        """Run the statements as one transaction under the write lock; StoreError on failure."""
        async with self.lock:
            try:
                for sql, rows in statements:
                    if rows:
                        await self.conn.executemany(sql, rows)
                await self.conn.commit()
            except sqlite3.Error as exc:
                await self.conn.rollback()
                raise StoreError(f"cannot write {what}: {exc}") from exc

    async def select_with_children(
        self, table: str, children: str, where: str, params: tuple[Any, ...]
    ) -> tuple[list[Any], dict[Any, list[Any]]]:
        """Rows of `table` matching `where`, and the rows of `children` (keyed by `job_id`,
        in `idx` order) of each: two queries, whatever the number of rows."""
        async with self.conn.execute(f"SELECT * FROM {table} {where}", params) as cursor:
            rows = list(await cursor.fetchall())
        if not rows:
            return [], {}
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        query = f"SELECT * FROM {children} WHERE job_id IN ({marks}) ORDER BY job_id, idx"
        grouped: dict[Any, list[Any]] = {}
        async with self.conn.execute(query, ids) as cursor:
            for child in await cursor.fetchall():
                grouped.setdefault(child[0], []).append(child)
        return rows, grouped

    async def _migrate(self) -> None:
        async with self.conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(f"database schema {version} is newer than this supernode knows")
        for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in steps:
                await self.conn.execute(statement)
            await self.conn.execute(f"PRAGMA user_version={number}")
            await self.conn.commit()


class PreheatStore:
    """Preheat jobs and their blobs; a job is always written whole, in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, job: PreheatJob) -> None:
        spec = _spec_to_json(job.spec, redact=job.status.finished)
        row = (
            job.id,
            job.spec.type.value,
            job.spec.url,
            spec,
            job.status.value,
            job.created_at,
            job.deadline,
            job.finished_at,
            job.error_msg,
            int(job.expanded),
            job.manifest_digest,
            job.content_key,
            job.redirect_to,
            job.attempt,
        )
        blobs = [
            (
                job.id,
                i,
                b.task_id,
                b.url,
                b.digest,
                b.media_type,
                b.size,
                b.platform,
                b.status.value,
                b.error,
                int(b.cache_hit),
                b.finished_at,
            )
            for i, b in enumerate(job.blobs)
        ]
        await self._write(
            ("INSERT OR REPLACE INTO preheat_jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [row]),
            ("DELETE FROM preheat_blobs WHERE job_id = ?", [(job.id,)]),
            ("INSERT INTO preheat_blobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", blobs),
        )

    async def delete(self, job_ids: Iterable[str]) -> None:
        ids = [(i,) for i in job_ids]
        await self._write(
            ("DELETE FROM preheat_blobs WHERE job_id = ?", ids),
            ("DELETE FROM preheat_jobs WHERE id = ?", ids),
        )

    async def get(self, job_id: str) -> PreheatJob | None:
        jobs = await self._select("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def all(self, limit: int = 10000) -> list[PreheatJob]:
        return await self._select("ORDER BY created_at DESC LIMIT ?", (limit,))

    async def unfinished(self) -> list[PreheatJob]:
        return await self._select("WHERE status IN ('WAITING', 'RUNNING')", ())

    async def finished_before(self, cutoff: float) -> list[PreheatJob]:
        query = "WHERE status IN ('SUCCESS', 'FAILED') AND finished_at <= ?"
        return await self._select(query, (cutoff,))

    async def redirects_to(self, target_id: str) -> list[PreheatJob]:
        return await self._select("WHERE redirect_to = ?", (target_id,))

    async def same_content(self, content_key: str, digests: tuple[str, ...]) -> PreheatJob | None:
        """The newest real (not redirect) job warming the same content, if any."""
        wanted = [d for d in digests if d]
        if not content_key or not wanted:
            return None
        marks = ",".join("?" * len(wanted))
        query = (
            f"WHERE content_key = ? AND redirect_to = '' AND manifest_digest IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1"
        )
        jobs = await self._select(query, (content_key, *wanted))
        return jobs[0] if jobs else None

    async def blob_by_task(self, task_id: str) -> tuple[PreheatJob, Blob] | None:
        """The newest image job holding a blob with this task id (a Go "child task")."""
        query = (
            "SELECT job_id, idx FROM preheat_blobs b JOIN preheat_jobs j ON j.id = b.job_id "
            "WHERE b.task_id = ? AND j.type = 'image' ORDER BY j.created_at DESC LIMIT 1"
        )
        async with self.db.conn.execute(query, (task_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        job = await self.get(row[0])
        if job is None or row[1] >= len(job.blobs):
            return None
        return job, job.blobs[row[1]]

    async def count_by_status(self) -> dict[str, int]:
        query = "SELECT status, COUNT(*) FROM preheat_jobs GROUP BY status"
        async with self.db.conn.execute(query) as cursor:
            return {str(status): int(n) for status, n in await cursor.fetchall()}

    async def _write(self, *statements: tuple[str, list[tuple[Any, ...]]]) -> None:
        await self.db.write("preheat jobs", *statements)

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[PreheatJob]:
        rows, children = await self.db.select_with_children(
            "preheat_jobs", "preheat_blobs", where, params
        )
        blobs = {
            job_id: [
                Blob(
                    task_id=b[2],
                    url=b[3],
                    digest=b[4],
                    media_type=b[5],
                    size=b[6],
                    platform=b[7],
                    status=PreheatStatus(b[8]),
                    error=b[9],
                    cache_hit=bool(b[10]),
                    finished_at=b[11],
                )
                for b in group
            ]
            for job_id, group in children.items()
        }
        return [_job_from_row(r, tuple(blobs.get(r[0], ()))) for r in rows]


def _spec_to_json(spec: PreheatSpec, *, redact: bool) -> str:
    """Secrets are kept only while the job may still need them (a resume after a restart)."""
    headers = [
        [k, REDACTED if redact and k.lower() in SECRET_HEADERS else v] for k, v in spec.headers
    ]
    return json.dumps(
        {
            "filter": spec.filter,
            "identifier": spec.identifier,
            "headers": headers,
            "platform": spec.platform,
            "username": spec.username,
            "password": "" if redact else spec.password,
            "insecure": spec.insecure,
            "rootCAs": [base64.b64encode(ca).decode("ascii") for ca in spec.root_cas],
            "digest": spec.digest,
        }
    )


def _job_from_row(r: Any, blobs: tuple[Blob, ...]) -> PreheatJob:
    raw = json.loads(r[3])
    spec = PreheatSpec(
        type=PreheatType(r[1]),
        url=r[2],
        filter=raw.get("filter", ""),
        identifier=raw.get("identifier", ""),
        headers=tuple((str(k), str(v)) for k, v in raw.get("headers", [])),
        platform=raw.get("platform", ""),
        username=raw.get("username", ""),
        password=raw.get("password", ""),
        insecure=bool(raw.get("insecure", False)),
        root_cas=tuple(base64.b64decode(ca) for ca in raw.get("rootCAs", [])),
        digest=raw.get("digest", ""),
    )
    return PreheatJob(
        id=r[0],
        spec=spec,
        status=PreheatStatus(r[4]),
        created_at=r[5],
        deadline=r[6],
        finished_at=r[7],
        error_msg=r[8],
        blobs=blobs,
        expanded=bool(r[9]),
        manifest_digest=r[10],
        content_key=r[11],
        redirect_to=r[12],
        attempt=r[13],
    )
