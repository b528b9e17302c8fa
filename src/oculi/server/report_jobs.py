"""Report jobs: uploaded images (and records) → a report file to download.

A job is a row written after its inputs are kept and before the client gets its id: with the
embedded store, a row of ``<home>/server/report_jobs.db`` (SQLite, WAL) with its inputs under
``<home>/server/reports/<job_id>/in/`` (names chosen here, never from the request); with a
PostgreSQL store, a row of ``oculi_report_jobs`` with its inputs and, once written, its report
in ``oculi_job_files``, so every replica lists it, the free one claims it with a lease
(``oculi.server.job_tables``) and any replica serves the file. One worker thread per server
builds reports one at a time into ``reports/<job_id>/report.<ext>``; the inputs are then
deleted. A job that was running when its server died runs again (at the next start, or on
another replica once the lease has run out): a report is a pure function of its inputs.
``MAX_KEPT`` finished jobs are kept; older ones and their files are removed.

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

from oculi.server.job_tables import Column, job_table
from oculi.server.jobs import JOB_ID_RE, RunEachJob

log = logging.getLogger("oculi.server.report_jobs")

SCHEMA_VERSION = 1
FINAL = ("done", "failed", "cancelled")
MAX_KEPT = 200
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8", "json": "application/json",
               "md": "application/zip"}
EXTENSIONS = {"pdf": "pdf", "html": "html", "json": "json", "md": "zip"}
COLUMNS = (Column("options", "text", True), Column("images", "int", True), Column("done", "int", True, 0))

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
            "format": self.format, "model": self.options.get("model"), "images": self.images, "done": self.done,
            "progress": 1.0 if self.state == "done" else (self.done / self.images if self.images else None),
            "created": self.created, "started": self.started, "finished": self.finished, "error": self.error,
            "cancel_requested": self.cancel_requested, "result": self.result,
            "download": f"/api/v1/reports/{self.id}/file" if self.state == "done" else None,
        }


class ReportJobQueue(RunEachJob):
    """Report jobs of one oculi home, or of every replica sharing ``store`` when it is a
    PostgreSQL store; ``start()`` launches the worker and resumes unfinished jobs.

    Args:
        home: This server's oculi home (its ``server/reports/`` holds the jobs' files here).
        run: Builds one report: ``run(job, folder, progress) -> summary``, writing
            ``folder/report.<ext>`` from ``folder/in/``.
        store: The collection store; a PostgreSQL one keeps the jobs and their files in its database.
        lease_s: With PostgreSQL, how long a claim lasts without renewal.
    """

    job_label = "report job"
    thread_name = "oculi-report-jobs"

    def __init__(self, home: Path, run: RunReport, *, store: Any = None, lease_s: float = 30.0) -> None:
        self.run = run
        self._rows = job_table(home, "report", COLUMNS, store=store, lease_s=lease_s, schema_version=SCHEMA_VERSION,
                               files=True)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _job(self, row: dict[str, Any]) -> ReportJob:
        return ReportJob(row["id"], row["state"], json.loads(row["options"]), row["images"], row["created"], row["started"],
                         row["finished"], row["error"], row["key_id"], bool(row["cancel_requested"]), row["done"] or 0,
                         json.loads(row["result"]) if row["result"] else None)

    def folder(self, job_id: str) -> Path:
        """The job's folder on this machine (``in/`` and the report)."""
        return self._rows.folder(job_id)

    def submit(self, images: list[tuple[str, bytes]], records: tuple[str, bytes] | None, options: dict[str, Any], *,
               key_id: str | None = None) -> ReportJob:
        """Keep the inputs, then record the job (so an accepted job always has its inputs)."""
        job_id = secrets.token_hex(8)
        files, names = {}, []
        for i, (name, data) in enumerate(images):
            files[f"in/{i:04d}/{name}"] = data  # its own folder: the report shows the uploaded name
            names.append(f"{i:04d}/{name}")
        opts = dict(options, image_files=names)
        if records is not None:
            rname = f"records{Path(records[0]).suffix.lower()}"
            files[f"in/{rname}"] = records[1]
            opts["records_file"] = rname
        self._rows.put_files(job_id, files)
        self._rows.insert({"id": job_id, "state": "queued", "options": json.dumps(opts), "images": len(images),
                           "created": time.time(), "key_id": key_id})
        self._prune()
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> ReportJob:
        return super().get(job_id)

    def list(self, *, limit: int = 50) -> list[ReportJob]:
        return [self._job(r) for r in self._rows.list(limit=limit)]

    def cancel(self, job_id: str) -> ReportJob:
        return super().cancel(job_id)

    def report_file(self, job: ReportJob) -> Path:
        """The finished report as a file on this machine (copied from the store when it is shared)."""
        name = f"report.{EXTENSIONS.get(job.format, job.format)}"
        path = self.folder(job.id) / name
        if not path.is_file() and job.state == "done":
            self._rows.pull_files(job.id)
        return path

    def _finish(self, job_id: str, state: str, error: str | None, result: dict[str, Any] | None, *,
                only_state: str | None = None) -> bool:
        if not super()._finish(job_id, state, error, result, only_state=only_state):
            return False  # not ours to finish: its files are the new owner's
        self._rows.drop_files(job_id, "in/")
        if state != "done":
            self._rows.drop_files(job_id)
        return True

    def _before_start(self) -> None:
        """Remove this machine's job folders that no job names any more (a job pruned by another
        replica, whose copy was left here; inputs kept by a submit that failed before its row)."""
        root = self._rows.files_root
        for d in root.iterdir() if root is not None and root.is_dir() else ():
            if d.is_dir() and JOB_ID_RE.fullmatch(d.name) and self._rows.get(d.name) is None:
                shutil.rmtree(d, ignore_errors=True)

    def _prune(self) -> None:
        for jid in self._rows.prune(MAX_KEPT):
            self._rows.drop_files(jid)

    # --- worker ------------------------------------------------------------------------------
    def _run_one(self, job_id: str, lost: threading.Event) -> bool:
        job = self.get(job_id)

        def progress(done: int, total: int, job_id: str = job_id) -> None:
            self._rows.update(job_id, {"done": done}, owned=True)

        try:
            result = self.run(job, self._rows.pull_files(job_id), progress)
        except Exception as e:  # the job fails with its message; the worker goes on
            log.warning("report job %s failed: %s", job_id, e)
            self._finish(job_id, "failed", str(e) or type(e).__name__, None)
            return True
        if self._cancelled(job_id):
            self._finish(job_id, "cancelled", None, None)
        else:
            self._rows.push_files(job_id, [self.report_file(job).name])
            self._rows.update(job_id, {"done": job.images}, owned=True)
            self._finish(job_id, "done", None, result)
        return True
