"""A corruption suite any ``Store`` implementation can run: damage each kind of thing it
stores, then demand detection, a clear error, no overwrite and a working repair.

A store plugs in through a ``StoreHarness``: how to make an empty store in a folder, and, per
*kind* of stored thing (``data``, ``manifest``, ``index``, ``meta``...), which file holds one
of them in a filled collection and whether damaging it must make reads fail. The cases are
``kind × damage`` (``truncate``, ``garble``, ``delete``, ``zero``; plus a 4 KB overwrite of a
data file, the silent kind). A later table (footage's sources, tracks, events) or a server
store adds its kinds to its harness and gets the same assertions:

1. ``check_collection`` reports the damage (the right kind, what it affects);
2. reading either works and returns the original data, or raises ``StoreCorruptError`` whose
   message names the collection and ``oculi collections repair`` and holds no Lance or Rust
   internals; reading never returns "empty";
3. a write is refused before anything is written: every stored file is byte-identical after
   (where the damage is harmless to the current data, or is a rebuildable index, the write goes
   ahead, and still changes no file that was there);
4. ``repair_collection`` leaves a collection that checks ok; every original item is either
   there byte for byte (vectors included) or listed for re-indexing (its source is on disk) or
   as lost; the vector spaces (which model made the vectors: here a brought embedder's, which
   nothing built in could guess) are what they were, so the repaired collection still refuses
   another embedder's vectors; a second repair does nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from oculi.core.errors import ModelConfigError, StoreCorruptError
from oculi.store import FileRecord, ItemRecord, item_id
from oculi.store.base import vector_models_of

DAMAGES = ("truncate", "garble", "delete", "zero")
TD, ID = 16, 24
COLLECTION = "damaged"
# the vector spaces of a model the user brought (not derivable from the built-in model's record)
SPACES = {"image": {"model": "transformers:siglip-base-patch16-224", "dim": ID},
          "text": {"model": "openai:nomic-embed-text", "dim": TD}}


def vec(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_item(n: int, source: Path) -> ItemRecord:
    sha = hashlib.sha256(f"item {n}".encode()).hexdigest()
    return ItemRecord(
        id=item_id(sha), sha256=sha, path=str(source), name=source.name, width=64, height=48,
        text_vec=vec(n, TD), image_vec=vec(10_000 + n, ID), caption=f"thing {n}", doc=f"thing {n} word{n} coffee",
        labels=("espresso",), objects=("cup",), object_terms=("cup",), colours=("red",),
        observation={"n": n, "models": vector_models_of(SPACES)}, thumbnail=b"\xff\xd8" + os.urandom(600), time=1_600_000_000.0 + n,
    )


def damage_file(path: Path, how: str, *, seed: int = 7) -> None:
    """Damage one file the way disks and people do."""
    if how == "delete":
        path.unlink()
        return
    data = path.read_bytes()
    if how == "zero":
        path.write_bytes(b"")
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garble":  # every byte changed, same size
        path.write_bytes(bytes(b ^ 0x5A for b in data))
    elif how == "overwrite-4k":  # 4 KB of noise in the middle, same size: silent unless checksummed
        rng = random.Random(seed)
        mid = max(0, len(data) // 2 - 2048)
        n = min(4096, len(data) - mid)
        path.write_bytes(data[:mid] + bytes(rng.getrandbits(8) for _ in range(n)) + data[mid + n:])
    else:
        raise ValueError(how)


@dataclass
class Filled:
    """A collection written the way indexing writes one: several commits, a compaction, deletes."""

    items: dict[str, ItemRecord]  # what should be stored, by id
    sources: dict[str, Path]  # id -> its source file (on disk)
    store_dir: Path | None = None  # where the store was made (copied for each case)
    spaces: dict[str, Any] = field(default_factory=lambda: dict(SPACES))  # what the collection records


def fill(store: Any, sources_dir: Path, name: str = COLLECTION) -> Filled:
    """Three writes of items with their file records, an optimize (compaction, FTS index) in
    between, then deletions: data files, deletion files, an index, old versions, a restore point."""
    coll = store.create_collection(name)
    items: dict[str, ItemRecord] = {}
    sources: dict[str, Path] = {}
    for start, stop in ((0, 20), (20, 30), (30, 40)):
        batch = []
        for n in range(start, stop):
            src = sources_dir / f"img{n:02d}.jpg"
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(f"source {n}".encode())
            it = make_item(n, src)
            batch.append(it)
            items[it.id] = it
            sources[it.id] = src
        with coll.writer():
            coll.set_vector_spaces(SPACES)  # as indexing records them before writing vectors
            coll.add_items(batch)
            coll.upsert_files([FileRecord(str(sources[i.id]), i.id, 10, 1) for i in batch])
            if stop == 30:
                coll.optimize()
    gone = [make_item(n, sources_dir / f"img{n:02d}.jpg") for n in (3, 25, 35)]
    with coll.writer():
        coll.delete_files([it.path for it in gone])
        coll.delete_orphan_items()
    for it in gone:
        del items[it.id]
        sources.pop(it.id).unlink()
    return Filled(items, sources)


def snapshot(root: Path) -> dict[str, str]:
    """Every stored file and its SHA-256 (to prove nothing was overwritten)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in (".lock", "latest_version_hint.json"):  # rewritten by every commit
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass(frozen=True)
class Kind:
    """One kind of stored thing, and how damaging it shows."""

    name: str
    pick: Callable[[Path], Path]  # the collection directory -> the file to damage
    breaks_reads: bool  # reading the collection must then fail (else it must still work)
    reported_as: str  # the ``Damage.kind`` check must report
    writes: str = "refused"  # "refused"; "heal" (derived data: the write rebuilds it); "allowed" (harmless)


@dataclass
class StoreHarness:
    """How the suite drives one store implementation."""

    name: str
    make_store: Callable[[Path], Any]
    kinds: dict[str, Kind] = field(default_factory=dict)


def _clean(msg: str) -> bool:
    low = msg.lower()
    return "lance error" not in low and ".rs:" not in msg and "/.cargo/" not in msg and "Traceback" not in msg


def _read_everything(coll: Any) -> dict[str, dict[str, Any]]:
    rows = {}
    for batch in coll.iter_items(["id", "text_vec", "image_vec", "thumbnail", "caption"]):
        for r in batch:
            rows[r["id"]] = r
    coll.file_states()
    coll.keyword_search("coffee", k=5)
    coll.vector_search(vec(1, TD), column="text_vec", k=3)
    return rows


def assert_same(row: dict[str, Any], it: ItemRecord) -> None:
    assert np.allclose(np.asarray(row["text_vec"], dtype=np.float32), it.text_vec, atol=1e-6)
    assert np.allclose(np.asarray(row["image_vec"], dtype=np.float32), it.image_vec, atol=2e-3)  # float16
    assert bytes(row["thumbnail"]) == it.thumbnail and row["caption"] == it.caption


def build_template(harness: StoreHarness, folder: Path) -> Filled:
    """Fill a store once (``folder/store``, sources in ``folder/sources``); cases copy it."""
    filled = fill(harness.make_store(folder / "store"), folder / "sources")
    filled.store_dir = folder / "store"
    return filled


def run_case(harness: StoreHarness, base: Path, kind: Kind, how: str, template: Filled) -> None:
    """Damage one thing one way (in a copy of ``template``) and check what the module docstring
    promises."""
    assert template.store_dir is not None
    shutil.copytree(template.store_dir, base / "store")
    (base / "sources").mkdir(parents=True)
    filled = Filled(dict(template.items), dict(template.sources))
    store = harness.make_store(base / "store")
    root = Path(store.collection_dir(COLLECTION))
    target = kind.pick(root)
    damage_file(target, how)

    # 1. detected
    fresh = harness.make_store(base / "store")
    report = fresh.check_collection(COLLECTION)
    assert not report.ok, f"{kind.name}/{how} not detected"
    assert kind.reported_as in {d.kind for d in report.damage}, report.to_dict()

    before = snapshot(root)
    if how == "overwrite-4k":
        # silent damage is found by the checksums of ``check``; until then Lance may read it in its
        # own way (measured: one such scan grew to 19 GB), so this case reads and writes nothing
        _repair_and_verify(harness, base, filled)
        return

    # 2. reads: the original data, or a clear error; never empty
    try:
        rows = _read_everything(fresh.open_collection(COLLECTION))
    except StoreCorruptError as e:
        assert kind.breaks_reads, f"{kind.name}/{how}: reads should work: {e}"
        assert COLLECTION in str(e) and f"oculi collections repair {COLLECTION}" in str(e) and _clean(str(e)), str(e)
    else:
        assert not kind.breaks_reads, f"{kind.name}/{how}: reading a damaged collection must fail, it returned " \
            f"{len(rows)} items"
        assert set(rows) == set(filled.items)
        for i, it in filled.items.items():
            assert_same(rows[i], it)

    # 3. a write is refused (or heals, or goes ahead) and overwrites nothing
    src = base / "sources" / "new.jpg"
    src.write_bytes(b"new")
    new = make_item(99, src)
    try:
        coll = fresh.create_collection(COLLECTION, exist_ok=True)
        with coll.writer():
            coll.add_items([new])
            coll.upsert_files([FileRecord(str(src), new.id, 3, 1)])
    except StoreCorruptError as e:
        assert kind.writes == "refused", f"{kind.name}/{how}: the write should have gone ahead: {e}"
        assert _clean(str(e)), str(e)
        after = snapshot(root)
        assert after == before, f"a refused write changed stored files: {_diff(before, after)}"
    else:
        assert kind.writes != "refused", f"{kind.name}/{how}: writing into a damaged collection must be refused"
        after = snapshot(root)
        rewritten = ("collection.json", "integrity.json", "integrity.json.journal")  # by design, atomically
        kept = {k: v for k, v in after.items() if k in before and k not in rewritten}
        assert kept == {k: v for k, v in before.items() if k in kept} and set(before) <= set(after) | set(rewritten), \
            f"a write changed or removed stored files: {_diff(before, after)}"
        filled.items[new.id] = new
        filled.sources[new.id] = src
        if kind.writes == "heal":
            assert fresh.open_collection(COLLECTION).keyword_search("coffee", k=3), "the index was not rebuilt"

    _repair_and_verify(harness, base, filled)


def _diff(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    return {"removed": sorted(set(before) - set(after)), "added": sorted(set(after) - set(before)),
            "changed": sorted(k for k in before if k in after and before[k] != after[k])}


def _repair_and_verify(harness: StoreHarness, base: Path, filled: Filled) -> None:
    """4. repair: checks ok after; every item intact or reported; a second repair does nothing."""
    rep = harness.make_store(base / "store").repair_collection(COLLECTION)
    assert rep.after is not None and rep.after.ok, rep.to_dict()
    repaired = harness.make_store(base / "store").open_collection(COLLECTION)
    rows = _read_everything(repaired)
    reindex = set(rep.reindex_paths)
    lost = set(rep.lost_paths) | set(rep.lost_originals)
    for i, it in filled.items.items():
        if i in rows:
            assert_same(rows[i], it)
        else:
            assert str(filled.sources[i]) in reindex | lost, f"item {i} vanished without being reported"
    assert set(rows) <= set(filled.items), "repair brought back items that had been deleted"
    if rows:  # the spaces survive (rebuilt from the items when collection.json was lost): another model is refused
        from oculi.tasks.index.spaces import check_spaces

        assert repaired.vector_spaces() == filled.spaces, (repaired.vector_spaces(), rep.to_dict())
        other = {"image": {"model": "builtin/efficientnet-lite0", "dim": ID}, "text": filled.spaces["text"]}
        try:
            check_spaces(COLLECTION, repaired.vector_spaces(), other, repaired.count())
        except ModelConfigError as e:
            assert "--reindex" in str(e)
        else:
            raise AssertionError("a repaired collection took another embedder's vectors")
    again = harness.make_store(base / "store").repair_collection(COLLECTION)
    assert not again.actions and sorted(again.reindex_paths) == sorted(reindex), again.to_dict()
    shutil.rmtree(base)
