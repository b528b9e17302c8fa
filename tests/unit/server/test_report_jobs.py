"""The report job queue: spooled inputs, states, failures, cancel, resume after a restart, pruning."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from oculi.core.errors import NotFoundError
from oculi.server import report_jobs
from oculi.server.report_jobs import ReportJobQueue


def _wait(q: ReportJobQueue, job_id: str, timeout: float = 20.0):
    deadline = time.time() + timeout
    job = q.get(job_id)
    while job.state in ("queued", "running") and time.time() < deadline:
        time.sleep(0.05)
        job = q.get(job_id)
    return job


def _writer(seen: list):
    def run(job, folder: Path, progress):
        names = [p.name for p in sorted((folder / "in").rglob("*")) if p.is_file()]
        seen.append(names)
        if job.options.get("title") == "boom":
            raise ValueError("the records mention part 9, which has no image")
        progress(job.images, job.images)
        (folder / f"report.{job.format}").write_text(f"{len(names)} inputs")
        return {"title": job.options.get("title"), "images": job.images}
    return run


def _eventually(check, seconds: float = 10.0) -> bool:
    """``check()`` became true within ``seconds`` (the worker cleans up right after recording the end)."""
    import time

    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_jobs_run_fail_and_keep_only_their_report(job_store, tmp_path: Path) -> None:
    seen: list = []
    q = ReportJobQueue(tmp_path, _writer(seen), store=job_store)
    q.start()
    try:
        job = q.submit([("a.png", b"A"), ("a.png", b"B")], ("notes.csv", b"text\nx\n"), {"kind": "general", "format": "html",
                                                                                        "title": "ok"})
        assert job.state in ("queued", "running", "done") and job.images == 2  # the worker may already have it
        done = _wait(q, job.id)
        assert done.state == "done" and done.result == {"title": "ok", "images": 2} and done.done == 2
        assert seen[0] == ["a.png", "a.png", "records.csv"]  # same upload name twice: kept apart, inputs spooled first
        assert q.report_file(done).read_text() == "3 inputs"
        assert _eventually(lambda: not (q.folder(job.id) / "in").exists())  # inputs deleted once the job ends
        assert done.to_dict()["download"] == f"/api/v1/reports/{job.id}/file"
        bad = _wait(q, q.submit([("b.png", b"B")], None, {"kind": "general", "format": "pdf", "title": "boom"}).id)
        assert bad.state == "failed" and "part 9" in bad.error and not q.folder(bad.id).exists()
        with pytest.raises(NotFoundError):
            q.get("../../etc/passwd")
        with pytest.raises(NotFoundError):
            q.get("0" * 16)
    finally:
        q.close()


def test_a_job_running_when_the_server_died_runs_again(job_store, tmp_path: Path) -> None:
    seen: list = []
    q = ReportJobQueue(tmp_path, _writer(seen), store=job_store)  # not started: the job stays queued
    job = q.submit([("a.png", b"A")], None, {"kind": "general", "format": "json", "title": "again"})
    q._rows.update(job.id, {"state": "running", "started": 1})  # as a crash leaves it
    dropped = q.submit([("d.png", b"D")], None, {"kind": "general", "format": "json"})
    assert q.cancel(dropped.id).state == "cancelled" and not q.folder(dropped.id).exists()
    q.close()
    stray = q.folder("0123456789abcdef") / "in"  # inputs of a job whose row was never written
    stray.mkdir(parents=True)
    q2 = ReportJobQueue(tmp_path, _writer(seen), store=job_store)
    q2.start()
    assert not stray.parent.exists()  # cleared at start
    try:
        assert _wait(q2, job.id).state == "done" and seen == [["a.png"]]
        queued = q2.submit([("c.png", b"C")], None, {"kind": "general", "format": "json"})
        q2.cancel(queued.id)  # queued: cancelled at once; already running: cancelled when its run returns
        assert _wait(q2, queued.id).state in ("cancelled", "done")
    finally:
        q2.close()


def test_old_finished_jobs_are_pruned(job_store, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report_jobs, "MAX_KEPT", 2)
    q = ReportJobQueue(tmp_path, _writer([]), store=job_store)
    q.start()
    try:
        ids = []
        for i in range(4):
            j = q.submit([("a.png", b"A")], None, {"kind": "general", "format": "json", "title": str(i)})
            _wait(q, j.id)
            ids.append(j.id)
        q.submit([("a.png", b"A")], None, {"kind": "general", "format": "json"})  # pruning runs on submit
        kept = {j.id for j in q.list() if j.state == "done"}
        assert ids[-1] in kept and ids[0] not in kept and len(kept) <= 2
        assert not q.folder(ids[0]).exists()
    finally:
        q.close()


@pytest.mark.parametrize("job_store", ["postgresql"], indirect=True)
def test_a_report_built_by_one_replica_is_served_by_another(job_store, tmp_path: Path) -> None:
    seen: list = []
    a = ReportJobQueue(tmp_path / "a", _writer(seen), store=job_store)
    b = ReportJobQueue(tmp_path / "b", _writer(seen), store=job_store)  # never started: it only serves
    a.start()
    try:
        job = b.submit([("a.png", b"A"), ("b.png", b"B")], None, {"kind": "general", "format": "html", "title": "x"})
        done = _wait(b, job.id)  # submitted through B, claimed by A (B runs no worker)
    finally:
        a.close()
    assert done.state == "done" and seen == [["a.png", "b.png"]]
    assert not b.folder(job.id).exists()  # nothing of it on B's disk until it is asked for
    assert b.report_file(done).read_text() == "2 inputs"
    b.close()
