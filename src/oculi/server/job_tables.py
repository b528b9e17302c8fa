"""Where the rows of a run-each-job queue (footage and report jobs) live: SQLite or PostgreSQL.

``oculi.server.jobs.RunEachJob`` (a footage or report job queue) keeps its jobs in a
``JobTable``, picked from the store the server serves (``job_table``):

- the embedded store: ``SqliteJobTable``, a SQLite file under ``<home>/server/`` of this server,
  its input files in a folder beside it; one worker thread of this process runs the jobs;
- a PostgreSQL store: ``oculi.server.pg_jobs.PgJobTable``, a table in the store's database,
  input files in ``oculi_job_files``; every replica sharing the store lists every job, and the
  replica that is free claims the next one with ``FOR UPDATE SKIP LOCKED`` and a lease, like
  ingestion jobs (``oculi.server.pg_jobs``). A replica that dies stops renewing its lease and
  another claims the job.

Both are one set of columns (``Column``), declared once per job kind, and one set of
statements (``SqlJobTable``); the dialects differ only in placeholders, types and claiming.
Rows come back as dicts keyed by column name. Column names are the queue's constants, checked
against its declaration before they reach SQL; values always travel as parameters.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from oculi.server.private import connect_private, private_dir

FINAL = ("done", "failed", "cancelled")
_TYPES = {  # column type → (SQLite, PostgreSQL)
    "text": ("TEXT", "text"), "real": ("REAL", "double precision"), "int": ("INTEGER", "bigint"),
    "flag": ("INTEGER", "boolean"),
}
_NAME_RE = re.compile(r"^[a-z][a-z_]{0,40}$")


@dataclass(frozen=True)
class Column:
    """One column of a job table: ``type`` is text, real, int or flag (a boolean)."""

    name: str
    type: str
    not_null: bool = False
    default: Any = None

    def ddl(self, dialect: int) -> str:
        """The column's definition; ``dialect`` 0 is SQLite, 1 is PostgreSQL."""
        out = f"{self.name} {_TYPES[self.type][dialect]}"
        if self.not_null:
            out += " NOT NULL"
        if self.default is not None:
            d = self.default
            out += " DEFAULT " + (("true" if d else "false") if self.type == "flag" and dialect else str(int(d) if isinstance(d, bool) else d))
        return out


COMMON_COLUMNS = (
    Column("id", "text", True), Column("state", "text", True), Column("created", "real", True), Column("started", "real"),
    Column("finished", "real"), Column("error", "text"), Column("key_id", "text"),
    Column("cancel_requested", "flag", True, False), Column("result", "text"),
)
"""What every run-each-job table has; a kind adds its own (``oculi.server.footage_jobs``, ``report_jobs``)."""


def create_table_sql(table: str, columns: Sequence[Column], dialect: int, extra: Sequence[str] = ()) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``COMMON_COLUMNS`` + ``columns`` (+ ``extra`` definitions)."""
    defs = [c.ddl(dialect) + (" PRIMARY KEY" if c.name == "id" else "") for c in (*COMMON_COLUMNS, *columns)]
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join([*defs, *extra])})"


class SqlJobTable:
    """The statements both dialects share. A dialect sets ``table``, ``_ph`` (its placeholder),
    ``_after`` (how it says "all rows after an offset"), ``_db``, ``_lock`` and ``_names``."""

    table: str
    shared = False  # whether other replicas see (and may run) these jobs
    _ph = "?"
    _after = "LIMIT -1 OFFSET"
    _db: Any
    _lock: threading.Lock
    _names: frozenset[str]
    files_root: Path | None = None

    def _x(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql.replace("?", self._ph), tuple(args))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def folder(self, job_id: str) -> Path:
        """This machine's folder of a job's files (where they live, or where they are copied to be read)."""
        if self.files_root is None:
            raise RuntimeError(f"{self.table} keeps no files")
        return self.files_root / job_id

    def _check(self, names: Any) -> list[str]:
        names = list(names)
        bad = [n for n in names if n not in self._names]
        if bad:
            raise ValueError(f"{self.table} has no column {bad[0]!r}")
        return names

    def _dicts(self, cur: Any) -> list[dict[str, Any]]:
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def insert(self, values: dict[str, Any]) -> None:
        names = self._check(values)
        self._x(f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({', '.join(['?'] * len(names))})", list(values.values()))

    def get(self, job_id: str) -> dict[str, Any] | None:
        rows = self._dicts(self._x(f"SELECT * FROM {self.table} WHERE id=?", (job_id,)))
        return rows[0] if rows else None

    def list(self, *, limit: int = 50, **equal: Any) -> list[dict[str, Any]]:
        """Newest first; ``equal`` filters by column value."""
        names = self._check(equal)
        where = (" WHERE " + " AND ".join(f"{n}=?" for n in names)) if names else ""
        return self._dicts(self._x(f"SELECT * FROM {self.table}{where} ORDER BY created DESC LIMIT ?", [*equal.values(), int(limit)]))

    def update(self, job_id: str, values: dict[str, Any], *, owned: bool = False, only_state: str | None = None) -> bool:
        """Set ``values`` on the job; ``owned``: only while this replica holds its claim;
        ``only_state``: only while the job is in that state. Returns whether the job changed."""
        names = self._check(values)
        sql = f"UPDATE {self.table} SET {', '.join(f'{n}=?' for n in names)} WHERE id=?"
        args = [*values.values(), job_id]
        if only_state is not None:
            sql, args = sql + " AND state=?", [*args, only_state]
        if owned:
            sql, args = self._owned(sql, args)
        return self._x(sql, args).rowcount == 1

    def _owned(self, sql: str, args: list[Any]) -> tuple[str, list[Any]]:
        return sql, args  # one process: the worker always owns what it runs

    def counts(self) -> dict[str, int]:
        return dict(self._x(f"SELECT state, COUNT(*) FROM {self.table} GROUP BY state").fetchall())

    def prune(self, keep: int) -> list[str]:
        """Delete finished jobs beyond the ``keep`` newest; returns their ids (their files are the caller's)."""
        old = [r[0] for r in self._x(f"SELECT id FROM {self.table} WHERE state IN ('done','failed','cancelled') "
                                     f"ORDER BY created DESC {self._after} ?", (int(keep),)).fetchall()]
        for jid in old:
            self._x(f"DELETE FROM {self.table} WHERE id=?", (jid,))
        return old

    @contextlib.contextmanager
    def hold(self, job_id: str) -> Iterator[threading.Event]:
        """While a claimed job runs: yields an event set if the claim is lost (never, here)."""
        yield threading.Event()

    def release(self, job_id: str) -> None:
        """The worker stops with the job unfinished: it stays ``running`` and resumes at the next start."""


class SqliteJobTable(SqlJobTable):
    """A job table in a SQLite file of this server, with input files in ``files_root/<job id>/``."""

    def __init__(self, path: Path, columns: Sequence[Column], *, schema_version: int = 1, files_root: Path | None = None) -> None:
        self.table = "jobs"
        self.files_root = files_root
        self._names = frozenset(c.name for c in (*COMMON_COLUMNS, *columns))
        self._lock = threading.Lock()
        # 0600 like the other server databases: jobs name server paths, streams and uploads
        self._db = connect_private(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(create_table_sql("jobs", columns, 0))
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is not None and int(row[0]) > schema_version:
                raise RuntimeError(f"{path.name} has schema {row[0]}, newer than this oculi ({schema_version})")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(schema_version),))

    def claim(self) -> str | None:
        """The oldest job to run: queued, or left running (or cancelling) when the server stopped."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE state IN ('running','queued') ORDER BY created LIMIT 1").fetchone()
            if row is not None:
                self._db.execute("UPDATE jobs SET state='running', started=COALESCE(started, ?) WHERE id=?", (time.time(), row[0]))
        return row[0] if row else None

    # --- files: the folder is where they live --------------------------------------------------
    def put_files(self, job_id: str, files: dict[str, bytes]) -> None:
        """Keep a job's input files (``name`` may hold ``/``), before the job is recorded."""
        for name, data in files.items():
            p = self.folder(job_id) / name
            private_dir(p.parent)
            p.write_bytes(data)

    def pull_files(self, job_id: str) -> Path:
        """The folder holding the job's files on this machine."""
        return self.folder(job_id)

    def push_files(self, job_id: str, names: Sequence[str]) -> None:
        """Keep files the job wrote into its folder (its output), for whoever reads them."""

    def drop_files(self, job_id: str, prefix: str = "") -> None:
        """Delete the job's files under ``prefix`` (all of them without one)."""
        shutil.rmtree(self.folder(job_id) / prefix if prefix else self.folder(job_id), ignore_errors=True)


def is_shared_store(store: Any) -> bool:
    """Whether ``store`` is shared by server replicas (PostgreSQL): their jobs live in it too."""
    from oculi.store import parse_store_url

    return store is not None and parse_store_url(getattr(store, "url", ""))[0] == "postgresql"


def job_table(home: Path, kind: str, columns: Sequence[Column], *, store: Any = None, lease_s: float = 30.0,
              schema_version: int = 1, files: bool = False) -> Any:
    """The job table of ``kind`` (``footage``, ``report``) for a server over ``store``.

    Args:
        home: This server's oculi home (SQLite file, local copies of job files).
        kind: The job kind: ``<home>/server/<kind>_jobs.db`` or the ``oculi_<kind>_jobs`` table.
        columns: The kind's columns beyond ``COMMON_COLUMNS``.
        store: The collection store; a PostgreSQL store puts the jobs in its database.
        lease_s: With PostgreSQL, how long a claim holds without renewal.
        schema_version: The SQLite file's schema version (a newer one is refused).
        files: Whether jobs keep files (under ``<home>/server/<kind>s/<job id>/``).
    """
    if not _NAME_RE.fullmatch(kind):
        raise ValueError(f"bad job kind {kind!r}")
    root = private_dir(Path(home) / "server")
    files_root = private_dir(root / f"{kind}s") if files else None
    if is_shared_store(store):
        from oculi.server.pg_jobs import PgJobTable

        return PgJobTable(store, kind, columns, lease_s=lease_s, files_root=files_root)
    return SqliteJobTable(root / f"{kind}_jobs.db", columns, schema_version=schema_version, files_root=files_root)
