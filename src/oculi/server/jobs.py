"""A persistent ingestion job queue: SQLite rows, spooled uploads, one worker thread.

An upload into a collection becomes a *job*: the image bytes are written to
``<home>/server/spool/<job_id>/<n>`` (names chosen here, never from the request) and a row per
image is recorded in ``<home>/server/jobs.db`` before the client gets its job id. One worker
thread ingests the images a chunk at a time and marks each image done or failed as soon as its
chunk is stored, so progress is exact and survives a crash: when the server starts again,
jobs that were queued or running carry on from their first image not yet marked done, and
nothing that was accepted is lost. A finished or cancelled job's spool is deleted.

States: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from oculi.core.errors import NotFoundError, StoreUnavailableError
from oculi.server.lanes import lower_thread_priority
from oculi.server.private import connect_private, private_dir

log = logging.getLogger("oculi.server.jobs")

SCHEMA_VERSION = 1
JOB_ID_RE = re.compile(r"^[0-9a-f]{16}$")
FINAL = ("done", "failed", "cancelled")


def claim_or_wait(claim: Callable[[], str | None], wake: threading.Event, what: str, *,
                  store_retry_s: float = 1.0) -> str | None:
    """The next job a worker loop should run, or None after waiting up to a second for a wake-up
    (nothing to run, or the database is away: logged, and the loop tries again; a store that
    cannot be reached, a restarting PostgreSQL, is waited for ``store_retry_s``)."""
    wait = 1.0
    try:
        job_id = claim()
    except StoreUnavailableError as e:  # the store is away (a restart): one line, a longer wait
        log.warning("cannot claim a %s: %s; trying again in %g s", what, e, store_retry_s)
        job_id, wait = None, max(wait, store_retry_s)
    except Exception:  # noqa: BLE001 - the database is away: try again
        log.warning("cannot claim a %s", what, exc_info=True)
        job_id = None
    if job_id is None:
        wake.wait(wait)
        wake.clear()
    return job_id

class _Pending:
    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()
"""A ``run_chunk`` result for an image it did not get to (stopped early): it stays pending."""

# run_chunk(collection, [(name, bytes)], should_stop) -> per item: None (stored), an error
# message, or PENDING (not processed; tried again later)
RunChunk = Callable[[str, list[tuple[str, bytes]], Callable[[], bool]], Sequence[Any]]


@dataclass(frozen=True)
class Job:
    id: str
    collection: str
    state: str
    total: int
    done: int
    failed: int
    created: float
    started: float | None
    finished: float | None
    error: str | None
    key_id: str | None
    cancel_requested: bool
    errors: tuple[dict[str, str], ...] = ()
    in_flight: int = 0  # images of the chunk being ingested that are already processed (not yet committed)

    @property
    def progress(self) -> float:
        if self.total == 0:
            return 1.0
        return min(1.0, (self.done + self.failed + self.in_flight) / self.total)

    def to_dict(self) -> dict[str, Any]:
        elapsed = None
        if self.started:
            elapsed = (self.finished or time.time()) - self.started
        return {
            "id": self.id,
            "collection": self.collection,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "progress": round(self.progress, 4),
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "elapsed_s": None if elapsed is None else round(elapsed, 3),
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "errors": list(self.errors),
        }


def safe_item_name(name: str | None, index: int, fmt: str | None = None) -> str:
    """The name an uploaded image is recorded under: a bare file name, no directories.

    ``../../etc/passwd`` becomes ``passwd``; control characters and anything outside
    ``[A-Za-z0-9._ -]`` become ``_``; an empty result becomes ``upload-<n>.<fmt>``.
    """
    base = (name or "").replace("\\", "/").split("/")[-1]
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")[:200]
    if not base or set(base) <= {"_", "."}:
        base = f"upload-{index}.{fmt or 'img'}"
    return base


class JobWorker:
    """One worker thread over a ``jobs`` table (with ``state`` and ``cancel_requested``):
    start / stop / close, counts by state, the cancel check. A queue sets ``_wake``, ``_stop``
    and ``_thread`` (and ``_db``, ``_lock`` unless it overrides ``close``, ``counts`` and
    ``_cancelled``, as ``RunEachJob`` does) and implements ``_loop``; ``_before_start`` runs first."""

    thread_name = "oculi-jobs"
    #: A job whose store (a bucket, a database) cannot be reached is not failed: it waits this
    #: long and tries again, its uploads kept.
    store_retry_s = 5.0
    _db: sqlite3.Connection
    _lock: threading.Lock
    _wake: threading.Event
    _stop: threading.Event
    _thread: threading.Thread | None

    def _loop(self) -> None:  # pragma: no cover - every queue has its own
        raise NotImplementedError

    def _before_start(self) -> None:
        """Called once before the worker starts."""

    def start(self) -> None:
        """Start the worker; unfinished jobs (queued, or running when the server died) resume."""
        if self._thread is not None:
            return
        self._before_start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop at the next safe point; an unfinished job stays resumable."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._db.close()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def _cancelled(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row[0])


class RunEachJob(JobWorker):
    """A ``JobWorker`` whose jobs run whole, one at a time, oldest first (footage and report jobs).

    The jobs are rows of a ``JobTable`` (``oculi.server.job_tables``): a SQLite file of this
    server for the embedded store, or a table of a PostgreSQL store that every replica shares
    (any replica lists every job; the free one claims the next with a lease). The worker claims
    the next queued or interrupted job, hands it to ``_run_one`` while holding the claim, and
    ``_finish`` records the end state, only while the claim is still this worker's.
    """

    job_label = "job"  # in "no footage job 'x'"
    _rows: Any  # the JobTable

    def _job(self, row: dict[str, Any]) -> Any:  # pragma: no cover - every queue has its own
        raise NotImplementedError

    def get(self, job_id: str) -> Any:
        """The job ``job_id``. Raises ``NotFoundError`` (also for an id of the wrong shape)."""
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            raise NotFoundError(f"no {self.job_label} {job_id!r}")
        row = self._rows.get(job_id)
        if row is None:
            raise NotFoundError(f"no {self.job_label} {job_id!r}")
        return self._job(row)

    def counts(self) -> dict[str, int]:
        return self._rows.counts()

    def _cancelled(self, job_id: str) -> bool:
        row = self._rows.get(job_id)
        return bool(row and row["cancel_requested"])

    def close(self) -> None:
        self.stop()
        self._rows.close()

    def cancel(self, job_id: str) -> Any:
        """Ask the job to stop: a queued job is cancelled at once, a running one when its run returns."""
        job = self.get(job_id)
        if job.state not in FINAL:
            self._rows.update(job_id, {"cancel_requested": True})
            if job.state == "queued":
                self._finish(job_id, "cancelled", None, None, only_state="queued")
        self._wake.set()
        return self.get(job_id)

    def _run_one(self, job_id: str, lost: threading.Event) -> bool:  # pragma: no cover - every queue has its own
        """Run one claimed job to its end; False when the worker must stop (the job stays
        resumable). ``lost`` is set when another replica took the job over (a lapsed lease)."""
        raise NotImplementedError

    def _finish(self, job_id: str, state: str, error: str | None, result: dict[str, Any] | None, *,
                only_state: str | None = None) -> bool:
        """Record the job's end: by the worker holding it, or (``only_state``) while it is in that state."""
        return self._rows.update(job_id, {"state": state, "finished": time.time(), "error": error,
                                          "result": json.dumps(result) if result is not None else None},
                                 owned=only_state is None, only_state=only_state)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job_id = claim_or_wait(self._rows.claim, self._wake, self.job_label, store_retry_s=self.store_retry_s)
            if job_id is None:
                continue
            try:
                with self._rows.hold(job_id) as lost:
                    if self._cancelled(job_id):  # cancelled while its worker was down
                        self._finish(job_id, "cancelled", None, None)
                        continue
                    if not self._run_one(job_id, lost):
                        self._rows.release(job_id)
                        return
            except Exception:  # noqa: BLE001 - its end could not be recorded (the database went away): it runs again
                log.exception("%s %s: could not record its state; it will run again", self.job_label, job_id)
                self._wake.wait(1.0)


class JobQueue(JobWorker):
    """Jobs of one oculi home. ``start()`` launches the worker (and resumes unfinished jobs)."""

    def __init__(self, home: Path, run_chunk: RunChunk, *, chunk: int = 8, nice: int = 0) -> None:
        self.root = Path(home) / "server"
        self.spool = private_dir(self.root / "spool")
        self.run_chunk = run_chunk
        self.chunk = max(1, int(chunk))
        self.nice = nice  # the worker's priority below the server's light lane (oculi.server.lanes)
        self._lock = threading.Lock()
        self._db = connect_private(self.root / "jobs.db", check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._init()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: str | None = None
        self._live: dict[str, int] = {}

    def set_live(self, n: int) -> None:
        """Called from inside ``run_chunk``: images of the current chunk processed so far."""
        if self.current is not None:
            self._live[self.current] = max(0, int(n))

    def _init(self) -> None:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS jobs (
                    id TEXT PRIMARY KEY, collection TEXT NOT NULL, state TEXT NOT NULL,
                    total INTEGER NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
                    error TEXT, key_id TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0)"""
            )
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS job_items (
                    job_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending', error TEXT,
                    PRIMARY KEY (job_id, idx))"""
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # --- client side -------------------------------------------------------------------------
    def submit(self, collection: str, items: Sequence[tuple[str, bytes]], *, key_id: str | None = None) -> Job:
        """Spool the images, record the job, wake the worker. Returns the queued job."""
        job_id = secrets.token_hex(8)
        d = self.spool / job_id
        d.mkdir(parents=True)
        try:
            for i, (_, data) in enumerate(items):
                (d / f"{i}.bin").write_bytes(data)
            now = time.time()
            with self._lock:
                self._db.execute("BEGIN")
                try:
                    self._db.execute(
                        "INSERT INTO jobs (id, collection, state, total, created, key_id) VALUES (?,?,?,?,?,?)",
                        (job_id, collection, "queued", len(items), now, key_id),
                    )
                    self._db.executemany(
                        "INSERT INTO job_items (job_id, idx, name) VALUES (?,?,?)",
                        [(job_id, i, name) for i, (name, _) in enumerate(items)],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            raise NotFoundError(f"no job {job_id!r}")
        with self._lock:
            row = self._db.execute(
                "SELECT id, collection, state, total, created, started, finished, error, key_id, cancel_requested FROM jobs WHERE id=?",
                (job_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id!r}")
            counts = dict(self._db.execute("SELECT state, COUNT(*) FROM job_items WHERE job_id=? GROUP BY state", (job_id,)).fetchall())
            errs = self._db.execute(
                "SELECT name, error FROM job_items WHERE job_id=? AND state='failed' ORDER BY idx LIMIT 20", (job_id,)
            ).fetchall()
        return self._job(row, counts, errs, self._live.get(job_id, 0) if row[2] == "running" else 0)

    @staticmethod
    def _job(row: tuple, counts: dict[str, int], errs: list[tuple[str, str]], in_flight: int = 0) -> Job:
        return Job(
            id=row[0], collection=row[1], state=row[2], total=row[3], done=counts.get("done", 0),
            failed=counts.get("failed", 0), created=row[4], started=row[5], finished=row[6], error=row[7],
            key_id=row[8], cancel_requested=bool(row[9]),
            errors=tuple({"name": n, "error": e or ""} for n, e in errs), in_flight=in_flight,
        )

    def list(self, *, collection: str | None = None, limit: int = 50) -> list[Job]:
        q = "SELECT id FROM jobs"
        args: tuple = ()
        if collection is not None:
            q += " WHERE collection=?"
            args = (collection,)
        with self._lock:
            ids = [r[0] for r in self._db.execute(q + " ORDER BY created DESC LIMIT ?", args + (int(limit),)).fetchall()]
        return [self.get(i) for i in ids]

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in FINAL:
            return job
        with self._lock:
            self._db.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
            if job.state == "queued":
                self._finish_locked(job_id, "cancelled", None)
        self._wake.set()
        return self.get(job_id)

    # --- worker ------------------------------------------------------------------------------
    def _before_start(self) -> None:
        self._clean_orphans()

    def _clean_orphans(self) -> None:
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state IN ('queued','running')").fetchall()}
        for d in self.spool.iterdir():
            if d.is_dir() and d.name not in known:
                shutil.rmtree(d, ignore_errors=True)

    def _next_job(self) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM jobs WHERE state IN ('running','queued') AND cancel_requested=0 ORDER BY created LIMIT 1"
            ).fetchone()
            # a cancel that arrived while a job was running but the process died: finish it
            for (jid,) in self._db.execute("SELECT id FROM jobs WHERE state='running' AND cancel_requested=1").fetchall():
                self._finish_locked(jid, "cancelled", None)
        return row[0] if row else None

    def _loop(self) -> None:
        lower_thread_priority(self.nice)  # ingestion is image work: searches go first
        while not self._stop.is_set():
            job_id = self._next_job()
            if job_id is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(job_id)
            except StoreUnavailableError as e:  # nothing is dropped: the job waits for the store
                log.warning("job %s waits for the store: %s", job_id, e)
                with self._lock:
                    self._db.execute("UPDATE jobs SET error=? WHERE id=?", (f"waiting for the store: {e}", job_id))
                self._stop.wait(self.store_retry_s)
            except Exception as e:  # the job fails, the worker goes on
                log.exception("job %s failed", job_id)
                with self._lock:
                    self._finish_locked(job_id, "failed", f"{type(e).__name__}: {e}")
            finally:
                self._live.pop(job_id, None)
                self.current = None

    def _run(self, job_id: str) -> None:
        self.current = job_id
        with self._lock:
            self._db.execute("UPDATE jobs SET state='running', started=COALESCE(started, ?) WHERE id=?", (time.time(), job_id))
            collection = self._db.execute("SELECT collection FROM jobs WHERE id=?", (job_id,)).fetchone()[0]
        d = self.spool / job_id
        should_stop = lambda: self._stop.is_set() or self._cancelled(job_id)  # noqa: E731
        while True:
            if self._stop.is_set():
                return  # resumable: stays 'running', picked up at next start
            if self._cancelled(job_id):
                with self._lock:
                    self._finish_locked(job_id, "cancelled", None)
                return
            with self._lock:
                rows = self._db.execute(
                    "SELECT idx, name FROM job_items WHERE job_id=? AND state='pending' ORDER BY idx LIMIT ?",
                    (job_id, self.chunk),
                ).fetchall()
            if not rows:
                with self._lock:
                    self._finish_locked(job_id, "done", None)
                return
            batch: list[tuple[str, bytes]] = []
            idxs: list[int] = []
            missing: list[int] = []
            for idx, name in rows:
                try:
                    batch.append((name, (d / f"{int(idx)}.bin").read_bytes()))
                    idxs.append(idx)
                except OSError:
                    missing.append(idx)
            results: Sequence[Any] = self.run_chunk(collection, batch, should_stop) if batch else []
            if len(results) != len(batch):
                raise RuntimeError(f"ingestion returned {len(results)} results for {len(batch)} images")
            if batch and all(r is PENDING for r in results) and not should_stop():
                raise RuntimeError("ingestion made no progress")
            with self._lock:
                self._db.execute("BEGIN")
                for idx, err in zip(idxs, results):
                    if err is PENDING:
                        continue
                    self._db.execute(
                        "UPDATE job_items SET state=?, error=? WHERE job_id=? AND idx=?",
                        ("failed" if err else "done", err, job_id, idx),
                    )
                for idx in missing:
                    self._db.execute(
                        "UPDATE job_items SET state='failed', error='spooled upload is missing' WHERE job_id=? AND idx=?",
                        (job_id, idx),
                    )
                self._db.execute("COMMIT")
            self._live.pop(job_id, None)
            for idx, err in zip(idxs, results):
                if err is not PENDING:
                    (d / f"{int(idx)}.bin").unlink(missing_ok=True)

    def _finish_locked(self, job_id: str, state: str, error: str | None) -> None:
        if state == "cancelled":
            self._db.execute("UPDATE job_items SET state='skipped' WHERE job_id=? AND state='pending'", (job_id,))
        self._db.execute("UPDATE jobs SET state=?, finished=?, error=? WHERE id=?", (state, time.time(), error, job_id))
        shutil.rmtree(self.spool / job_id, ignore_errors=True)
