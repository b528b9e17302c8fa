"""Uploads over HTTP kept in an S3-compatible bucket (``OCULI_BLOBS=s3://...``; a real S3
server on loopback from ``moto[server]``): the objects are where the configuration says, another
process with another home reads them back, and a bucket that goes away makes the job wait, not
fail, with nothing lost."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.s3util import TEST_CREDENTIALS, make_bucket, s3_client, start_server
from tests.unit.server.conftest import bearer, png_bytes

REPO = Path(__file__).resolve().parents[3]


def _upload(c, key, name, images):
    files = [("images", (n, data, "image/png")) for n, data in images]
    return c.post(f"/api/v1/collections/{name}/images", files=files, headers=bearer(key))


def _job(c, key, job_id):
    return c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key)).json()


def _wait(c, key, job_id, until=("done", "failed", "cancelled"), timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j = _job(c, key, job_id)
        if j["state"] in until:
            return j
        time.sleep(0.05)
    raise AssertionError(f"job did not reach {until}: {j}")


def test_uploads_land_in_the_bucket_and_another_process_reads_them(s3_blobs, s3_server, make_client, keys, settings,
                                                                   tmp_path):
    assert settings.blobs == s3_blobs
    c = make_client(store_factory="default")
    imgs = [(f"{i}.png", png_bytes(40 + i, 30, (10 * i, 100, 200))) for i in range(3)]
    j = _wait(c, keys["write"], _upload(c, keys["write"], "alpha", imgs).json()["id"])
    assert j["state"] == "done" and j["done"] == 3, j
    shas = sorted(hashlib.sha256(d).hexdigest() for _, d in imgs)
    bucket, prefix = s3_blobs[len("s3://"):].split("/", 1)
    objs = s3_client(s3_server).list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/alpha/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1].split(".")[0] for o in objs) == shas
    assert not [p for p in (settings.home / "collections" / "alpha").rglob("*") if "blobs" in p.parts and p.is_file()]

    # another process, another home, the same store and bucket: the items name the objects, which it reads
    code = textwrap.dedent("""
        import hashlib, json
        from oculi.store import open_store
        store = open_store()
        coll, blobs = store.open_collection("alpha"), store.blobs("alpha")
        paths = [r["path"] for rows in coll.iter_items(["path"]) for r in rows]
        print(json.dumps({"paths": sorted(paths), "shas": sorted(hashlib.sha256(blobs.get(k)).hexdigest() for k in blobs.keys()),
                          "local": [hashlib.sha256(blobs.local_path(k).read_bytes()).hexdigest() for k in blobs.keys()]}))
    """)
    env = {**os.environ, "OCULI_HOME": str(tmp_path / "other-home"), "OCULI_STORE": f"lance://{settings.home / 'collections'}",
           "PYTHONPATH": str(REPO / "src")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["shas"] == shas and sorted(out["local"]) == shas
    assert all(pth.startswith(f"{s3_blobs}/alpha/") for pth in out["paths"]) and len(out["paths"]) == 3
    assert list((tmp_path / "other-home" / "cache" / "s3-blobs").rglob("*.png"))  # its own download cache


@pytest.fixture()
def own_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An S3 server of this test's own (so it can be taken down), with a bucket, in the environment."""
    srv, endpoint = start_server()
    bucket = make_bucket(endpoint)
    for k, v in {**TEST_CREDENTIALS, "OCULI_S3_ENDPOINT": endpoint, "OCULI_BLOBS": f"s3://{bucket}/up"}.items():
        monkeypatch.setenv(k, v)
    state = {"srv": srv, "endpoint": endpoint, "bucket": bucket}
    yield state
    state["srv"].stop()


def test_a_bucket_that_goes_away_makes_the_job_wait_and_loses_nothing(own_s3, make_client, keys, monkeypatch):
    from oculi.server.jobs import JobWorker

    monkeypatch.setattr(JobWorker, "store_retry_s", 0.2)
    c = make_client(store_factory="default")
    first = [("a.png", png_bytes(40, 30, (200, 10, 10)))]
    assert _wait(c, keys["write"], _upload(c, keys["write"], "alpha", first).json()["id"])["state"] == "done"

    own_s3["srv"].stop()  # the S3 server is down
    second = [(f"b{i}.png", png_bytes(50 + i, 30, (10, 200, 10 * i))) for i in range(2)]
    job_id = _upload(c, keys["write"], "alpha", second).json()["id"]
    t0 = time.monotonic()
    while "waiting for the store" not in (_job(c, keys["write"], job_id).get("error") or ""):
        assert time.monotonic() - t0 < 60, _job(c, keys["write"], job_id)
        time.sleep(0.1)
    j = _job(c, keys["write"], job_id)
    assert j["state"] in ("queued", "running") and own_s3["endpoint"] in j["error"] and "Traceback" not in j["error"], j
    items = c.get("/api/v1/collections/alpha/items", headers=bearer(keys["read"])).json()
    assert items["total"] == 1  # no item without its original

    srv, _ = start_server(int(own_s3["endpoint"].rsplit(":", 1)[1]))  # back, on the same port, with its buckets
    own_s3["srv"] = srv
    j = _wait(c, keys["write"], job_id)
    assert j["state"] == "done" and j["done"] == 2 and j["failed"] == 0 and not j["error"], j
    assert c.get("/api/v1/collections/alpha/items", headers=bearer(keys["read"])).json()["total"] == 3
    objs = s3_client(own_s3["endpoint"]).list_objects_v2(Bucket=own_s3["bucket"], Prefix="up/alpha/")["Contents"]
    assert len(objs) == 3
