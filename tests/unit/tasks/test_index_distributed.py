"""The Ray engine's two halves without Ray: the worker (``IngestActor``) and the driver
(``RayPipeline``), with the deterministic fake perceiver. The cluster in between is replaced by
running the actor in this process (``tests/e2e/test_index_ray.py`` runs the real thing)."""

from __future__ import annotations

import functools
import hashlib
import pickle
import shutil
from pathlib import Path

import pytest

from oculi.imageio import ImageLimits
from oculi.library import Library
from oculi.store import open_store
from oculi.store.base import item_id
from oculi.tasks.index import distributed
from oculi.tasks.index.distributed import IngestActor, RayPipeline, RemoteResult
from oculi.tasks.index.walk import FoundFile
from tests.search_fakes import fake_engine, fake_settings, write_png


def _found(p: Path) -> FoundFile:
    st = p.stat()
    return FoundFile(path=str(p), size=st.st_size, mtime_ns=st.st_mtime_ns)


def _call(actor: IngestActor, files: list[Path]) -> list[RemoteResult]:
    out = actor({"src": [pickle.dumps(_found(p)) for p in files]})
    return [pickle.loads(b) for b in out["result"]]


def _factory(home: Path):
    from oculi.engine import Engine

    return functools.partial(Engine, fake_settings(home))


def test_worker_batch_new_copies_known_and_bad_files(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    a = write_png(root / "a.png", "red", pattern=1)
    b = write_png(root / "b.png", "blue", pattern=2)
    crash = write_png(root / "crash.png", "green", pattern=3, crash=True)
    a_copy, crash_copy = root / "a-copy.png", root / "crash-copy.png"
    shutil.copy(a, a_copy)
    shutil.copy(crash, crash_copy)
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    known = item_id(hashlib.sha256(b.read_bytes()).hexdigest())
    actor = IngestActor(_factory(tmp_path / "home"), ImageLimits(), [known], ocr=True)
    res = _call(actor, [a_copy, b, crash, broken, a, crash_copy])
    by = {Path(r.prep.src.path).name: r for r in res}
    assert [r.kind for r in res][:1] == ["added"]  # new items come before the file records that follow them
    assert by["a-copy.png"].kind == "added" and by["a-copy.png"].item.caption
    assert by["a.png"].kind == "relink" and by["a.png"].prep.iid == by["a-copy.png"].item.id
    assert by["b.png"].kind == "relink" and by["b.png"].prep.iid == known  # stored already: not decoded
    assert by["b.png"].prep.loaded is None
    assert by["crash.png"].kind == "failed" and "perception failed" in by["crash.png"].error
    assert by["crash-copy.png"].kind == "failed" and by["crash-copy.png"].error == by["crash.png"].error
    assert by["broken.jpg"].kind == "failed" and "broken.jpg" in by["broken.jpg"].error
    assert all(getattr(r.prep, "loaded", None) is None for r in res)  # no pixels go back to the driver


class InProcessPipeline(RayPipeline):
    """The driver with the cluster replaced by the actor run here, one batch at a time."""

    def _results(self, todo):  # noqa: ANN001
        actor = IngestActor(self.vision_factory, self.preparer.limits, self.known.snapshot(), self.ocr)
        for i in range(0, len(todo), self.batch_size):
            yield actor({"src": [pickle.dumps(f) for f in todo[i: i + self.batch_size]]})["result"]


@pytest.fixture()
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(distributed, "RayPipeline", InProcessPipeline)
    monkeypatch.setattr(distributed, "connect", lambda options: None)
    eng = fake_engine(tmp_path / "home")
    return Library(eng, open_store(eng.settings))


def test_driver_dedupes_across_batches_stops_and_resumes(library, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for i in range(9):
        write_png(root / f"img{i}.png", (i * 25, 100, 200 - i * 20), pattern=i + 1)
    shutil.copy(root / "img0.png", root / "z-copy-of-img0.png")  # stored when the resumed run starts
    shutil.copy(root / "img7.png", root / "z-copy-of-img7.png")  # perceived twice in one run, other batches
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    first = library.index([root], "r", engine="ray", batch_size=3, should_stop=stop)
    assert first.interrupted and first.added == 6 and first.relinked == 0, first.to_dict()
    coll = library.open("r")
    assert coll.count() == 6 and coll.file_count() == 6
    second = library.index([root], "r", engine="ray", batch_size=3)
    assert not second.interrupted and (second.added, second.relinked, second.unchanged) == (3, 2, 6), second.to_dict()
    local = library.index([root], "l", engine="local")
    assert (local.added, local.relinked) == (9, 2)
    assert coll.item_ids() == library.open("l").item_ids()
    ra = {p: r.id for p, r in coll.file_states().items()}
    assert ra == {p: r.id for p, r in library.open("l").file_states().items()}
    assert ra[str(root / "img0.png")] == ra[str(root / "z-copy-of-img0.png")]
    assert ra[str(root / "img7.png")] == ra[str(root / "z-copy-of-img7.png")] and coll.count() == 9


def test_ray_index_records_vector_spaces_and_refuses_another_embedder(library, tmp_path: Path) -> None:
    """The Ray driver records the collection's vector spaces and describer as a local run does,
    and a run whose image embedder is another model is refused before any work."""
    from oculi.backends.base import Backend, Capability
    from oculi.backends.registry import register_backend
    from oculi.core.errors import ModelConfigError
    from oculi.engine import Engine

    class Grey(Backend):  # another image embedder: 2-d
        type_name = "grey-embed"
        capabilities = frozenset({Capability.EMBED_IMAGE})
        image_dim = 2

        def embed_images(self, images):
            import numpy as np
            return np.tile(np.array([[0.6, 0.8]], np.float32), (len(images), 1))

    register_backend("grey-embed", Grey)
    root = tmp_path / "photos"
    for i in range(3):
        write_png(root / f"img{i}.png", (i * 60, 90, 30), pattern=i + 1)
    assert library.index([root], "r", engine="ray", batch_size=2).added == 3
    coll = library.open("r")
    assert coll.vector_spaces() == {"image": {"model": "fake", "dim": 192}, "text": {"model": "fake", "dim": 64}}
    assert coll.stats()["models"]["describer"] == "builtin"
    other = Library(Engine(fake_settings(tmp_path / "home", tasks={"embed_image": "grey-embed"})), library.store)
    write_png(root / "new.png", "blue", pattern=9)
    with pytest.raises(ModelConfigError, match=r"holds image vectors of fake \(192-d\).*--reindex"):
        other.index([root], "r", engine="ray", batch_size=2)
    assert coll.count() == 3
