"""The corruption suite (``tests/store_corruption.py``) run against the embedded LanceDB store.

Each kind of file the store writes is damaged four ways (truncated, garbled, deleted, emptied),
and a data file also gets a silent 4 KB overwrite. Another store implementation runs the same
cases by giving its own ``StoreHarness``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from oculi.store.integrity import IntegrityRecord
from oculi.store.lance import LanceStore
from oculi.store.lance_manifest import read_versions, version_from_name
from tests.store_corruption import DAMAGES, Filled, Kind, StoreHarness, build_template, run_case


def _latest(root: Path, table: str):
    return read_versions(root / f"{table}.lance", newest_only=True).latest


def _biggest_data_file(root: Path, table: str = "items") -> Path:
    m = _latest(root, table)
    files = [root / f"{table}.lance" / f for frag in m.fragments for f in frag.data_files]
    return max(files, key=lambda p: p.stat().st_size)  # the compacted one


def _deletion_file(root: Path) -> Path:
    m = _latest(root, "items")
    return next(root / "items.lance" / f.deletion_file for f in m.fragments if f.deletion_file)


def _fts_file(root: Path) -> Path:
    m = _latest(root, "items")
    ix = next(i for i in m.indices if i.name == "doc_idx")
    d = root / "items.lance" / ix.directory
    return max((p for p in d.iterdir()), key=lambda p: p.stat().st_size)


def _manifest(root: Path, which: str) -> Path:
    rec = IntegrityRecord.load(root / "integrity.json")
    v = rec.tables["items"]["version" if which == "newest" else "fallback_version"]
    return next(p for p in (root / "items.lance" / "_versions").iterdir() if version_from_name(p.name) == v)


def _transaction(root: Path) -> Path:
    return root / "items.lance" / _latest(root, "items").transaction_file


LANCE = StoreHarness("lance", lambda d: LanceStore(d), {
    "manifest": Kind("manifest", lambda r: _manifest(r, "newest"), True, "manifest"),
    "restore-point": Kind("restore-point", lambda r: _manifest(r, "fallback"), False, "manifest", writes="allowed"),
    "data": Kind("data", _biggest_data_file, True, "data"),
    "files-data": Kind("files-data", lambda r: _biggest_data_file(r, "files"), True, "data"),
    "deletion": Kind("deletion", _deletion_file, True, "deletion"),
    "index": Kind("index", _fts_file, True, "index", writes="heal"),
    "transaction": Kind("transaction", _transaction, False, "transaction", writes="allowed"),
    "meta": Kind("meta", lambda r: r / "collection.json", True, "meta"),
    "record": Kind("record", lambda r: r / "integrity.json", False, "integrity-record"),
})

CASES = [(k, how) for k in LANCE.kinds for how in DAMAGES] + [("data", "overwrite-4k")]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    return build_template(LANCE, tmp_path_factory.mktemp("template"))


@pytest.mark.parametrize("kind,how", CASES, ids=[f"{k}-{h}" for k, h in CASES])
def test_damage_is_detected_refused_and_repaired(tmp_path: Path, template: Filled, kind: str, how: str) -> None:
    run_case(LANCE, tmp_path / "case", LANCE.kinds[kind], how, template)


def test_optimize_keeps_a_restore_point_that_repair_goes_back_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with old versions removed at once, optimize keeps the version it started from; when
    the compacted data file it produced is damaged, repair restores that version: nothing lost."""
    from datetime import timedelta

    from oculi.store import lance as lance_mod
    from tests.store_corruption import damage_file, make_item

    from oculi.store import lance_check

    monkeypatch.setattr(lance_mod, "CLEANUP_AFTER", timedelta(0))
    monkeypatch.setattr(lance_check, "RESTORE_MARGIN", timedelta(seconds=0.2))
    store = LanceStore(tmp_path / "store")
    coll = store.create_collection("c")
    items = []
    for start in (0, 10, 20):
        batch = [make_item(n, tmp_path / f"src{n}.jpg") for n in range(start, start + 10)]
        items += batch
        with coll.writer():
            coll.add_items(batch)
            coll.optimize()  # compacts the fragments into one new file each time
        time.sleep(0.3)
    root = tmp_path / "store" / "c"
    rec = IntegrityRecord.load(root / "integrity.json").tables["items"]
    versions = read_versions(root / "items.lance")
    assert rec["fallback_version"] in versions.readable and rec["fallback_version"] < rec["version"]
    assert min(versions.readable) == rec["fallback_version"]  # everything older was cleaned up
    damage_file(_biggest_data_file(root), "truncate")
    rep = LanceStore(tmp_path / "store").repair_collection("c")
    assert rep.after.ok and rec["fallback_version"] <= rep.restored_versions["items"] < rec["version"]
    assert rep.rows_lost == {} and rep.reindex_paths == [] and rep.lost_unknown == 0
    got = {r["id"] for b in LanceStore(tmp_path / "store").open_collection("c").iter_items(["id"]) for r in b}
    assert got == {it.id for it in items}


@pytest.mark.parametrize("how", ["table-deleted", "no-version-left"])
def test_a_whole_lost_table_starts_empty_and_its_items_are_listed_for_reindexing(
        tmp_path: Path, template: Filled, how: str) -> None:
    import shutil

    shutil.copytree(template.store_dir, tmp_path / "store")
    root = tmp_path / "store" / "damaged"
    if how == "table-deleted":
        shutil.rmtree(root / "items.lance")
    else:
        for p in (root / "items.lance" / "_versions").glob("*.manifest"):
            p.unlink()
    check = LanceStore(tmp_path / "store").check_collection("damaged")
    assert not check.ok and check.damage[0].kind == "table"
    rep = LanceStore(tmp_path / "store").repair_collection("damaged")
    assert rep.after.ok, rep.to_dict()
    assert sorted(rep.reindex_paths) == sorted(str(p) for p in template.sources.values())
    coll = LanceStore(tmp_path / "store").open_collection("damaged")
    assert coll.count() == 0 and coll.file_count() == len(template.items)
