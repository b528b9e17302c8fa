"""The trained-model store: versions, checksums, damage found on load and by check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.core.errors import InputError, ModelAssetError, NotFoundError
from oculi.store.trained import TrainedStore


def test_versions_are_added_and_the_newest_is_loaded(tmp_path: Path) -> None:
    store = TrainedStore(tmp_path)
    a = store.save("parts", "classifier", {"w.bin": b"one"}, {"classes": ["a", "b"]})
    b = store.save("parts", "classifier", {"w.bin": b"two"}, {"classes": ["a", "b", "c"]})
    assert (a.version, b.version) == (1, 2)
    t = store.load("parts")
    assert t.version == 2 and t.manifest["classes"] == ["a", "b", "c"]
    assert t.file("w.bin").read_bytes() == b"two"
    assert store.load("parts", 1).file("w.bin").read_bytes() == b"one"
    assert [x.name for x in store.list()] == ["parts"]


def test_a_damaged_or_missing_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = TrainedStore(tmp_path)
    t = store.save("parts", "classifier", {"w.bin": b"weights", "c.png": b"png"}, {})
    (t.path / "w.bin").write_bytes(b"weightz")
    with pytest.raises(ModelAssetError, match=r"w.bin fails its SHA-256 check.*oculi train remove parts"):
        store.load("parts")
    (t.path / "c.png").unlink()
    states = store.check()
    assert [s.state for s in states] == ["damaged"]
    (t.path / "manifest.json").write_text("{not json", encoding="utf-8")
    assert store.check()[0].state == "unreadable"
    with pytest.raises(ModelAssetError, match="manifest cannot be read"):
        store.load("parts")


def test_newer_manifests_and_bad_names_are_refused(tmp_path: Path) -> None:
    store = TrainedStore(tmp_path)
    t = store.save("m", "vqa", {"w.bin": b"x"}, {})
    doc = json.loads((t.path / "manifest.json").read_text())
    doc["manifest_version"] = 99
    (t.path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelAssetError, match="newer oculi"):
        store.load("m")
    for bad in ("../x", "", "a/b", ".hidden"):
        with pytest.raises(InputError):
            store.save(bad, "vqa", {}, {})


def test_unknown_names_list_the_known_ones_and_remove_deletes(tmp_path: Path) -> None:
    store = TrainedStore(tmp_path)
    with pytest.raises(NotFoundError, match="there are none yet"):
        store.load("nope")
    store.save("kept", "adapter", {"w.bin": b"x"}, {})
    store.save("kept", "adapter", {"w.bin": b"y"}, {})
    with pytest.raises(NotFoundError, match="trained models: kept"):
        store.load("nope")
    assert store.remove("kept", 1) == [1]
    assert store.versions("kept") == [2]
    assert store.remove("kept") == [2]
    assert store.names() == []


def test_a_half_written_version_is_invisible(tmp_path: Path) -> None:
    store = TrainedStore(tmp_path)
    store.save("m", "classifier", {"w.bin": b"x"}, {})
    (tmp_path / "m" / "v2").mkdir()  # a crash before the manifest was renamed in
    (tmp_path / "m" / ".tmp-abc").mkdir()
    assert store.versions("m") == [1]
    assert store.save("m", "classifier", {"w.bin": b"y"}, {}).version == 3  # never written over the wreck
    assert store.versions("m") == [1, 3]
