"""Indexing with a deterministic fake perceiver: formats, incremental runs, bad input, EXIF, stop/resume."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from oculi.core.errors import InputError
from oculi.core.types import ColourShare, DetectedObject, Box, ImageInfo, Label, Observation, TextLine
from oculi.store import open_store
from oculi.library import Library
from oculi.tasks import index as index_mod
from oculi.tasks.index import IndexProgress, observation_document, read_exif, walk_images
from oculi.tasks.index import api as api_mod
from oculi.tasks.index import walk as walk_mod
from tests.search_fakes import PALETTE, TEXT_DIM, fake_engine, write_png


@pytest.fixture()
def env(tmp_path: Path):
    eng = fake_engine(tmp_path / "home")
    return eng, open_store(eng.settings), tmp_path / "photos"


def make_library(root: Path) -> dict[str, Path]:
    p = {
        "cat": write_png(root / "cat.png", "grey", labels=[("tabby", 0.8)], objects=[{"label": "cat", "score": 0.9}], pattern=1),
        "car": write_png(root / "cars" / "red_car.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=2),
        "sign": write_png(root / "docs" / "sign.png", "white", text=["LIMITED EDITION", "Oculi 2024"], pattern=3),
    }
    base = Image.new("RGB", (60, 40), PALETTE["blue"])
    for fmt, ext in (("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff"), ("GIF", "gif")):
        img = base.copy()
        img.paste(PALETTE["yellow"], (0, 0, 10 + len(ext) * 5, 20))
        p[ext] = root / "formats" / f"blue.{ext}"
        p[ext].parent.mkdir(parents=True, exist_ok=True)
        img.save(p[ext], format=fmt)
    (root / "notes.txt").write_text("not an image, not even looked at")
    return p


def test_index_a_folder_then_nothing_changes(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    lib = make_library(root)
    seen: list[IndexProgress] = []
    r = library.index([root], "lib", progress=seen.append)
    assert r.failed == [] and r.found == 8 and r.added == 8 and r.items_total == 8
    assert {p.phase for p in seen} >= {"scanning", "indexing", "finishing"}
    assert seen[-1].done == 8 or any(p.done == 8 for p in seen)
    assert set(r.ids) == {str(p) for p in lib.values()}
    r2 = library.index([root], "lib")
    assert (r2.added, r2.relinked, r2.unchanged, r2.changed) == (0, 0, 8, 0)
    coll = store.open_collection("lib")
    row = coll.get_items([r.ids[str(lib["car"])]])[0]
    assert row["objects"] == ["car"] and "red car" in row["object_terms"] and row["colours"][0] == "red"
    assert coll.thumbnail(r.ids[str(lib["cat"])])[:2] == b"\xff\xd8"


def test_changes_copies_renames_and_prune(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    lib = make_library(root)
    library.index([root], "lib")
    coll = store.open_collection("lib")
    # a copy and a rename: recorded against the existing item, no perception
    shutil.copy(lib["cat"], root / "cat_copy.png")
    os.rename(lib["jpg"], root / "formats" / "renamed.jpg")
    # a changed file: new content at the same path
    write_png(lib["car"], "green", objects=[{"label": "truck"}], pattern=9)
    # touched but identical: relinked
    os.utime(lib["sign"], ns=(1, 1))
    r = library.index([root], "lib")
    assert r.added == 1 and r.relinked == 3 and r.changed == 1 and r.missing == 1 and r.removed == 0
    assert r.items_removed == 1  # the old content of the changed file
    assert coll.count() == 8
    # the rename's old path is still recorded until --prune
    r = library.index([root], "lib", prune=True)
    assert r.removed == 1 and r.added == 0 and r.unchanged == 9
    assert str(lib["jpg"]) not in coll.file_states()
    assert coll.count() == 8
    # deleting one of two copies keeps the item, shown at the remaining path
    cat_id = r.ids.get(str(lib["cat"])) or coll.file_states()[str(lib["cat"])].id
    os.remove(lib["cat"])
    r = library.index([root], "lib", prune=True)
    assert r.removed == 1 and r.items_removed == 0
    assert coll.get_items([cat_id])[0]["path"] == str(root / "cat_copy.png")
    # deleting the last copy forgets the item
    os.remove(root / "cat_copy.png")
    r = library.index([root], "lib", prune=True)
    assert r.items_removed == 1 and coll.count() == 7


def test_prune_only_touches_the_given_roots(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    write_png(root / "a" / "1.png", "red", pattern=1)
    write_png(root / "b" / "2.png", "blue", pattern=2)
    library.index([root / "a"], "c")
    library.index([root / "b"], "c")
    r = library.index([root / "b"], "c", prune=True)
    assert r.removed == 0 and store.open_collection("c").count() == 2


def test_bad_files_are_listed_and_never_abort(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    write_png(root / "good1.png", "red", pattern=1)
    write_png(root / "good2.png", "blue", pattern=2)
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_bytes(b"hello, I am not a PNG")
    good = io.BytesIO()
    Image.new("RGB", (200, 200), (1, 2, 3)).save(good, format="JPEG")
    (root / "truncated.jpg").write_bytes(good.getvalue()[:300])
    write_png(root / "crash.png", "green", crash=True, pattern=3)  # the model raises on this one
    r = library.index([root], "bad", batch_size=8)
    failed = {Path(f["path"]).name: f["error"] for f in r.failed}
    assert set(failed) == {"empty.jpg", "text.png", "truncated.jpg", "crash.png"}
    assert "empty" in failed["empty.jpg"] and "not an image" in failed["text.png"]
    assert "perception failed" in failed["crash.png"]
    assert r.added == 2 and store.open_collection("bad").count() == 2
    # failures are retried next time (nothing recorded for them), good files are not redone
    r2 = library.index([root], "bad")
    assert r2.added == 0 and r2.unchanged == 2 and len(r2.failed) == 4


def test_missing_root_is_an_input_error(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    with pytest.raises(InputError, match="no such file"):
        library.index([root / "nope"], "x")
    with pytest.raises(InputError):
        library.index([], "x")


def test_symlink_loops_unreadable_folders_and_vanishing_files(env, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, store, root = env
    library = Library(eng, store)
    write_png(root / "a" / "1.png", "red", pattern=1)
    write_png(root / "locked" / "2.png", "blue", pattern=2)
    os.symlink(root, root / "a" / "loop")  # a → root → a → ...
    os.symlink(root / "missing.png", root / "broken.png")
    real_scandir = os.scandir

    def scandir(path):  # noqa: ANN001 - running as root, so simulate a folder we may not read
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(walk_mod.os, "scandir", scandir)
    w = walk_images([root])
    assert [Path(f.path).name for f in w.files] == ["1.png"]
    problems = {Path(p["path"]).name: p["problem"] for p in w.problems}
    assert "loop" in problems and "permission denied" in problems["locked"] and "broken" in problems["broken.png"]
    r = library.index([root], "w")
    assert r.added == 1 and len(r.problems) == 3
    # a file listed by the walk that vanishes before it is read
    monkeypatch.setattr(api_mod, "walk_images", lambda *a, **k: index_mod.WalkResult(
        files=[index_mod.FoundFile(str(root / "gone.png"), 10, 1, "gone.png")]))
    r = library.index([root], "w")
    assert r.failed and "vanished" in r.failed[0]["error"]
    # an unreadable folder never prunes what was indexed beneath it
    monkeypatch.undo()
    monkeypatch.setattr(walk_mod.os, "scandir", real_scandir)
    library.index([root], "w")
    assert store.open_collection("w").count() == 2
    monkeypatch.setattr(walk_mod.os, "scandir", scandir)
    r = library.index([root], "w", prune=True)
    assert r.removed == 0 and store.open_collection("w").count() == 2


def test_exif_time_camera_gps(env, tmp_path: Path) -> None:
    eng, store, root = env
    library = Library(eng, store)
    root.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2021:06:15 14:30:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "W", (0.0, 7.0, 30.0)
    Image.new("RGB", (80, 60), PALETTE["green"]).save(root / "exif.jpg", exif=exif.tobytes())
    meta = read_exif((root / "exif.jpg").read_bytes())
    assert meta.camera == "Canon EOS 5D" and meta.taken_at == pytest.approx(1623767400.0)
    assert meta.gps_lat == pytest.approx(52.52) and meta.gps_lon == pytest.approx(-0.125)
    write_png(root / "noexif.png", "green", pattern=4)
    os.utime(root / "noexif.png", (1_700_000_000, 1_700_000_000))  # 2023-11: the mtime stands in
    library.index([root], "e")
    row = store.open_collection("e").get_items([item for item in store.open_collection("e").item_ids()], columns=None)
    by = {Path(r["path"]).name: r for r in row}
    assert by["exif.jpg"]["camera"] == "Canon EOS 5D" and by["exif.jpg"]["gps_lat"] == pytest.approx(52.52)
    assert by["noexif.png"]["taken_at"] is None and by["noexif.png"]["time"] == pytest.approx(1_700_000_000)
    names = lambda res: [Path(x.path).name for x in res.results]  # noqa: E731
    assert names(library.search("e", text="green", after="2021-06-01", before="2021-07-01")) == ["exif.jpg"]
    assert names(library.search("e", text="green", after="2023")) == ["noexif.png"]
    assert read_exif(b"garbage") == index_mod.ExifMeta()


def test_stop_then_resume_completes_without_duplicates(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    for i in range(20):
        write_png(root / f"img{i:02d}.png", (i * 12, 80, 200 - i * 9), pattern=i + 1)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 6

    r = library.index([root], "s", should_stop=stop, batch_size=4)
    assert r.interrupted and 0 < r.added < 20
    coll = store.open_collection("s")
    assert coll.count() == r.added == coll.file_count()
    r2 = library.index([root], "s", batch_size=4)
    assert not r2.interrupted and r2.added == 20 - r.added and r2.unchanged == r.added
    assert coll.count() == 20 and len(coll.item_ids()) == 20 and coll.file_count() == 20


def test_items_without_file_records_are_relinked_not_reperceived(env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state a kill between the items write and the files write leaves behind."""
    eng, store, root = env
    library = Library(eng, store)
    for i in range(5):
        write_png(root / f"{i}.png", (i * 40, 10, 10), pattern=i + 1)
    from oculi.store.lance import LanceCollection

    monkeypatch.setattr(LanceCollection, "upsert_files", lambda self, files: None)
    r = library.index([root], "k")
    assert r.added == 5 and store.open_collection("k").file_count() == 0
    monkeypatch.undo()
    r = library.index([root], "k")
    assert r.added == 0 and r.relinked == 5 and store.open_collection("k").file_count() == 5


def test_ingest_uploaded_bytes(env) -> None:
    eng, store, root = env
    library = Library(eng, store)
    a = write_png(root / "a.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=1).read_bytes()
    b = write_png(root / "b.png", "blue", pattern=2).read_bytes()
    r = library.ingest("up", [("holiday/a.png", a), ("b.png", b), ("again.png", a), ("bad.jpg", b"nope")])
    assert r.added == 2 and r.relinked == 1
    assert set(r.ids) == {"a.png", "b.png", "again.png"} and r.ids["a.png"] == r.ids["again.png"]
    assert r.failed[0]["path"] == "bad.jpg" and r.failed[0]["error"].startswith("bad.jpg: ")
    coll = store.open_collection("up")
    assert coll.count() == 2
    row = coll.get_items([r.ids["a.png"]])[0]
    assert row["name"] == "a.png" and Path(row["path"]).is_file() and Path(row["path"]).read_bytes() == a
    assert "/blobs/" in row["path"]
    assert coll.thumbnail(r.ids["b.png"])[:2] == b"\xff\xd8"
    res = library.search("up", text="red car")
    assert res.results[0].id == r.ids["a.png"]


def test_observation_document() -> None:
    obs = Observation(
        ImageInfo(100, 100),
        objects=(DetectedObject("car", 0.9, Box(0, 0, 10, 10), colour="red"), DetectedObject("car", 0.8, Box(0, 0, 5, 5), colour="red"),
                 DetectedObject("person", 0.7, Box(0, 0, 5, 5))),
        labels=(Label("tabby", 0.6), Label("tiger cat", 0.2), Label("lynx", 0.01)),
        text=(TextLine("SALE 50%", 0.9, Box(0, 0, 1, 1)),),
        colours=(ColourShare("red", 0.5), ColourShare("white", 0.3)),
    )
    d = observation_document(obs, "A photo of two red cars.")
    assert d.caption == "A photo of two red cars."
    assert d.objects == ("car", "person") and d.object_terms == ("car", "red car", "person")
    assert d.labels == ("tabby", "tiger cat") and "tabby cat" in d.doc and "lynx" not in d.doc
    assert "SALE 50%" in d.doc and "SALE 50%" in d.summary and "two cars (red)" in d.doc
    assert d.colours == ("red", "white")


def test_refresh_documents_without_perception(env, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, store, root = env
    library = Library(eng, store)
    lib = make_library(root)
    r = library.index([root], "lib")
    coll = store.open_collection("lib")
    car = r.ids[str(lib["car"])]
    before = coll.get_items([car], columns=["doc", "thumbnail", "time"])[0]
    monkeypatch.setattr(api_mod, "observation_document",
                        lambda obs, caption=None: index_mod.Document("new caption", "new doc zebra", "zebra", (), (), (), (), "", ()))
    monkeypatch.setattr(eng, "observe_many", lambda *a, **k: pytest.fail("perception must not run"))
    assert library.refresh("lib") == 8
    after = coll.get_items([car], columns=["doc", "caption", "thumbnail", "time", "objects"])[0]
    assert after["doc"] == "new doc zebra" and after["caption"] == "new caption" and after["objects"] == []
    assert after["thumbnail"] == before["thumbnail"] and after["time"] == before["time"]
    assert coll.count() == 8 and coll.keyword_search("zebra", k=10)

    # a refresh after a change of the sentence encoder: the rewritten text vectors' model is recorded
    # by the collection and named on every item (what `collections repair` reads back)
    from oculi.backends.base import VectorSpace

    image_before = coll.vector_spaces()["image"]
    monkeypatch.setattr(eng.backend("embed_text"), "text_space", VectorSpace("fake-text-v2", TEXT_DIM), raising=False)
    assert library.refresh("lib") == 8
    assert coll.vector_spaces() == {"image": image_before, "text": {"model": "fake-text-v2", "dim": TEXT_DIM}}
    obs = coll.get_items([car], columns=["observation"])[0]["observation"]
    models = (json.loads(obs) if isinstance(obs, str) else obs)["models"]
    assert models["text_vectors"] == "fake-text-v2" and models["image_vectors"] == image_before["model"]
