"""Report jobs: uploaded images (and records) → a report file to download.

A job is a row in ``<home>/server/report_jobs.db`` (SQLite, WAL) written after its inputs are
spooled to ``<home>/server/reports/<job_id>/in/`` (names chosen here, never from the request)
and before the client gets its id. One worker thread builds reports one at a time; the report
is written to ``<home>/server/reports/<job_id>/report.<ext>`` and the spooled inputs are then
deleted. A job that was running when the server died runs again at the next start (a report
is a pure function of its inputs). ``MAX_KEPT`` finished jobs are kept; older ones and their
files are removed.

States: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from oculi.server.jobs import RunEachJob
from oculi.server.private import connect_private, private_dir

log = logging.getLogger("oculi.server.report_jobs")

SCHEMA_VERSION = 1
FINAL = ("done", "failed", "cancelled")
MAX_KEPT = 200
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8", "json": "application/json",
               "md": "application/zip"}
EXTENSIONS = {"pdf": "pdf", "html": "html", "json": "json", "md": "zip"}

# run(job, folder, progress(done, total)) -> summary dict; writes folder/report.<ext>
RunReport = Callable[["ReportJob", Path, Callable[[int, int], None]], dict[str, Any]]


@dataclass(frozen=True)
class ReportJob:
    id: str
    state: str
    options: dict[str, Any]
    images: int
    created: float
    started: float | None
    finished: float | None
    error: str | None
    key_id: str | None
    cancel_requested: bool
    done: int = 0
    result: dict[str, Any] | None = None

    @property
    def format(self) -> str:
        return str(self.options.get("format", "pdf"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": "report", "state": self.state, "report_kind": self.options.get("kind"),
            "format": self.format, "images": self.images, "done": self.done,
            "progress": 1.0 if self.state == "done" else (self.done / self.images if self.images else None),
            "created": self.created, "started": self.started, "finished": self.finished, "error": self.error,
            "cancel_requested": self.cancel_requested, "result": self.result,
            "download": f"/api/v1/reports/{self.id}/file" if self.state == "done" else None,
        }


class ReportJobQueue(RunEachJob):
    """Report jobs of one oculi home; ``start()`` launches the worker and resumes unfinished jobs."""

    job_label = "report job"
    thread_name = "oculi-report-jobs"

    def __init__(self, home: Path, run: RunReport) -> None:
        self.root = private_dir(Path(home) / "server")
        self.spool = private_dir(self.root / "reports")
        self.run = run
        self._lock = threading.Lock()
        self._db = connect_private(self.root / "report_jobs.db", check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS jobs (
                    id TEXT PRIMARY KEY, state TEXT NOT NULL, options TEXT NOT NULL, images INTEGER NOT NULL,
                    created REAL NOT NULL, started REAL, finished REAL, error TEXT, key_id TEXT,
                    cancel_requested INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, result TEXT)""")
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(f"report_jobs.db has schema {row[0]}, newer than this oculi ({SCHEMA_VERSION})")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    _COLS = "id, state, options, images, created, started, finished, error, key_id, cancel_requested, done, result"

    def _job(self, row: tuple) -> ReportJob:
        return ReportJob(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6], row[7], row[8], bool(row[9]),
                         row[10] or 0, json.loads(row[11]) if row[11] else None)

    def folder(self, job_id: str) -> Path:
        return self.spool / job_id

    def submit(self, images: list[tuple[str, bytes]], records: tuple[str, bytes] | None, options: dict[str, Any], *,
               key_id: str | None = None) -> ReportJob:
        """Spool the inputs, then record the job (so an accepted job always has its inputs)."""
        job_id = secrets.token_hex(8)
        inbox = private_dir(self.folder(job_id) / "in")
        names = []
        for i, (name, data) in enumerate(images):
            p = private_dir(inbox / f"{i:04d}") / name  # its own folder: the report shows the uploaded name
            p.write_bytes(data)
            names.append(f"{i:04d}/{name}")
        opts = dict(options, image_files=names)
        if records is not None:
            rname = f"records{Path(records[0]).suffix.lower()}"
            (inbox / rname).write_bytes(records[1])
            opts["records_file"] = rname
        with self._lock:
            self._db.execute("INSERT INTO jobs (id, state, options, images, created, key_id) VALUES (?,?,?,?,?,?)",
                             (job_id, "queued", json.dumps(opts), len(images), time.time(), key_id))
        self._prune()
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> ReportJob:
        return super().get(job_id)

    def list(self, *, limit: int = 50) -> list[ReportJob]:
        with self._lock:
            rows = self._db.execute(f"SELECT {self._COLS} FROM jobs ORDER BY created DESC LIMIT ?", (int(limit),)).fetchall()
        return [self._job(r) for r in rows]

    def cancel(self, job_id: str) -> ReportJob:
        job = self.get(job_id)
        if job.state not in FINAL:
            with self._lock:
                self._db.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
                if job.state == "queued":
                    self._finish_locked(job_id, "cancelled", None, None)
        return self.get(job_id)

    def report_file(self, job: ReportJob) -> Path:
        return self.folder(job.id) / f"report.{EXTENSIONS.get(job.format, job.format)}"

    def _finish_locked(self, job_id: str, state: str, error: str | None, result: dict[str, Any] | None) -> None:
        super()._finish_locked(job_id, state, error, result)
        shutil.rmtree(self.folder(job_id) / "in", ignore_errors=True)
        if state != "done":
            shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def _prune(self) -> None:
        with self._lock:
            old = self._db.execute("SELECT id FROM jobs WHERE state IN ('done','failed','cancelled') ORDER BY created DESC "
                                   "LIMIT -1 OFFSET ?", (MAX_KEPT,)).fetchall()
            for (jid,) in old:
                self._db.execute("DELETE FROM jobs WHERE id=?", (jid,))
                shutil.rmtree(self.folder(jid), ignore_errors=True)

    # --- worker ------------------------------------------------------------------------------
    def _run_one(self, job_id: str) -> bool:
        job = self.get(job_id)

        def progress(done: int, total: int, job_id: str = job_id) -> None:
            with self._lock:
                self._db.execute("UPDATE jobs SET done=? WHERE id=?", (done, job_id))

        try:
            result = self.run(job, self.folder(job_id), progress)
        except Exception as e:  # the job fails with its message; the worker goes on
            log.warning("report job %s failed: %s", job_id, e)
            with self._lock:
                self._finish_locked(job_id, "failed", str(e) or type(e).__name__, None)
            return True
        with self._lock:
            if self._db.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()[0]:
                self._finish_locked(job_id, "cancelled", None, None)
            else:
                self._db.execute("UPDATE jobs SET done=images WHERE id=?", (job_id,))
                self._finish_locked(job_id, "done", None, result)
        return True
