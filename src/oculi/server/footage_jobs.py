"""Footage jobs: each one watches one video (uploaded, or a path/stream registered by an admin).

A job is a row in ``<home>/server/footage_jobs.db`` (SQLite, WAL) written before the client
gets its id; one worker thread runs jobs one at a time with ``watch_source``. Progress is the
footage seconds processed. Because ``watch_source`` checkpoints into the store and resumes from
its last checkpoint, a job that was running when the server died simply runs again at the next
start and carries on where the footage was, with no duplicate events. Uploaded videos are kept
under the collection's ``blobs/videos/`` (named by content hash): the source's records point
at them.

States: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from oculi.server.jobs import RunEachJob
from oculi.server.private import connect_private, private_dir

log = logging.getLogger("oculi.server.footage_jobs")

SCHEMA_VERSION = 1
FINAL = ("done", "failed", "cancelled")

# run(job, should_stop, progress) -> result dict (the watch report) ; raises on failure
RunJob = Callable[["FootageJob", Callable[[], bool], Callable[[float, float | None], None]], dict[str, Any]]


@dataclass(frozen=True)
class FootageJob:
    id: str
    collection: str
    state: str
    source: str  # what is watched: a path (uploads: the stored blob) or a stream URL (credentials removed when shown)
    camera: str
    options: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    error: str | None
    key_id: str | None
    cancel_requested: bool
    footage_seconds: float = 0.0
    duration: float | None = None
    result: dict[str, Any] | None = None

    def to_dict(self, *, show_source: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "kind": "footage", "collection": self.collection, "state": self.state,
            "source": show_source if show_source is not None else self.source, "camera": self.camera,
            "options": self.options, "created": self.created, "started": self.started, "finished": self.finished,
            "error": self.error, "cancel_requested": self.cancel_requested,
            "footage_seconds": round(self.footage_seconds, 2), "duration": self.duration,
            "progress": (min(1.0, self.footage_seconds / self.duration) if self.duration else (1.0 if self.state == "done" else None)),
            "result": self.result,
        }


class FootageJobQueue(RunEachJob):
    """Footage jobs of one oculi home; ``start()`` launches the worker and resumes unfinished jobs."""

    job_label = "footage job"
    thread_name = "oculi-footage-jobs"

    def __init__(self, home: Path, run: RunJob) -> None:
        self.root = private_dir(Path(home) / "server")
        self.run = run
        self._lock = threading.Lock()
        # 0600 like the other server databases: jobs name the server paths and streams watched
        self._db = connect_private(self.root / "footage_jobs.db", check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS jobs (
                    id TEXT PRIMARY KEY, collection TEXT NOT NULL, state TEXT NOT NULL, source TEXT NOT NULL,
                    camera TEXT NOT NULL, options TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
                    error TEXT, key_id TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,
                    footage_seconds REAL NOT NULL DEFAULT 0, duration REAL, result TEXT)""")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    _COLS = ("id, collection, state, source, camera, options, created, started, finished, error, key_id, "
             "cancel_requested, footage_seconds, duration, result")

    def _job(self, row: tuple) -> FootageJob:
        return FootageJob(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8], row[9],
                          row[10], bool(row[11]), row[12] or 0.0, row[13], json.loads(row[14]) if row[14] else None)

    def submit(self, collection: str, source: str, camera: str, options: dict[str, Any], *, key_id: str | None = None) -> FootageJob:
        job_id = secrets.token_hex(8)
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, collection, state, source, camera, options, created, key_id) VALUES (?,?,?,?,?,?,?,?)",
                (job_id, collection, "queued", source, camera, json.dumps(options), time.time(), key_id))
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> FootageJob:
        return super().get(job_id)

    def list(self, *, collection: str | None = None, limit: int = 50) -> list[FootageJob]:
        q, args = f"SELECT {self._COLS} FROM jobs", ()
        if collection is not None:
            q, args = q + " WHERE collection=?", (collection,)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created DESC LIMIT ?", args + (int(limit),)).fetchall()
        return [self._job(r) for r in rows]

    def cancel(self, job_id: str) -> FootageJob:
        job = self.get(job_id)
        if job.state not in FINAL:
            with self._lock:
                self._db.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
                if job.state == "queued":
                    self._finish_locked(job_id, "cancelled", None, None)
        return self.get(job_id)

    # --- worker ------------------------------------------------------------------------------
    def _next(self) -> str | None:
        with self._lock:  # a running job whose cancel was asked for while the server was down
            for (jid,) in self._db.execute("SELECT id FROM jobs WHERE state='running' AND cancel_requested=1").fetchall():
                self._finish_locked(jid, "cancelled", None, None)
        return super()._next()

    def _run_one(self, job_id: str) -> bool:
        job = self.get(job_id)
        last = [0.0]

        def progress(t: float, duration: float | None, job_id: str = job_id) -> None:
            if t - last[0] >= 1.0 or duration is not None and t >= duration:
                last[0] = t
                with self._lock:
                    self._db.execute("UPDATE jobs SET footage_seconds=?, duration=? WHERE id=?", (t, duration, job_id))

        stop = lambda job_id=job_id: self._stop.is_set() or self._cancelled(job_id)  # noqa: E731
        try:
            result = self.run(job, stop, progress)
        except Exception as e:  # the job fails; the worker goes on
            log.warning("footage job %s failed: %s", job_id, e)
            with self._lock:
                self._finish_locked(job_id, "failed", f"{type(e).__name__}: {e}" if not str(e) else str(e), None)
            return True
        if self._stop.is_set() and result.get("interrupted"):
            return False  # stays 'running': resumed at the next start
        with self._lock:
            state = "cancelled" if result.get("interrupted") else "done"
            self._db.execute("UPDATE jobs SET footage_seconds=? WHERE id=?",
                             (result.get("source", {}).get("processed_until") or last[0], job_id))
            self._finish_locked(job_id, state, None, result)
        return True
