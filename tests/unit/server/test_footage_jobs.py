"""The footage job queue: persistence, progress, cancel, and resuming after a stop or a crash.

The queue is under test; each job runs a small real function (counting seconds of "footage",
stopping when asked), standing where ``Library.watch`` runs in the server.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from oculi.core.errors import NotFoundError
from oculi.server.footage_jobs import FootageJobQueue


class Runner:
    """Processes 10 "seconds" of footage, 0.05 s each; resumes where it stopped."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, job, should_stop, progress):
        self.calls += 1
        self.started.set()
        t = self.done.get(job.id, 0)
        while t < 10:
            if should_stop():
                self.done[job.id] = t
                return {"interrupted": True, "source": {"processed_until": t}}
            time.sleep(0.05)
            t += 1
            progress(float(t), 10.0)
        self.done[job.id] = t
        return {"interrupted": False, "events": 3, "source": {"processed_until": t}}


def wait(q, job_id, states, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        j = q.get(job_id)
        if j.state in states:
            return j
        time.sleep(0.05)
    raise AssertionError(f"job stayed {q.get(job_id).state}")


def test_a_job_runs_and_reports(job_store, tmp_path: Path) -> None:
    r = Runner()
    q = FootageJobQueue(tmp_path, r, store=job_store)
    job = q.submit("cams", "/videos/gate.mp4", "main gate", {"sample_fps": 2.0}, key_id="k1")
    assert job.state == "queued" and job.to_dict()["progress"] is None
    q.start()
    try:
        j = wait(q, job.id, ("done",))
    finally:
        q.close()
    d = j.to_dict(show_source="gate.mp4")
    assert d["progress"] == 1.0 and d["footage_seconds"] == 10 and d["result"]["events"] == 3
    assert d["source"] == "gate.mp4" and d["options"] == {"sample_fps": 2.0}
    with pytest.raises(NotFoundError):
        FootageJobQueue(tmp_path, r, store=job_store).get("../../etc")


def test_stopping_the_server_leaves_the_job_resumable_and_a_restart_finishes_it(job_store, tmp_path: Path) -> None:
    r = Runner()
    q = FootageJobQueue(tmp_path, r, store=job_store)
    job = q.submit("cams", "/videos/gate.mp4", "main gate", {})
    q.start()
    r.started.wait(10)
    time.sleep(0.15)
    q.close()  # the server stops mid-job
    q2 = FootageJobQueue(tmp_path, r, store=job_store)
    assert q2.get(job.id).state == "running" and 0 < r.done[job.id] < 10
    q2.start()
    try:
        assert wait(q2, job.id, ("done",)).result["source"]["processed_until"] == 10
    finally:
        q2.close()
    assert r.calls == 2


def test_cancel(job_store, tmp_path: Path) -> None:
    r = Runner()
    q = FootageJobQueue(tmp_path, r, store=job_store)
    queued = q.submit("cams", "/v/a.mp4", "a", {})
    assert q.cancel(queued.id).state == "cancelled"  # never started
    running = q.submit("cams", "/v/b.mp4", "b", {})
    q.start()
    try:
        r.started.wait(10)
        q.cancel(running.id)
        j = wait(q, running.id, ("cancelled",))
    finally:
        q.close()
    assert j.result["interrupted"]
    assert [x.id for x in FootageJobQueue(tmp_path, r, store=job_store).list(collection="cams")] == [running.id, queued.id]


@pytest.mark.parametrize("job_store", ["postgresql"], indirect=True)
def test_replicas_sharing_a_postgresql_store_list_every_job_and_run_each_once(job_store, tmp_path: Path) -> None:
    r = Runner()
    a = FootageJobQueue(tmp_path / "a", r, store=job_store)  # two servers, two homes, one store
    b = FootageJobQueue(tmp_path / "b", r, store=job_store)
    ids = [a.submit("cams", f"/v/{i}.mp4", "gate", {}).id for i in range(4)]
    assert [j.id for j in b.list(collection="cams")] == ids[::-1] and b.get(ids[0]).state == "queued"
    a.start()
    b.start()
    try:
        for jid in ids:
            assert wait(b, jid, ("done",)).footage_seconds == 10
        assert a.counts() == {"done": 4}
    finally:
        a.close()
        b.close()
    assert r.calls == 4  # each job claimed by one replica only


@pytest.mark.parametrize("job_store", ["postgresql"], indirect=True)
def test_a_replica_that_stalls_past_its_lease_loses_the_job_and_cannot_finish_it(job_store, tmp_path: Path) -> None:
    r = Runner()
    a = FootageJobQueue(tmp_path / "a", r, store=job_store, lease_s=1.0)
    b = FootageJobQueue(tmp_path / "b", r, store=job_store, lease_s=1.0)
    job = a.submit("cams", "/v/long.mp4", "gate", {})
    a.start()
    try:
        assert r.started.wait(10)
        with a._rows._lock:  # A stalls (a long pause): it can neither renew its lease nor write progress
            b.start()
            end = time.time() + 20
            while b._rows.get(job.id)["owner"] != b._rows._lease.replica:  # B claims it once A's lease ran out
                assert time.time() < end, b._rows.get(job.id)
                time.sleep(0.05)
        # A wakes up: its claim is gone, so it stops and records nothing; B finishes the job
        j = wait(b, job.id, ("done", "cancelled", "failed"))
        assert j.state == "done" and j.footage_seconds == 10 and j.result["source"]["processed_until"] == 10, j
        assert b._rows.get(job.id)["owner"] == b._rows._lease.replica and r.calls == 2
    finally:
        a.close()
        b.close()
