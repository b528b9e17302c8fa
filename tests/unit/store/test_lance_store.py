"""The embedded LanceDB store: collections, records, filters (escaping), indexes, locking, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from oculi.core.errors import InputError, NotFoundError
from oculi.store import Condition, FileRecord, Filter, ItemRecord, Op, item_id
from oculi.store import lance as lance_mod
from oculi.store.base import glob_to_regex, validate_collection_name
from oculi.store.lance import LanceStore, compile_filter
from tests.store_contract import ID, TD, vec  # noqa: F401 - shared with the contract suite
from tests.store_contract import item as contract_item

REPO = Path(__file__).resolve().parents[3]


def item(n: int, **kw) -> ItemRecord:
    """The contract suite's item ``n``, without footage track ids."""
    return contract_item(n, **{"track_ids": (), **kw})


def files_for(items: list[ItemRecord]) -> list[FileRecord]:
    return [FileRecord(it.path, it.id, 100, 1) for it in items]


@pytest.fixture()
def store(tmp_path: Path) -> LanceStore:
    return LanceStore(tmp_path / "collections")


@pytest.fixture()
def filled(store: LanceStore):
    c = store.create_collection("photos")
    items = [item(n) for n in range(30)]
    with c.writer():
        c.add_items(items)
        c.upsert_files(files_for(items))
    return c


def test_collection_lifecycle(store: LanceStore) -> None:
    assert store.list_collections() == []
    c = store.create_collection("holiday-2021")
    assert store.exists("holiday-2021") and c.count() == 0
    assert [i.name for i in store.list_collections()] == ["holiday-2021"]
    assert store.create_collection("holiday-2021").name == "holiday-2021"  # exist_ok
    with pytest.raises(InputError):
        store.create_collection("holiday-2021", exist_ok=False)
    store.drop_collection("holiday-2021")
    assert not store.exists("holiday-2021") and store.list_collections() == []
    with pytest.raises(NotFoundError, match="no collection named 'nope'"):
        store.open_collection("nope")
    with pytest.raises(NotFoundError):
        store.drop_collection("nope")


@pytest.mark.parametrize("bad", ["", " ", "../etc", ".hidden", "a/b", "x" * 65, "semi;colon", "a..b"])
def test_collection_names_are_validated(store: LanceStore, bad: str) -> None:
    with pytest.raises(InputError):
        validate_collection_name(bad)
    with pytest.raises(InputError):
        store.create_collection(bad)


def test_records_roundtrip(filled) -> None:
    c = filled
    assert c.count() == 30 and c.file_count() == 30
    it = item(4)
    row = c.get_items([it.id])[0]
    assert row["path"] == it.path and row["labels"] == ["espresso"] and row["time"] == it.time
    assert json.loads(row["observation"]) == it.observation
    assert c.thumbnail(it.id) == it.thumbnail
    with pytest.raises(NotFoundError):
        c.thumbnail("0" * 32)
    states = c.file_states()
    assert states[it.path].id == it.id and states[it.path].size == 100
    assert c.item_ids() == {item(n).id for n in range(30)}
    ids, mats = zip(*c.iter_vectors("image_vec"))
    m = np.concatenate(mats)
    assert m.shape == (30, ID) and m.dtype == np.float32
    i = sum(ids, []).index(it.id)
    assert np.allclose(m[i], it.image_vec, atol=1e-3)  # stored as float16


def test_adding_the_same_ids_again_makes_no_duplicates(filled) -> None:
    c = filled
    with c.writer():
        c.add_items([item(1), item(2), item(31), item(31)])
    assert c.count() == 31
    assert len(c.item_ids()) == 31


def test_vector_and_keyword_search(filled) -> None:
    c = filled
    hits = c.vector_search(vec(7, TD), column="text_vec", k=3)
    assert hits[0].id == item(7).id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert "text_vec" not in hits[0].fields and "thumbnail" not in hits[0].fields
    hits = c.vector_search(vec(1007, ID), column="image_vec", k=1)
    assert hits[0].id == item(7).id and hits[0].score > 0.99
    kw = c.keyword_search("cats", k=50)  # stemmed: cats → cat
    assert kw and {h.id for h in kw} == {item(n).id for n in range(0, 30, 3)}
    assert c.keyword_search("   ", k=5) == []
    # quotes and query-language characters are words, not syntax
    assert c.keyword_search("o'neil AND (coffee OR \"x", k=5) is not None


def test_filters(filled) -> None:
    c = filled
    q = vec(3, TD)

    def ids(*conds: Condition) -> set[str]:
        return {h.id for h in c.vector_search(q, column="text_vec", k=100, filter=Filter(conds))}

    assert ids(Condition("objects", Op.HAS, "cat")) == {item(n).id for n in range(0, 30, 3)}
    assert ids(Condition("object_terms", Op.HAS, "red cup")) == {item(n).id for n in range(30) if n % 3}
    assert ids(Condition("time", Op.GE, 1_600_000_025)) == {item(n).id for n in range(25, 30)}
    assert ids(Condition("time", Op.LT, 1_600_000_002)) == {item(0).id, item(1).id}
    assert ids(Condition("path", Op.GLOB, "*/a/img1?.jpg")) == {item(n).id for n in range(11, 20, 2)}
    assert ids(Condition("caption", Op.CONTAINS, "THING 2")) == {item(n).id for n in (2, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29)}
    assert ids(Condition("name", Op.EQ, "img5.jpg"), Condition("width", Op.EQ, 640)) == {item(5).id}
    # keyword search honours filters too
    kw = c.keyword_search("coffee", k=50, filter=Filter((Condition("path", Op.GLOB, "*/b/*"),)))
    assert kw and all("/b/" in h.fields["path"] for h in kw)


@pytest.mark.parametrize("evil", [
    "x' OR 1=1 --", "x'); DROP TABLE items; --", "\\", "'", "%", "_", "a\\'b", "ünïcödé 'quoted'", "*/../*",
])
def test_filter_values_are_escaped_never_spliced(filled, evil: str) -> None:
    c = filled
    q = vec(3, TD)
    for cond in (Condition("path", Op.EQ, evil), Condition("objects", Op.HAS, evil),
                 Condition("text", Op.CONTAINS, evil), Condition("name", Op.GLOB, evil)):
        assert c.vector_search(q, column="text_vec", k=100, filter=Filter((cond,))) == []
    assert c.count() == 30  # nothing dropped or altered


def test_filter_validation() -> None:
    with pytest.raises(InputError):
        Condition("password", Op.EQ, "x")
    with pytest.raises(InputError):
        Condition("width", Op.EQ, "wide")
    with pytest.raises(InputError):
        Condition("width", Op.EQ, float("nan"))
    with pytest.raises(InputError):
        Condition("objects", Op.GLOB, "*")
    with pytest.raises(InputError):
        Condition("path", Op.EQ, "a\x00b")
    sql = compile_filter(Filter((Condition("path", Op.EQ, "it's"), Condition("width", Op.GE, 10))))
    assert sql == "path = 'it''s' AND width >= 10"


def test_glob_to_regex() -> None:
    import re

    rx = re.compile(glob_to_regex("*/holiday [2021]/*.jp?g"))
    assert rx.match("/x/holiday 2/a.jpeg") and not rx.match("/x/holiday 2/a.png")
    assert re.compile(glob_to_regex("/a/(b)+c.$")).match("/a/(b)+c.$")
    assert re.compile(glob_to_regex("[!a]*")).match("b") and not re.compile(glob_to_regex("[!a]*")).match("a")


def test_delete_files_and_orphans(filled) -> None:
    c = filled
    it = item(5)
    with c.writer():
        c.upsert_files([FileRecord("/copies/img5.jpg", it.id, 100, 1)])  # a second path for item 5
        assert c.delete_files([it.path, item(6).path]) == 2
        assert c.delete_orphan_items() == 1  # item 6 had no other file; item 5 has the copy
        c.repoint_items({it.id: "/copies/img5.jpg"})
    assert c.count() == 29
    assert c.get_items([it.id])[0]["path"] == "/copies/img5.jpg"
    assert c.files_of([it.id]) == {it.id: ["/copies/img5.jpg"]}


def test_optimize_builds_indexes_and_search_still_works(store: LanceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lance_mod, "SCALAR_INDEX_MIN_ROWS", 100)
    c = store.create_collection("big")
    items = [item(n) for n in range(400)]
    with c.writer():
        for i in range(0, 400, 100):
            c.add_items(items[i : i + 100])
        c.upsert_files(files_for(items))
        c.optimize(force_ann=True)
    kinds = {i["name"]: i["type"] for i in c.indices()}
    assert {"doc_idx", "text_vec_idx", "image_vec_idx", "id_idx", "objects_idx"} <= set(kinds)
    hits = c.vector_search(vec(123, TD), column="text_vec", k=5)
    assert hits[0].id == item(123).id
    hits = c.vector_search(vec(123, TD), column="text_vec", k=5, filter=Filter((Condition("objects", Op.HAS, "cat"),)))
    assert hits[0].id == item(123).id  # 123 % 3 == 0
    assert c.thumbnail(item(77).id) == item(77).thumbnail
    with c.writer():  # new rows after the index is built are found too
        c.add_items([item(1000)])
    assert c.vector_search(vec(1000, TD), column="text_vec", k=1)[0].id == item(1000).id


def test_newer_schema_is_refused_and_older_is_migrated(store: LanceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    c = store.create_collection("old")
    meta_path = c.path / "collection.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="newer oculi"):
        LanceStore(store.root).open_collection("old")

    meta["schema_version"] = 0
    meta_path.write_text(json.dumps(meta))
    ran = []
    monkeypatch.setitem(lance_mod.MIGRATIONS, 0, lambda coll: ran.append(coll.name))
    c2 = LanceStore(store.root).open_collection("old")
    assert ran == ["old"] and c2.meta["schema_version"] == lance_mod.STORE_SCHEMA_VERSION
    assert json.loads(meta_path.read_text())["schema_version"] == lance_mod.STORE_SCHEMA_VERSION


def test_dims_mismatch_is_a_clear_error(filled) -> None:
    with pytest.raises(InputError, match="index into a new collection"):
        with filled.writer():
            filled.add_items([item(99, text_vec=vec(1, 32))])


def _child(code: str, tmp: Path) -> subprocess.Popen:
    script = tmp / "child.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])})


def test_one_writer_at_a_time_across_processes(store: LanceStore, tmp_path: Path) -> None:
    store.create_collection("locked")
    p = _child(f"""
        import time, sys
        from oculi.store.lance import LanceStore
        c = LanceStore({str(store.root)!r}).open_collection("locked")
        with c.writer():
            print("locked", flush=True)
            time.sleep(30)
    """, tmp_path)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        c = store.open_collection("locked")
        with pytest.raises(InputError, match="another process"):
            with c.writer():
                pass
        with pytest.raises(InputError):
            store.drop_collection("locked")
    finally:
        p.kill()
        p.wait()
    with store.open_collection("locked").writer():  # released when the holder dies
        pass


def test_killed_writer_leaves_a_store_that_opens(store: LanceStore, tmp_path: Path) -> None:
    store.create_collection("crash")
    p = _child(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_lance_store import item, files_for
        from oculi.store.lance import LanceStore
        c = LanceStore({str(store.root)!r}).open_collection("crash")
        n = 0
        with c.writer():
            while True:
                batch = [item(i) for i in range(n, n + 20)]
                c.add_items(batch)
                c.upsert_files(files_for(batch))
                n += 20
                if n == 40:
                    print("going", flush=True)
    """, tmp_path)
    assert p.stdout is not None and p.stdout.readline().strip() == "going"
    time.sleep(0.7)
    p.send_signal(signal.SIGKILL)
    p.wait()
    c = LanceStore(store.root).open_collection("crash")
    n = c.count()
    assert n >= 40 and n % 20 == 0
    assert len(c.item_ids()) == n  # no duplicates
    assert c.vector_search(vec(3, TD), column="text_vec", k=1)[0].id == item(3).id
    with c.writer():  # and it can be written again
        c.add_items([item(n + 100)])
        c.optimize()
    assert c.count() == n + 1
