"""Two ``oculi serve`` replicas sharing one PostgreSQL store (the real CLI in subprocesses; the
perception backend is the deterministic fake of ``tests.search_fakes``, slowed down so a job is
still running when its replica is killed).

- what is written through one replica is read and searched through the other;
- a job of each kind (ingestion, footage, report) accepted by one replica is listed by the
  other and survives that replica being killed with SIGKILL: the other claims it once the lease
  runs out and finishes it (every image stored once; the video read from the store; the report
  file served by the replica that did not accept the job);
- an API key created once (``oculi --store URL keys create``) is accepted by both, and revoking
  it revokes it on both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from oculi.config import Settings
from tests.pgutil import pg_database
from tests.search_fakes import fake_env, write_png, write_walk_clip
from tests.serverutil import free_port

REPO = Path(__file__).resolve().parents[2]


def _serve(home: Path, url: str, port: int, log: Path) -> subprocess.Popen:
    env = fake_env(home)
    env.update(OCULI_STORE=url, OCULI_FAKE_DELAY="0.4", OCULI_SERVER_JOB_CHUNK="1", OCULI_SERVER_JOB_LEASE_S="3",
               OCULI_SERVER_RATE_PER_MINUTE="0", OCULI_ASSETS_DIR=str(Settings().assets_dir),  # the tracker's code
               PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO))
    return subprocess.Popen([sys.executable, "-m", "tests.run_cli_with_fakes", "serve", "--port", str(port),
                             "--log-level", "warning"], cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def _ready(base: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=2, headers=_h()).status_code == 200:  # the fakes need no warm-up
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not ready: {log.read_text()[-3000:]}")


KEY: dict[str, str] = {}


def _h() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY['key']}"}


@pytest.fixture()
def replicas(pg_server: str, tmp_path: Path) -> Iterator[tuple[list[str], list[subprocess.Popen], str]]:
    with pg_database(pg_server, f"r_{uuid.uuid4().hex[:12]}") as url:
        from typer.testing import CliRunner

        from oculi.cli.main import app

        r = CliRunner().invoke(app, ["--store", url, "keys", "create", "--scope", "admin", "--json"],
                               env={"OCULI_HOME": str(tmp_path / "admin-home")})
        assert r.exit_code == 0, r.output
        KEY.update(json.loads(r.stdout))
        procs, bases = [], []
        try:
            for i in range(2):
                port = free_port()
                log = tmp_path / f"replica{i}.log"
                # separate homes: the replicas share nothing but the database
                procs.append(_serve(tmp_path / f"home{i}", url, port, log))
                bases.append(f"http://127.0.0.1:{port}")
            for base, p, i in zip(bases, procs, range(2)):
                _ready(base, p, tmp_path / f"replica{i}.log")
            yield bases, procs, url
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()


def _get(base: str, path: str) -> dict:
    r = httpx.get(f"{base}/api/v1{path}", timeout=10, headers=_h())
    assert r.status_code == 200, r.text
    return r.json()


def _job(base: str, job_id: str) -> dict:
    return _get(base, f"/jobs/{job_id}")


def _owner_pid(url: str, table: str, job_id: str) -> int | None:
    """The process id of the replica holding the job (``host:pid:token`` in its ``owner``)."""
    import psycopg

    with psycopg.connect(url) as c:
        owner = c.execute(f"SELECT owner FROM {table} WHERE id=%s", (job_id,)).fetchone()[0]
    return int(owner.split(":")[1]) if owner else None


def _kill_mid_job(bases: list[str], procs: list[subprocess.Popen], url: str, table: str, job_id: str, job_path: str,
                  progressed: Callable[[dict], bool], timeout: float = 120) -> tuple[dict, dict, str]:
    """Wait until the job runs and has ``progressed``, SIGKILL the replica running it (the one
    that accepted it, nearly always), then wait until the other finishes it. Returns the job as
    the survivor saw it right after the kill and at the end, and the survivor's base URL."""
    t0 = time.monotonic()
    while True:
        j = _get(bases[0], job_path)
        if j["state"] == "running" and progressed(j):
            break
        assert j["state"] in ("queued", "running") and time.monotonic() - t0 < 60, j
        time.sleep(0.1)
    running = _owner_pid(url, table, job_id)
    dead = next(i for i, p in enumerate(procs) if p.pid == running)
    procs[dead].send_signal(signal.SIGKILL)
    procs[dead].wait()
    survivor, alive = bases[1 - dead], procs[1 - dead]
    before = _get(survivor, job_path)
    assert before["state"] == "running", before
    t0 = time.monotonic()
    while (j := _get(survivor, job_path))["state"] != "done":
        assert j["state"] == "running" and time.monotonic() - t0 < timeout, j
        time.sleep(0.2)
    assert _owner_pid(url, table, job_id) == alive.pid  # claimed by the survivor once the lease ran out
    return before, j, survivor


@pytest.mark.slow
def test_write_through_one_replica_read_through_the_other_and_survive_a_kill(replicas, tmp_path: Path) -> None:
    (a, b), (pa, pb), url = replicas
    assert httpx.post(f"{a}/api/v1/collections", json={"name": "shared"}, timeout=10, headers=_h()).status_code == 201
    assert [c["name"] for c in httpx.get(f"{b}/api/v1/collections", timeout=10, headers=_h()).json()["collections"]] == ["shared"]

    # a first small job through A, read and searched through B
    pics = tmp_path / "pics"
    pics.mkdir()
    first = [("red-car.png", write_png(pics / "red-car.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=1))]
    r = httpx.post(f"{a}/api/v1/collections/shared/images",
                   files=[("images", (n, p.read_bytes(), "image/png")) for n, p in first], timeout=30, headers=_h())
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    t0 = time.monotonic()
    while _job(b, jid)["state"] != "done":  # B sees A's job
        assert time.monotonic() - t0 < 60, _job(b, jid)
        time.sleep(0.2)
    items = httpx.get(f"{b}/api/v1/collections/shared/items", timeout=10, headers=_h()).json()
    assert items["total"] == 1 and items["items"][0]["name"] == "red-car.png"
    iid = items["items"][0]["id"]
    assert httpx.get(f"{b}/api/v1/collections/shared/items/{iid}/thumbnail", timeout=10, headers=_h()).content[:2] == b"\xff\xd8"
    hits = httpx.post(f"{b}/api/v1/collections/shared/search", json={"text": "red car"}, timeout=30, headers=_h()).json()
    assert hits["results"][0]["id"] == iid

    # a longer job through A; A is killed while it runs; B finishes it
    many = [(f"img{i}.png", write_png(pics / f"img{i}.png", "blue", pattern=10 + i).read_bytes()) for i in range(10)]
    r = httpx.post(f"{a}/api/v1/collections/shared/images",
                   files=[("images", (n, d, "image/png")) for n, d in many], timeout=30, headers=_h())
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    before, j, b = _kill_mid_job([a, b], [pa, pb], url, "oculi_jobs", jid, f"/jobs/{jid}", lambda j: j["done"] >= 2)
    assert before["done"] < 10, before  # A was mid-way
    assert j["done"] == 10 and j["failed"] == 0, j
    items = httpx.get(f"{b}/api/v1/collections/shared/items?limit=100", timeout=10, headers=_h()).json()
    assert items["total"] == 11  # every image once, none twice although a chunk was ingested again
    assert sorted(i["name"] for i in items["items"]) == sorted(["red-car.png", *(n for n, _ in many)])
    # the key lives in the shared store: revoked by the CLI, refused by the replicas at once
    assert httpx.get(f"{b}/api/v1/collections", headers={"Authorization": "Bearer oculi_000000000000_nope"},
                     timeout=10).status_code == 401
    from typer.testing import CliRunner

    from oculi.cli.main import app

    assert CliRunner().invoke(app, ["--store", url, "keys", "revoke", KEY["key_id"]],
                              env={"OCULI_HOME": str(tmp_path / "admin-home")}).exit_code == 0
    assert httpx.get(f"{b}/api/v1/collections", timeout=10, headers=_h()).status_code == 401


def _post_footage(base: str, tmp_path: Path) -> dict:
    clip = write_walk_clip(tmp_path / "walk.mp4", 20.0)  # 20 s, 160x96: ~16 s of (slowed) fake detection
    with open(clip, "rb") as f:
        r = httpx.post(f"{base}/api/v1/collections/cams/footage", files={"video": ("walk.mp4", f, "video/mp4")},
                       data={"camera": "door", "start": "2026-11-27T09:30:00", "tz": "UTC"}, timeout=30, headers=_h())
    assert r.status_code == 202, r.text
    return r.json()


def _post_report(base: str, tmp_path: Path) -> dict:
    pics = [write_png(tmp_path / f"r{i}.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=30 + i).read_bytes()
            for i in range(10)]
    r = httpx.post(f"{base}/api/v1/reports", files=[("images", (f"r{i}.png", d, "image/png")) for i, d in enumerate(pics)],
                   data={"kind": "general", "format": "json", "title": "yard"}, timeout=30, headers=_h())
    assert r.status_code == 202, r.text
    return r.json()


KINDS: dict[str, tuple[Callable[[str, Path], dict], str, Callable[[dict], bool]]] = {
    # how to post a job of the kind, where its state is, when it is mid-way
    "footage": (_post_footage, "/footage/jobs/{id}", lambda j: j["footage_seconds"] >= 2),
    "report": (_post_report, "/reports/{id}", lambda j: j["done"] >= 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_job_is_listed_by_every_replica_and_survives_its_replica_being_killed(kind: str, replicas, tmp_path: Path) -> None:
    (a, b), procs, url = replicas
    post, path, progressed = KINDS[kind]
    job = post(a, tmp_path)
    listed = _get(b, "/footage/jobs" if kind == "footage" else "/reports")["jobs"]
    assert job["id"] in [j["id"] for j in listed]  # B lists what A accepted
    before, done, b = _kill_mid_job([a, b], procs, url, f"oculi_{kind}_jobs", job["id"], path.format(id=job["id"]), progressed)
    if kind == "footage":
        assert before["footage_seconds"] < 19, before  # A was mid-way
        assert done["footage_seconds"] >= 19 and done["result"]["source"]["status"] == "done", done
        src = _get(b, "/collections/cams/sources")["sources"]
        assert len(src) == 1 and src[0]["status"] == "done" and src[0]["uri"].endswith(".mp4") and "/" not in src[0]["uri"]
        events = _get(b, "/collections/cams/events?tz=UTC")["events"]
        assert events and events[0]["type"] == "appear" and events[0]["start"].startswith("2026-11-27T09:30:0")
        assert len({e["id"] for e in events}) == len(events)
    else:
        assert before["done"] < 10, before
        assert done["done"] == 10 and done["download"] == f"/api/v1/reports/{job['id']}/file", done
        r = httpx.get(f"{b}{done['download']}", timeout=30, headers=_h())  # served by the replica that finished it
        assert r.status_code == 200 and len(json.loads(r.content)["images"]) == 10, r.text[:300]
