"""``oculi index --engine ray``: the real built-in model on Ray actors, on a local Ray.

One Ray instance for the module (``ray.init(num_cpus=2)``; starting Ray costs seconds). The
collection a Ray run builds must be the one a local run builds from the same folder: same
items, captions, labels and documents, vectors equal to float tolerance. A corrupt file among
good ones is reported and the rest indexed; a run stopped part-way (in-process, and a driver
killed with SIGKILL) resumes to the full collection without duplicates.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "page.png", "rocket.png")
COMPARED = ("caption", "doc", "labels", "objects", "colours", "text", "sha256", "width", "height", "format", "name")


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for this module; yields the address other drivers connect to."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five sample photos, a copy of one (same content, another name) and a corrupt JPEG."""
    root = tmp_path_factory.mktemp("ray-photos")
    for name in PHOTOS:
        shutil.copy(samples_dir / name, root / name)
    shutil.copy(samples_dir / "coffee.png", root / "coffee-copy.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00JFIF" + os.urandom(600))
    return root


@pytest.fixture()
def library(engine, tmp_home: Path):
    from oculi.config import Settings
    from oculi.library import Library

    return Library(engine, settings=Settings())  # the engine's models, the test's empty home


def _rows(lib, name: str) -> dict[str, dict]:
    cols = ["id", "path", "text_vec", "image_vec", *COMPARED]
    return {r["id"]: r for rows in lib.open(name).iter_items(cols) for r in rows}


def _assert_same_collection(lib, a: str, b: str) -> None:
    ra, rb = _rows(lib, a), _rows(lib, b)
    assert set(ra) == set(rb) and len(ra) == len(PHOTOS)
    names: dict[str, set[str]] = {}  # item id -> the names of all its files
    for path, rec in lib.open(a).file_states().items():
        names.setdefault(rec.id, set()).add(Path(path).name)
    for iid, x in ra.items():
        y = rb[iid]
        for col in COMPARED:
            if col == "name":  # identical files: which one names the item depends on which arrived first
                assert x[col] in names[iid] and y[col] in names[iid], (x[col], y[col], names[iid])
                continue
            assert x[col] == y[col], (x["name"], col, x[col], y[col])
        np.testing.assert_allclose(x["text_vec"], y["text_vec"], atol=1e-5)
        np.testing.assert_allclose(x["image_vec"], y["image_vec"], atol=1e-4)
    fa, fb = lib.open(a).file_states(), lib.open(b).file_states()
    assert {p: r.id for p, r in fa.items()} == {p: r.id for p, r in fb.items()}


def test_ray_engine_builds_the_collection_the_local_engine_builds(ray_address, library, photos, engine, monkeypatch) -> None:
    import oculi.cli.common as cli_common
    from oculi.cli.main import app

    monkeypatch.setattr(cli_common, "_engine", engine)
    res = CliRunner().invoke(app, ["index", str(photos), "-c", "by-ray", "--engine", "ray", "--workers", "2", "--json"])
    assert res.exit_code == 2, res.output  # the corrupt file: reported, the rest indexed
    rep = json.loads(res.stdout)
    assert (rep["found"], rep["added"], rep["relinked"]) == (7, 5, 1) and not rep["interrupted"]
    assert [f["path"] for f in rep["failed"]] == [str(photos / "broken.jpg")]
    assert rep["ids"][str(photos / "coffee.png")] == rep["ids"][str(photos / "coffee-copy.png")]

    local = library.index([photos], "by-local", engine="local")
    assert (local.added, local.relinked, len(local.failed)) == (5, 1, 1)
    assert local.failed[0]["error"] == rep["failed"][0]["error"]
    _assert_same_collection(library, "by-local", "by-ray")
    hits = library.search("by-ray", text="a cat", top_k=1)
    assert hits.results[0].path.endswith("chelsea.png")

    again = library.index([photos], "by-ray", engine="ray")  # incremental: nothing to send to Ray
    assert (again.added, again.relinked, again.unchanged) == (0, 0, 6)


def test_stopped_ray_run_resumes_to_the_same_collection(ray_address, library, photos) -> None:
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2  # after the second batch back from the workers

    first = library.index([photos], "r", engine="ray", workers=2, batch_size=1, should_stop=stop)
    assert first.interrupted and 0 < first.added < 5, first.to_dict()
    coll = library.open("r")
    assert coll.count() == first.added and len(coll.item_ids()) == first.added, first.to_dict()
    assert coll.file_count() == first.added + first.relinked, first.to_dict()
    second = library.index([photos], "r", engine="ray", workers=2, batch_size=2)
    assert not second.interrupted and second.added == 5 - first.added, (first.to_dict(), second.to_dict())
    assert second.unchanged == first.added + first.relinked, (first.to_dict(), second.to_dict())
    library.index([photos], "l", engine="local")
    _assert_same_collection(library, "l", "r")


def _count(home: Path, name: str) -> int:
    from oculi.config import Settings
    from oculi.store import open_store

    try:
        store = open_store(Settings(home=home))
        return store.open_collection(name).count() if store.exists(name) else 0
    except Exception:  # noqa: BLE001 - the collection may be mid-creation
        return 0


def test_killed_ray_driver_resumes_without_duplicates(ray_address, library, photos, tmp_home: Path) -> None:
    """A driver connected to a running cluster (``--address``), killed after its first write."""
    env = {**os.environ, "OCULI_HOME": str(tmp_home), "OCULI_TEST_FLUSH_ITEMS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    p = subprocess.Popen([sys.executable, "-m", "tests.run_cli_with_fakes", "index", str(photos), "-c", "k",
                          "--engine", "ray", "--address", ray_address, "--workers", "1", "--batch-size", "1", "--json"],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 120
    while _count(tmp_home, "k") < 1 and p.poll() is None and time.time() < end:
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    before = _count(tmp_home, "k")
    assert p.returncode == -signal.SIGKILL and 1 <= before < 5, (before, err)
    rep = library.index([photos], "k", engine="ray", workers=2)
    assert rep.added + rep.relinked + rep.unchanged == 6 and rep.added <= 5 - before + 1
    coll = library.open("k")
    assert coll.count() == 5 and len(coll.item_ids()) == 5 and coll.file_count() == 6
    library.index([photos], "l2", engine="local")
    _assert_same_collection(library, "l2", "k")


def test_ray_ingestion_into_postgresql_equals_local(ray_address, engine, photos, pg_server: str) -> None:
    """The deployment's path: Ray workers perceive, the driver writes a PostgreSQL store."""
    import uuid

    from oculi.library import Library
    from oculi.store import open_store
    from tests.pgutil import pg_database

    with pg_database(pg_server, f"t_{uuid.uuid4().hex[:12]}") as url:
        store = open_store(url=url)
        try:
            lib = Library(engine, store)
            rep = lib.index([photos], "by-ray", engine="ray", workers=2, batch_size=2)
            assert (rep.added, rep.relinked, len(rep.failed)) == (5, 1, 1), rep.to_dict()
            lib.index([photos], "by-local", engine="local")
            _assert_same_collection(lib, "by-local", "by-ray")
            assert lib.search("by-ray", text="a cat", top_k=1).results[0].path.endswith("chelsea.png")
        finally:
            store.close()


def test_unknown_engine_and_unreachable_cluster_are_clear_errors(library, photos, tmp_home: Path) -> None:
    from oculi.core.errors import ConfigError

    with pytest.raises(ConfigError, match="engines are: local, ray"):
        library.index([photos], "x", engine="spark")
    from tests.serverutil import free_port

    env = {**os.environ, "OCULI_HOME": str(tmp_home), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    res = subprocess.run([sys.executable, "-m", "oculi", "index", str(photos), "--engine", "ray",
                          "--address", f"ray://127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "cannot reach the Ray cluster at ray://127.0.0.1:" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    from oculi.config import Settings
    from oculi.store import open_store

    assert open_store(Settings()).list_collections() == []  # nothing was created
