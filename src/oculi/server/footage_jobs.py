"""Footage jobs: each one watches one video (uploaded, or a path/stream registered by an admin).

A job is a row written before the client gets its id: in ``<home>/server/footage_jobs.db``
(SQLite, WAL) with the embedded store, in the ``oculi_footage_jobs`` table with a PostgreSQL
store, where every replica lists every job and the free one claims it with a lease
(``oculi.server.job_tables``). One worker thread per server runs jobs one at a time with
``watch_source``. Progress is the footage seconds processed. Because ``watch_source``
checkpoints into the store and resumes from its last checkpoint, a job that was running when
its server died simply runs again (at the next start, or on another replica once the lease has
run out) and carries on where the footage was, with no duplicate events. Uploaded videos are
kept in the collection's blob store (``videos/<sha256>.<ext>``); the job records the blob key
(``blob:videos/...``), so whichever replica claims it reads the video from the store.

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

from oculi.server.job_tables import Column, job_table
from oculi.server.jobs import RunEachJob

log = logging.getLogger("oculi.server.footage_jobs")

SCHEMA_VERSION = 1
FINAL = ("done", "failed", "cancelled")
UPLOAD_PREFIX = "blob:"
"""A job's ``source`` for an uploaded video: ``blob:<key>`` in the collection's blob store."""
COLUMNS = (Column("collection", "text", True), Column("source", "text", True), Column("camera", "text", True),
           Column("options", "text", True), Column("footage_seconds", "real", True, 0), Column("duration", "real"))

# run(job, should_stop, progress) -> result dict (the watch report) ; raises on failure
RunJob = Callable[["FootageJob", Callable[[], bool], Callable[[float, float | None], None]], dict[str, Any]]


@dataclass(frozen=True)
class FootageJob:
    id: str
    collection: str
    state: str
    source: str  # what is watched: a server path, a stream URL (credentials removed when shown), or blob:<key> (an upload)
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
    """Footage jobs of one oculi home, or of every replica sharing ``store`` when it is a
    PostgreSQL store; ``start()`` launches the worker and resumes unfinished jobs.

    Args:
        home: This server's oculi home.
        run: Watches one job: ``run(job, should_stop, progress) -> result``.
        store: The collection store; a PostgreSQL one keeps the jobs in its database.
        lease_s: With PostgreSQL, how long a claim lasts without renewal.
    """

    job_label = "footage job"
    thread_name = "oculi-footage-jobs"

    def __init__(self, home: Path, run: RunJob, *, store: Any = None, lease_s: float = 30.0) -> None:
        self.run = run
        self._rows = job_table(home, "footage", COLUMNS, store=store, lease_s=lease_s, schema_version=SCHEMA_VERSION)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _job(self, row: dict[str, Any]) -> FootageJob:
        return FootageJob(row["id"], row["collection"], row["state"], row["source"], row["camera"], json.loads(row["options"]),
                          row["created"], row["started"], row["finished"], row["error"], row["key_id"],
                          bool(row["cancel_requested"]), row["footage_seconds"] or 0.0, row["duration"],
                          json.loads(row["result"]) if row["result"] else None)

    def submit(self, collection: str, source: str, camera: str, options: dict[str, Any], *, key_id: str | None = None) -> FootageJob:
        """Record a job watching ``source`` (a server path, a stream URL, or ``blob:<key>``)."""
        job_id = secrets.token_hex(8)
        self._rows.insert({"id": job_id, "collection": collection, "state": "queued", "source": source, "camera": camera,
                           "options": json.dumps(options), "created": time.time(), "key_id": key_id})
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> FootageJob:
        return super().get(job_id)

    def list(self, *, collection: str | None = None, limit: int = 50) -> list[FootageJob]:
        rows = self._rows.list(limit=limit) if collection is None else self._rows.list(limit=limit, collection=collection)
        return [self._job(r) for r in rows]

    def cancel(self, job_id: str) -> FootageJob:
        return super().cancel(job_id)

    # --- worker ------------------------------------------------------------------------------
    def _run_one(self, job_id: str, lost: threading.Event) -> bool:
        job = self.get(job_id)
        last = [0.0]

        def progress(t: float, duration: float | None, job_id: str = job_id) -> None:
            if t - last[0] >= 1.0 or duration is not None and t >= duration:
                last[0] = t
                self._rows.update(job_id, {"footage_seconds": t, "duration": duration}, owned=True)

        stop = lambda job_id=job_id: self._stop.is_set() or lost.is_set() or self._cancelled(job_id)  # noqa: E731
        try:
            result = self.run(job, stop, progress)
        except Exception as e:  # the job fails; the worker goes on
            log.warning("footage job %s failed: %s", job_id, e)
            self._finish(job_id, "failed", f"{type(e).__name__}: {e}" if not str(e) else str(e), None)
            return True
        if self._stop.is_set() and result.get("interrupted"):
            return False  # stays 'running': resumed at the next start (or at once by another replica)
        state = "cancelled" if result.get("interrupted") else "done"  # lost to another replica: no longer ours to finish
        self._rows.update(job_id, {"footage_seconds": result.get("source", {}).get("processed_until") or last[0]}, owned=True)
        self._finish(job_id, state, None, result)
        return True
