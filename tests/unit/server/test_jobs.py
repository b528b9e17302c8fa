"""The persistent job queue: progress, cancel, failure, and resume after the worker stops."""

from __future__ import annotations

import threading
import time

import pytest

from oculi.core.errors import NotFoundError
from oculi.server.jobs import PENDING, JobQueue, safe_item_name


def _wait(q: JobQueue, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j = q.get(job_id)
        if j.state in states:
            return j
        time.sleep(0.02)
    raise AssertionError(f"job stuck in {q.get(job_id).state}")


def test_job_runs_to_done_with_progress_and_item_errors(tmp_path):
    seen: list[str] = []

    def run(collection, items, should_stop):
        seen.extend(n for n, _ in items)
        return ["bad bytes" if d == b"bad" else None for _, d in items]

    q = JobQueue(tmp_path, run, chunk=2)
    q.start()
    job = q.submit("alpha", [("a.png", b"1"), ("b.png", b"bad"), ("c.png", b"3")], key_id="k1")
    assert job.total == 3 and job.collection == "alpha"
    j = _wait(q, job.id)
    assert j.state == "done" and j.done == 2 and j.failed == 1 and j.progress == 1.0
    assert j.errors == ({"name": "b.png", "error": "bad bytes"},)
    assert seen == ["a.png", "b.png", "c.png"]
    assert not (tmp_path / "server" / "spool" / job.id).exists()  # spool removed
    assert [x.id for x in q.list(collection="alpha")] == [job.id]
    assert q.list(collection="beta") == []
    q.close()


def test_cancel_stops_between_chunks(tmp_path):
    gate = threading.Event()
    calls = []

    def run(collection, items, should_stop):
        calls.append(len(items))
        gate.wait(5)
        return [None] * len(items)

    q = JobQueue(tmp_path, run, chunk=1)
    q.start()
    job = q.submit("alpha", [(f"{i}.png", b"x") for i in range(5)])
    while not calls:
        time.sleep(0.01)
    q.cancel(job.id)
    gate.set()
    j = _wait(q, job.id)
    assert j.state == "cancelled" and j.done == 1
    assert len(calls) == 1
    q.close()


def test_a_queued_job_can_be_cancelled_before_it_starts(tmp_path):
    q = JobQueue(tmp_path, lambda c, items, s: [None] * len(items))
    job = q.submit("alpha", [("a.png", b"x")])
    assert q.cancel(job.id).state == "cancelled"
    q.start()
    time.sleep(0.2)
    assert q.get(job.id).state == "cancelled"
    q.close()


def test_unfinished_job_resumes_in_a_new_queue_with_nothing_lost(tmp_path):
    ingested: list[str] = []
    stop_after = threading.Event()

    def run1(collection, items, should_stop):
        ingested.extend(n for n, _ in items)
        if len(ingested) >= 4:
            stop_after.set()
            t0 = time.monotonic()
            while not should_stop() and time.monotonic() - t0 < 5:
                time.sleep(0.01)
        return [None] * len(items)

    q1 = JobQueue(tmp_path, run1, chunk=2)
    q1.start()
    job = q1.submit("alpha", [(f"{i}.png", str(i).encode()) for i in range(10)])
    stop_after.wait(5)
    q1.stop()  # like a server going down between chunks
    j = q1.get(job.id)
    assert j.state == "running" and 4 <= j.done < 10
    q1.close()

    def run2(collection, items, should_stop):
        ingested.extend(n for n, _ in items)
        return [None] * len(items)

    q2 = JobQueue(tmp_path, run2, chunk=2)
    q2.start()
    j = _wait(q2, job.id)
    assert j.state == "done" and j.done == 10
    assert sorted(ingested, key=lambda n: int(n.split(".")[0])) == [f"{i}.png" for i in range(10)]  # each exactly once
    q2.close()


def test_pending_results_are_retried_and_a_crash_fails_the_job(tmp_path):
    attempts: dict[str, int] = {}

    def run(collection, items, should_stop):
        out = []
        for n, _ in items:
            attempts[n] = attempts.get(n, 0) + 1
            out.append(PENDING if (n == "b.png" and attempts[n] == 1) else None)
        return out

    q = JobQueue(tmp_path, run, chunk=5)
    q.start()
    j = _wait(q, q.submit("alpha", [("a.png", b"1"), ("b.png", b"2")]).id)
    assert j.state == "done" and attempts == {"a.png": 1, "b.png": 2}

    def crash(collection, items, should_stop):
        raise RuntimeError("disk full")

    q.run_chunk = crash
    j = _wait(q, q.submit("alpha", [("a.png", b"1")]).id)
    assert j.state == "failed" and "disk full" in j.error
    q.close()


def test_orphan_spools_are_cleaned_and_bad_ids_are_404(tmp_path):
    (tmp_path / "server" / "spool" / "deadbeefdeadbeef").mkdir(parents=True)
    q = JobQueue(tmp_path, lambda c, i, s: [None] * len(i))
    q.start()
    assert not (tmp_path / "server" / "spool" / "deadbeefdeadbeef").exists()
    for bad in ("../../etc/passwd", "0" * 16, "", "DEADBEEFDEADBEEF"):
        with pytest.raises(NotFoundError):
            q.get(bad)
    q.close()


@pytest.mark.parametrize(
    "name,want",
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\x.png", "x.png"),
        ("/abs/path/img.png", "img.png"),
        ("..", "upload-3.png"),
        ("", "upload-3.png"),
        (None, "upload-3.png"),
        ("evil\x00name<script>.png", "evil_name_script_.png"),
    ],
)
def test_safe_item_name(name, want):
    assert safe_item_name(name, 3, "png") == want
