"""Two ``oculi serve`` replicas sharing one PostgreSQL store (the real CLI in subprocesses; the
perception backend is the deterministic fake of ``tests.search_fakes``, slowed down so a job is
still running when its replica is killed).

- what is written through one replica is read and searched through the other;
- an ingestion job accepted by one replica survives that replica being killed with SIGKILL: the
  other claims it once the lease runs out and finishes it, with every image stored once;
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
from typing import Iterator

import httpx
import pytest

from tests.pgutil import pg_database
from tests.search_fakes import fake_env, write_png
from tests.serverutil import free_port

REPO = Path(__file__).resolve().parents[2]


def _serve(home: Path, url: str, port: int, log: Path) -> subprocess.Popen:
    env = fake_env(home)
    env.update(OCULI_STORE=url, OCULI_FAKE_DELAY="0.4", OCULI_SERVER_JOB_CHUNK="1", OCULI_SERVER_JOB_LEASE_S="3",
               OCULI_SERVER_RATE_PER_MINUTE="0", PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO))
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


def _job(base: str, job_id: str) -> dict:
    r = httpx.get(f"{base}/api/v1/jobs/{job_id}", timeout=10, headers=_h())
    assert r.status_code == 200, r.text
    return r.json()


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
    t0 = time.monotonic()
    while True:
        j = _job(a, jid)
        if j["state"] == "running" and j["done"] >= 2:
            break
        assert j["state"] in ("queued", "running") and time.monotonic() - t0 < 60, j
        time.sleep(0.1)
    pa.send_signal(signal.SIGKILL)
    pa.wait()
    before = _job(b, jid)
    assert before["state"] == "running" and before["done"] < 10, before  # A was mid-way
    t0 = time.monotonic()
    while (j := _job(b, jid))["state"] != "done":
        assert j["state"] == "running" and time.monotonic() - t0 < 90, j
        time.sleep(0.2)
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
