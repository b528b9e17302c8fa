"""Footage and report job queues: what a job costs on each job table (issue 12).

``FootageJobQueue`` and ``ReportJobQueue`` keep their jobs in SQLite under the server's home
(the embedded store) or in the PostgreSQL store, where replicas share them
(``oculi.server.job_tables``). This measures the queue itself, with jobs that do no work:

- ``submit``: recording one footage job (a row), and one report job with 10 inputs of 100 kB
  (files under the home, or rows of ``oculi_job_files``);
- draining N queued no-op footage jobs with 1 worker, and (PostgreSQL) with 2 queues on one
  database, as two replicas would: jobs per second, and a check that each job ran exactly once.

PostgreSQL runs from the ``pgserver`` wheel on this machine (Unix socket). A worker polls for
new jobs every second when idle, so the drain starts with the jobs already queued.

Run: ``.venv/bin/python benchmarks/bench_jobs.py [--jobs 200]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Counter:
    """A footage job runner that does nothing but count its calls per job."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, job, should_stop, progress) -> dict:
        with self.lock:
            self.calls[job.id] = self.calls.get(job.id, 0) + 1
        progress(1.0, 1.0)
        return {"interrupted": False, "source": {"processed_until": 1.0}}


def bench(name: str, home: Path, store, n: int, replicas: int) -> dict:
    from oculi.server.footage_jobs import FootageJobQueue
    from oculi.server.report_jobs import ReportJobQueue

    run = Counter()
    queues = [FootageJobQueue(home / f"r{i}", run, store=store) for i in range(replicas)]
    t = []
    ids = []
    for i in range(n):
        t0 = time.perf_counter()
        ids.append(queues[0].submit("cams", f"/v/{i}.mp4", "gate", {}).id)
        t.append(time.perf_counter() - t0)
    submit_ms = statistics.median(t) * 1000
    rq = ReportJobQueue(home / "rep", lambda job, folder, progress: {}, store=store)
    files = [(f"p{i}.jpg", bytes(100_000)) for i in range(10)]
    rt = []
    for _ in range(10):
        t0 = time.perf_counter()
        rq.submit(files, None, {"kind": "general", "format": "json"})
        rt.append(time.perf_counter() - t0)
    rq.close()
    t0 = time.perf_counter()
    for q in queues:
        q.start()
    try:
        while queues[0].counts().get("done", 0) < n:
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    finally:
        for q in queues:
            q.close()
    once = sorted(run.calls) == sorted(ids) and set(run.calls.values()) == {1}
    return {"table": name, "replicas": replicas, "submit_ms": submit_ms, "report_ms": statistics.median(rt) * 1000,
            "jobs_s": n / wall, "once": once}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    args = ap.parse_args()
    from oculi.store.pg_store import PgStore
    from tests.pgutil import pg_database, start_server

    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-jobs-"))
    tmp.chmod(0o755)  # pgserver may run PostgreSQL as its own user
    rows = [bench("SQLite (embedded store)", tmp / "sqlite", None, args.jobs, 1)]
    srv, url = start_server(tmp / "pg")
    try:
        for replicas in (1, 2):
            with pg_database(url, f"bench_jobs_{replicas}") as db:
                store = PgStore(db, home=tmp / f"pg{replicas}")
                rows.append(bench("PostgreSQL store", tmp / f"pg{replicas}", store, args.jobs, replicas))
                store.close()
    finally:
        srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Machine: {machine()}\n")
    print(f"{args.jobs} no-op footage jobs; report jobs with 10 inputs of 100 kB (median of 10)\n")
    print("| job table | queues (replicas) | submit a footage job, median (ms) | submit a report job, median (ms) "
          "| drain: jobs/s | each job ran once |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['table']} | {r['replicas']} | {r['submit_ms']:.2f} | {r['report_ms']:.1f} | {r['jobs_s']:.0f} | "
              f"{'yes' if r['once'] else 'NO'} |")


if __name__ == "__main__":
    main()
