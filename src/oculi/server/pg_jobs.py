"""The ingestion job queue in PostgreSQL, for server replicas sharing one ``PgStore``.

Same jobs, states and guarantees as ``oculi.server.jobs.JobQueue`` (which keeps them in SQLite
under one server's home), but every replica sees every job and any replica may run it:

- ``submit`` writes the job and its images (``oculi_job_items.data``) in one transaction, so an
  accepted upload is in the database before the client gets its job id;
- a worker *claims* the oldest runnable job with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
  writes its replica id and a lease (``lease_until``) on it; two replicas never claim the same
  job, and a claim is renewed by a heartbeat while the job runs;
- a replica that dies (even ``kill -9``) stops renewing: once its lease has run out another
  replica claims the job and carries on from the first image not marked done. Images of the
  chunk that was in flight are ingested again, which stores nothing twice (item ids are
  content hashes);
- marking images done is conditional on still owning the job, so a replica that lost its lease
  (a long pause) cannot overwrite the new owner's progress;
- a restart of the PostgreSQL server ends the queue's connection (``oculi.store.pg_store.
  PgConnection``): a lookup that meets it runs again on a new one; a change raises
  ``StoreUnavailableError`` (never run twice: it may have been committed), and the next call
  connects again. The worker logs it, backs off and carries on; its job is claimed again.

Footage and report jobs (``oculi.server.jobs.RunEachJob``) use the same claims (``PgLease``)
over their own tables, ``oculi_footage_jobs`` and ``oculi_report_jobs`` (``PgJobTable``); their
input files are rows of ``oculi_job_files``, so the replica that claims a job can read them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence

from oculi.core.errors import NotFoundError, StoreUnavailableError
from oculi.server.job_tables import COMMON_COLUMNS, Column, SqlJobTable, create_table_sql
from oculi.server.jobs import FINAL, JOB_ID_RE, PENDING, Job, JobWorker, RunChunk, claim_or_wait
from oculi.server.lanes import lower_thread_priority
from oculi.server.private import private_dir
from oculi.store.pg_store import PgConnection

log = logging.getLogger("oculi.server.jobs")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS oculi_jobs (
        id text PRIMARY KEY, collection text NOT NULL, state text NOT NULL, total integer NOT NULL,
        created double precision NOT NULL, started double precision, finished double precision, error text,
        key_id text, cancel_requested boolean NOT NULL DEFAULT false, owner text, lease_until double precision)""",
    "CREATE INDEX IF NOT EXISTS oculi_jobs_state ON oculi_jobs (state, created)",
    """CREATE TABLE IF NOT EXISTS oculi_job_items (
        job_id text NOT NULL REFERENCES oculi_jobs(id) ON DELETE CASCADE, idx integer NOT NULL, name text NOT NULL,
        state text NOT NULL DEFAULT 'pending', error text, data bytea, PRIMARY KEY (job_id, idx))""",
)


class PgLease:
    """Claims on the rows of one job table (``state``, ``created``, ``started``, ``owner``,
    ``lease_until``) by this replica, over the connection ``db`` (a ``PgConnection``) guarded by ``lock``.

    ``claim`` takes the oldest job that is queued, or running under a lease that ran out (its
    replica died) or was released (its replica stopped), with ``FOR UPDATE SKIP LOCKED``: two
    replicas never claim the same job. ``hold`` renews the lease every third of ``lease_s``
    while the job runs.
    """

    def __init__(self, db: Any, lock: threading.Lock, table: str, lease_s: float) -> None:
        self.db, self.lock, self.table, self.lease_s = db, lock, table, float(lease_s)
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"  # who holds a job, for operators

    def claim(self) -> str | None:
        now = time.time()
        with self.lock, self.db.transaction() as cur:
            cur.execute(f"SELECT id FROM {self.table} WHERE state IN ('queued','running') "
                        "AND (lease_until IS NULL OR lease_until < %s) ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED", (now,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(f"UPDATE {self.table} SET state='running', owner=%s, lease_until=%s, started=COALESCE(started, %s) "
                        "WHERE id=%s", (self.replica, now + self.lease_s, now, row[0]))
            return row[0]

    def renew(self, job_id: str) -> bool:
        """Extend this replica's lease; False when the job is no longer ours."""
        with self.lock:
            cur = self.db.execute(f"UPDATE {self.table} SET lease_until=%s WHERE id=%s AND owner=%s AND state='running'",
                                  (time.time() + self.lease_s, job_id, self.replica))
        return cur.rowcount == 1

    def release(self, job_id: str) -> None:
        """This replica stops with the job unfinished: any replica may claim it at once."""
        with self.lock:
            self.db.execute(f"UPDATE {self.table} SET lease_until=NULL WHERE id=%s AND owner=%s", (job_id, self.replica))

    @contextlib.contextmanager
    def hold(self, job_id: str) -> Iterator[threading.Event]:
        """Renew the lease while the body runs; the event is set once the job is no longer ours."""
        done, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    if not self.renew(job_id):
                        lost.set()
                        return
                except Exception:  # noqa: BLE001 - the database is away: the next beat tries again
                    log.debug("lease renewal failed", exc_info=True)

        t = threading.Thread(target=beat, name=f"oculi-lease-{self.table}", daemon=True)
        t.start()
        try:
            yield lost
        finally:
            done.set()


class PgJobQueue(JobWorker):
    """Jobs of every replica sharing ``store`` (a ``PgStore``). ``start()`` launches this
    replica's worker."""

    def __init__(self, store: Any, run_chunk: RunChunk, *, chunk: int = 8, nice: int = 0, lease_s: float = 30.0) -> None:
        self.store = store
        self.run_chunk = run_chunk
        self.chunk = max(1, int(chunk))
        self.nice = nice
        self._lock = threading.Lock()
        self._db = PgConnection(store.connect, store.url)
        with self._db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4242)")
            for ddl in _SCHEMA:
                cur.execute(ddl)
        self._lease = PgLease(self._db, self._lock, "oculi_jobs", lease_s)
        self.replica = self._lease.replica
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: str | None = None
        self._live: dict[str, int] = {}

    def set_live(self, n: int) -> None:
        if self.current is not None:
            self._live[self.current] = max(0, int(n))

    def _x(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, args)

    # --- client side -------------------------------------------------------------------------
    def submit(self, collection: str, items: Sequence[tuple[str, bytes]], *, key_id: str | None = None) -> Job:
        job_id = secrets.token_hex(8)
        with self._lock, self._db.transaction() as cur:
            cur.execute("INSERT INTO oculi_jobs (id, collection, state, total, created, key_id) VALUES (%s,%s,'queued',%s,%s,%s)",
                        (job_id, collection, len(items), time.time(), key_id))
            cur.executemany("INSERT INTO oculi_job_items (job_id, idx, name, data) VALUES (%s,%s,%s,%s)",
                            [(job_id, i, name, bytes(data)) for i, (name, data) in enumerate(items)])
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            raise NotFoundError(f"no job {job_id!r}")
        with self._lock:
            row = self._db.execute(
                "SELECT id, collection, state, total, created, started, finished, error, key_id, cancel_requested "
                "FROM oculi_jobs WHERE id=%s", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id!r}")
            counts = dict(self._db.execute("SELECT state, count(*) FROM oculi_job_items WHERE job_id=%s GROUP BY state",
                                           (job_id,)).fetchall())
            errs = self._db.execute("SELECT name, error FROM oculi_job_items WHERE job_id=%s AND state='failed' ORDER BY idx LIMIT 20",
                                    (job_id,)).fetchall()
        return Job(
            id=row[0], collection=row[1], state=row[2], total=row[3], done=counts.get("done", 0),
            failed=counts.get("failed", 0), created=row[4], started=row[5], finished=row[6], error=row[7],
            key_id=row[8], cancel_requested=bool(row[9]), errors=tuple({"name": n, "error": e or ""} for n, e in errs),
            in_flight=self._live.get(job_id, 0) if row[2] == "running" else 0,
        )

    def list(self, *, collection: str | None = None, limit: int = 50) -> list[Job]:
        if collection is None:
            rows = self._x("SELECT id FROM oculi_jobs ORDER BY created DESC LIMIT %s", (int(limit),)).fetchall()
        else:
            rows = self._x("SELECT id FROM oculi_jobs WHERE collection=%s ORDER BY created DESC LIMIT %s",
                           (collection, int(limit))).fetchall()
        return [self.get(r[0]) for r in rows]

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in FINAL:
            return job
        self._x("UPDATE oculi_jobs SET cancel_requested=true WHERE id=%s", (job_id,))
        if job.state == "queued":
            self._finish(job_id, "cancelled", None, only_state="queued")
        self._wake.set()
        return self.get(job_id)

    def counts(self) -> dict[str, int]:
        return dict(self._x("SELECT state, count(*) FROM oculi_jobs GROUP BY state").fetchall())

    def _cancelled(self, job_id: str) -> bool:
        row = self._x("SELECT cancel_requested FROM oculi_jobs WHERE id=%s", (job_id,)).fetchone()
        return bool(row and row[0])

    # --- worker ------------------------------------------------------------------------------
    def _loop(self) -> None:
        lower_thread_priority(self.nice)
        while not self._stop.is_set():
            job_id = claim_or_wait(self._lease.claim, self._wake, "job", store_retry_s=self.store_retry_s)
            if job_id is None:
                continue
            try:
                with self._lease.hold(job_id):
                    self._run(job_id)
            except StoreUnavailableError as e:  # nothing is dropped: the job waits (here or on another replica)
                log.warning("job %s waits for the store: %s", job_id, e)
                with contextlib.suppress(Exception):
                    self._x("UPDATE oculi_jobs SET lease_until=NULL, error=%s WHERE id=%s AND owner=%s",
                            (f"waiting for the store: {e}", job_id, self.replica))
                self._stop.wait(self.store_retry_s)
            except Exception as e:
                log.exception("job %s failed", job_id)
                try:
                    self._finish(job_id, "failed", f"{type(e).__name__}: {e}")
                except StoreUnavailableError as e2:  # its lease runs out and the job is claimed again
                    log.warning("job %s: could not record its failure: %s", job_id, e2)
                    self._stop.wait(self.store_retry_s)
            finally:
                self._live.pop(job_id, None)
                self.current = None

    def _run(self, job_id: str) -> None:
        self.current = job_id
        collection = self._x("SELECT collection FROM oculi_jobs WHERE id=%s", (job_id,)).fetchone()[0]
        should_stop = lambda: self._stop.is_set() or self._cancelled(job_id)  # noqa: E731
        while True:
            if self._stop.is_set():
                self._lease.release(job_id)
                return  # resumable: another replica (or this one, restarted) picks it up at once
            if self._cancelled(job_id):  # also a job whose cancel came while its replica was down
                self._finish(job_id, "cancelled", None)
                return
            if not self._lease.renew(job_id):
                log.warning("job %s: lease lost to another replica", job_id)
                return
            rows = self._x("SELECT idx, name, data FROM oculi_job_items WHERE job_id=%s AND state='pending' ORDER BY idx LIMIT %s",
                           (job_id, self.chunk)).fetchall()
            if not rows:
                self._finish(job_id, "done", None)
                return
            batch = [(name, bytes(data)) for _, name, data in rows if data is not None]
            idxs = [idx for idx, _, data in rows if data is not None]
            missing = [idx for idx, _, data in rows if data is None]
            results: Sequence[Any] = self.run_chunk(collection, batch, should_stop) if batch else []
            if len(results) != len(batch):
                raise RuntimeError(f"ingestion returned {len(results)} results for {len(batch)} images")
            if batch and all(r is PENDING for r in results) and not should_stop():
                raise RuntimeError("ingestion made no progress")
            with self._lock, self._db.transaction() as cur:
                cur.execute("SELECT owner FROM oculi_jobs WHERE id=%s FOR UPDATE", (job_id,))
                if cur.fetchone()[0] != self.replica:
                    return
                cur.executemany(
                    "UPDATE oculi_job_items SET state=%s, error=%s, data=NULL WHERE job_id=%s AND idx=%s",
                    [("failed" if err else "done", err, job_id, idx) for idx, err in zip(idxs, results) if err is not PENDING],
                )
                cur.executemany("UPDATE oculi_job_items SET state='failed', error='spooled upload is missing' "
                                "WHERE job_id=%s AND idx=%s", [(job_id, idx) for idx in missing])
            self._live.pop(job_id, None)

    def _finish(self, job_id: str, state: str, error: str | None, *, only_state: str | None = None) -> None:
        with self._lock, self._db.transaction() as cur:
            if state == "cancelled":
                cur.execute("UPDATE oculi_job_items SET state='skipped' WHERE job_id=%s AND state='pending'", (job_id,))
            cur.execute("UPDATE oculi_job_items SET data=NULL WHERE job_id=%s", (job_id,))
            cur.execute("UPDATE oculi_jobs SET state=%s, finished=%s, error=%s, lease_until=NULL WHERE id=%s"
                        + (" AND state=%s" if only_state else ""),
                        (state, time.time(), error, job_id, *((only_state,) if only_state else ())))


_FILES_DDL = ("CREATE TABLE IF NOT EXISTS oculi_job_files (job_id text NOT NULL, name text NOT NULL, data bytea NOT NULL, "
              "PRIMARY KEY (job_id, name))")


class PgJobTable(SqlJobTable):
    """The jobs of one kind (``oculi_<kind>_jobs``) for every replica sharing ``store``; the
    ``JobTable`` of a footage or report queue over PostgreSQL (see ``oculi.server.job_tables``).

    Claims are ``PgLease``'s; an ``owned`` update applies only while this replica holds the
    job, so a replica that lost its lease cannot finish a job another one now runs. A job's
    files are rows of ``oculi_job_files``, copied into ``files_root/<job id>/`` on the replica
    that reads them.
    """

    shared = True
    _ph = "%s"
    _after = "OFFSET"

    def __init__(self, store: Any, kind: str, columns: Sequence[Column], *, lease_s: float = 30.0,
                 files_root: Path | None = None) -> None:
        self.table = f"oculi_{kind}_jobs"
        self.files_root = files_root
        self._names = frozenset(c.name for c in (*COMMON_COLUMNS, *columns))
        self._lock = threading.Lock()
        self._db = PgConnection(store.connect, store.url)
        with self._db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4242)")  # replicas starting together create it once
            cur.execute(create_table_sql(self.table, columns, 1, ("owner text", "lease_until double precision")))
            cur.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_state ON {self.table} (state, created)")
            cur.execute(_FILES_DDL)
        self._lease = PgLease(self._db, self._lock, self.table, lease_s)

    def claim(self) -> str | None:
        return self._lease.claim()

    def hold(self, job_id: str) -> Any:
        return self._lease.hold(job_id)

    def release(self, job_id: str) -> None:
        self._lease.release(job_id)

    def _owned(self, sql: str, args: list[Any]) -> tuple[str, list[Any]]:
        return sql + " AND owner=?", [*args, self._lease.replica]

    # --- files: rows, copied to a folder of this machine to be read ---------------------------
    def put_files(self, job_id: str, files: dict[str, bytes]) -> None:
        with self._lock, self._db.transaction() as cur:
            cur.executemany("INSERT INTO oculi_job_files (job_id, name, data) VALUES (%s,%s,%s) "
                            "ON CONFLICT (job_id, name) DO UPDATE SET data=EXCLUDED.data",
                            [(job_id, name, bytes(data)) for name, data in files.items()])

    def pull_files(self, job_id: str) -> Path:
        folder = self.folder(job_id)
        names = [r[0] for r in self._x("SELECT name FROM oculi_job_files WHERE job_id=?", (job_id,)).fetchall()]
        for name in names:
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"job file name {name!r} is not inside the job's folder")
            dest = folder / rel
            if not dest.is_file():
                row = self._x("SELECT data FROM oculi_job_files WHERE job_id=? AND name=?", (job_id, name)).fetchone()
                if row is None:  # dropped meanwhile
                    continue
                private_dir(dest.parent)
                tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
                tmp.write_bytes(bytes(row[0]))
                tmp.replace(dest)
        return folder

    def push_files(self, job_id: str, names: Sequence[str]) -> None:
        self.put_files(job_id, {n: (self.folder(job_id) / n).read_bytes() for n in names})

    def drop_files(self, job_id: str, prefix: str = "") -> None:
        self._x("DELETE FROM oculi_job_files WHERE job_id=? AND starts_with(name, ?)", (job_id, prefix))
        shutil.rmtree(self.folder(job_id) / prefix if prefix else self.folder(job_id), ignore_errors=True)
