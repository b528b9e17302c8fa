"""The server's PostgreSQL parts outlive a restart of the real server (``pgserver``, stopped and
started again on the same data and socket): job queues and tables reconnect, a job in flight
finishes, the HTTP routes answer 503 while the server is down and 200 once it is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from oculi.core.errors import StoreUnavailableError
from oculi.server.jobs import JobWorker
from oculi.store.pg_store import PgStore
from tests.pgutil import pg_database
from tests.unit.server.conftest import bearer

DEADLINE_S = 30.0  # every wait below is bounded by this


def _until(cond: Callable[[], Any], what: str) -> Any:
    t0 = time.monotonic()
    while time.monotonic() - t0 < DEADLINE_S:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def _state(q: Any, job_id: str) -> str | None:
    try:
        return q.get(job_id).state
    except StoreUnavailableError:
        return None


def test_a_job_in_flight_when_postgresql_restarts_finishes_and_the_worker_carries_on(
        pg_restartable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oculi.server.pg_jobs import PgJobQueue

    monkeypatch.setattr(JobWorker, "store_retry_s", 0.2)
    in_chunk, go_on = threading.Event(), threading.Event()
    seen: list[str] = []

    def run_chunk(collection: str, batch: list[tuple[str, bytes]], should_stop: Callable[[], bool]) -> list[Any]:
        seen.extend(name for name, _ in batch)
        in_chunk.set()
        go_on.wait(DEADLINE_S)
        return [None] * len(batch)

    with pg_database(pg_restartable.url, "jobs") as url:
        store = PgStore(url, home=tmp_path)
        q = PgJobQueue(store, run_chunk, chunk=2, lease_s=3.0)
        q.start()
        try:
            job = q.submit("photos", [("a.png", b"1"), ("b.png", b"2")])
            assert in_chunk.wait(DEADLINE_S)
            pg_restartable.stop()  # the chunk is being ingested: its result cannot be recorded
            with pytest.raises(StoreUnavailableError, match="PostgreSQL store"):
                q.submit("photos", [("c.png", b"3")])
            go_on.set()
            time.sleep(0.5)  # the worker meets the dead connection and backs off
            assert q._thread is not None and q._thread.is_alive()
            pg_restartable.start()

            done = _until(lambda: _state(q, job.id) == "done" and q.get(job.id), "the interrupted job")
            assert (done.done, done.failed, done.total) == (2, 0, 2)
            later = q.submit("photos", [("d.png", b"4")])
            _until(lambda: _state(q, later.id) == "done", "a job submitted after the restart")
            assert seen.count("a.png") >= 1 and "d.png" in seen and "c.png" not in seen
            assert q._thread.is_alive()
        finally:
            go_on.set()
            q.close()
            store.close()


def test_a_job_table_claims_again_after_a_restart(pg_restartable, tmp_path: Path) -> None:
    from oculi.server.job_tables import Column
    from oculi.server.pg_jobs import PgJobTable

    with pg_database(pg_restartable.url, "table") as url:
        store = PgStore(url, home=tmp_path)
        rows = PgJobTable(store, "footage", [Column("source", "text")], lease_s=5.0, files_root=tmp_path / "files")
        rows.insert({"id": "a" * 16, "state": "queued", "created": time.time(), "source": "cam1"})
        pg_restartable.stop()
        with pytest.raises(StoreUnavailableError):
            rows.claim()
        with pytest.raises(StoreUnavailableError):
            rows.get("a" * 16)
        pg_restartable.start()
        assert rows.claim() == "a" * 16
        assert rows.get("a" * 16)["state"] == "running"
        rows.close()
        store.close()


def test_http_routes_answer_503_while_postgresql_is_down_and_200_once_it_is_back(
        pg_restartable, fake_engine, tmp_path: Path) -> None:
    """The whole app on PostgreSQL: collections, API keys (``oculi_keys``) and job queues."""
    from fastapi.testclient import TestClient

    from oculi.config import Settings
    from oculi.server.app import create_app
    from oculi.server.auth import open_keys
    from oculi.server.config import ServerConfig

    with pg_database(pg_restartable.url, "http") as url:
        settings = Settings(home=tmp_path / "home", store=url)
        keys = open_keys(settings)
        key = keys.create("write", name="w")[0]
        app = create_app(settings, fake_engine, config=ServerConfig(rate_per_minute=0))
        with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
            assert c.post("/api/v1/collections", json={"name": "alpha"}, headers=bearer(key)).status_code == 201
            pg_restartable.stop()
            for path in ("/api/v1/collections", "/api/v1/jobs"):
                r = c.get(path, headers=bearer(key))
                assert r.status_code == 503, r.text
                assert "PostgreSQL store" in r.json()["error"]["message"]
            pg_restartable.start()
            r = c.get("/api/v1/collections", headers=bearer(key))  # the key is looked up on a new connection
            assert r.status_code == 200, r.text
            assert [x["name"] for x in r.json()["collections"]] == ["alpha"]
            assert c.post("/api/v1/collections", json={"name": "beta"}, headers=bearer(key)).status_code == 201
            assert c.get("/api/v1/jobs", headers=bearer(key)).status_code == 200
        keys.close()
