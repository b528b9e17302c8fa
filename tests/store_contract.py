"""The store contract: what every ``Store`` implementation must do, as tests.

A runner subclasses ``StoreContract`` and provides one fixture, ``store_url``: the URL of a
fresh, empty store (``lance:///tmp/...``, ``postgresql://...``). Every test opens it with
``oculi.store.open_store(url=...)``, the way the CLI and the server do, and other processes
open the same URL. Runners: ``tests/unit/store/test_store_contract.py``.

The embedded store's damage-and-repair suite (``tests/store_corruption.py``) damages files; it
applies to stores whose bytes oculi writes itself. A server store's bytes are its server's (WAL,
page checksums): here every store must only pass ``test_check_and_repair_of_a_healthy_collection``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from oculi.core.errors import InputError, NotFoundError
from oculi.store import Condition, FileRecord, Filter, ItemRecord, Op, Store, item_id, open_store
from oculi.store.base import Collection
from oculi.store.blobs import BlobStore, content_key
from oculi.store.records import EventRecord, RecordTable, SourceRecord, TrackRecord, event_id, source_id_for, track_key

REPO = Path(__file__).resolve().parents[1]
TD, ID = 16, 24
T0 = 1_800_000_000.0


def vec(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def item(n: int, **kw) -> ItemRecord:
    sha = hashlib.sha256(str(n).encode()).hexdigest()
    base = dict(
        id=item_id(sha), sha256=sha, path=f"/photos/{'a' if n % 2 else 'b'}/img{n}.jpg", name=f"img{n}.jpg",
        width=640, height=480, text_vec=vec(n, TD), image_vec=vec(1000 + n, ID), time=1_600_000_000.0 + n,
        caption=f"A photo of thing {n}.", doc=f"A photo of thing {n}. Labels: tabby cat" if n % 3 == 0 else f"item {n} coffee",
        labels=("tabby",) if n % 3 == 0 else ("espresso",), objects=("cat",) if n % 3 == 0 else ("cup",),
        object_terms=("cat", "grey cat") if n % 3 == 0 else ("cup", "red cup"), colours=("grey",),
        text="", observation={"labels": [{"name": "tabby", "score": 0.8}]}, thumbnail=b"\xff\xd8jpeg" + bytes([n % 256]),
        track_ids=(n % 4,),
    )
    base.update(kw)
    return ItemRecord(**base)  # type: ignore[arg-type]


def files_for(items: list[ItemRecord]) -> list[FileRecord]:
    return [FileRecord(it.path, it.id, 100, 1) for it in items]


def source(camera: str = "gate", fp: str = "f" * 32, **kw) -> SourceRecord:
    return SourceRecord(id=source_id_for("file", fp, camera), kind="file", uri=f"/videos/{camera}.mp4", camera=camera,
                        fingerprint=fp, start_time=T0, **kw)


def event(src: SourceRecord, type: str, start: float, end: float | None = None, track: int | None = 1, **kw) -> EventRecord:
    return EventRecord(id=event_id(src.id, type, start, track_id=track, zone=kw.get("zone")), source_id=src.id,
                       camera=src.camera, type=type, start_time=start, end_time=start if end is None else end,
                       track_id=track, **kw)


def child(code: str, url: str) -> subprocess.Popen:
    """A Python process that opens the same store (``url``) and runs ``code`` with ``store`` bound."""
    prog = "import sys, time\nfrom oculi.store import open_store\nstore = open_store(url=sys.argv[1])\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", prog, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})


class StoreContract:
    """Subclass with a ``store_url`` fixture (a fresh, empty store) to run the contract."""

    @pytest.fixture()
    def store(self, store_url: str) -> Store:
        return open_store(url=store_url)

    @pytest.fixture()
    def filled(self, store: Store) -> Collection:
        c = store.create_collection("photos")
        items = [item(n) for n in range(30)]
        with c.writer():
            c.add_items(items)
            c.upsert_files(files_for(items))
        return c

    # --- the protocols ---------------------------------------------------------------------------
    def test_implements_the_protocols(self, store: Store, filled: Collection) -> None:
        assert isinstance(store, Store) and isinstance(filled, Collection)
        assert isinstance(store.blobs("photos"), BlobStore)
        assert "://" in store.url and "password" not in store.url

    # --- collections -------------------------------------------------------------------------------
    def test_collection_lifecycle(self, store: Store) -> None:
        assert store.list_collections() == [] and store.names() == []
        c = store.create_collection("holiday-2021")
        assert store.exists("holiday-2021") and c.count() == 0 and c.file_count() == 0
        assert [i.name for i in store.list_collections()] == ["holiday-2021"] == store.names()
        assert store.create_collection("holiday-2021").name == "holiday-2021"  # exist_ok
        with pytest.raises(InputError):
            store.create_collection("holiday-2021", exist_ok=False)
        store.drop_collection("holiday-2021")
        assert not store.exists("holiday-2021") and store.list_collections() == []
        with pytest.raises(NotFoundError, match="no collection named 'nope'"):
            store.open_collection("nope")
        with pytest.raises(NotFoundError):
            store.drop_collection("nope")

    @pytest.mark.parametrize("bad", ["", " ", "../etc", ".hidden", "a/b", "x" * 65, "semi;colon", "a..b", "a'; DROP TABLE x"])
    def test_collection_names_are_validated(self, store: Store, bad: str) -> None:
        with pytest.raises(InputError):
            store.create_collection(bad)
        with pytest.raises(InputError):
            store.open_collection(bad)

    # --- items and files -----------------------------------------------------------------------------
    def test_records_roundtrip(self, filled: Collection) -> None:
        c = filled
        assert c.count() == 30 and c.file_count() == 30
        it = item(4)
        row = c.get_items([it.id])[0]
        assert row["path"] == it.path and list(row["labels"]) == ["espresso"] and row["time"] == it.time
        assert json.loads(row["observation"]) == it.observation
        assert c.thumbnail(it.id) == it.thumbnail
        with pytest.raises(NotFoundError):
            c.thumbnail("0" * 32)
        states = c.file_states()
        assert states[it.path].id == it.id and states[it.path].size == 100
        assert c.item_ids() == {item(n).id for n in range(30)}
        ids, mats = zip(*c.iter_vectors("image_vec", batch_size=7))
        m = np.concatenate(mats)
        assert m.shape == (30, ID) and m.dtype == np.float32
        i = sum(ids, []).index(it.id)
        assert np.allclose(m[i], it.image_vec, atol=1e-3)
        rows = [r for batch in c.iter_items(["id", "caption", "track_ids"], batch_size=8) for r in batch]
        assert len(rows) == 30 and {r["id"] for r in rows} == c.item_ids()
        assert next(r for r in rows if r["id"] == it.id)["track_ids"] == [0]
        full = c.get_items([it.id], columns=["id", "text_vec", "image_vec", "thumbnail", "indexed_at"])[0]
        assert np.allclose(np.asarray(full["text_vec"], dtype=np.float32), it.text_vec, atol=1e-6)

    def test_adding_the_same_ids_again_makes_no_duplicates(self, filled: Collection) -> None:
        with filled.writer():
            filled.add_items([item(1), item(2), item(31), item(31)])
        assert filled.count() == 31 and len(filled.item_ids()) == 31

    def test_update_items_replaces_stored_ones_only(self, filled: Collection) -> None:
        with filled.writer():
            filled.update_items([item(3, caption="rewritten"), item(99)])
        assert filled.get_items([item(3).id])[0]["caption"] == "rewritten"
        assert filled.count() == 30 and not filled.get_items([item(99).id])

    def test_dims_mismatch_is_a_clear_error(self, filled: Collection) -> None:
        with pytest.raises(InputError, match="index into a new collection"):
            with filled.writer():
                filled.add_items([item(99, text_vec=vec(1, 32))])
        assert filled.count() == 30

    def test_delete_files_orphans_repoint_and_files_of(self, filled: Collection) -> None:
        c = filled
        it = item(5)
        with c.writer():
            c.upsert_files([FileRecord("/copies/img5.jpg", it.id, 100, 1)])  # a second path for item 5
            assert c.delete_files([it.path, item(6).path]) == 2
            assert c.delete_orphan_items() == 1  # item 6 had no other file; item 5 has the copy
            c.repoint_items({it.id: "/copies/img5.jpg"})
        assert c.count() == 29
        row = c.get_items([it.id])[0]
        assert row["path"] == "/copies/img5.jpg" and row["name"] == "img5.jpg"
        assert c.files_of([it.id, item(7).id]) == {it.id: ["/copies/img5.jpg"], item(7).id: [item(7).path]}

    def test_models_are_recorded(self, filled: Collection) -> None:
        assert filled.models() == {}
        with filled.writer():
            filled.set_models({"detector": "yolo-x", "sentence": "minilm"})
        assert filled.models() == {"detector": "yolo-x", "sentence": "minilm"}
        assert filled.stats()["models"]["detector"] == "yolo-x"

    def test_vector_spaces_are_recorded(self, filled: Collection) -> None:
        # indexing refuses another embedder's vectors by these (oculi.tasks.index.spaces)
        assert filled.vector_spaces() == {}
        spaces = {"image": {"model": "openai:clip-x", "dim": ID}, "text": {"model": "builtin/all-minilm-l6-v2", "dim": TD}}
        with filled.writer():
            filled.set_vector_spaces(spaces)
        assert filled.vector_spaces() == spaces

    def test_info_and_stats(self, filled: Collection) -> None:
        info = filled.info()
        assert info.name == "photos" and info.items == 30 and info.files == 30 and info.status == "ok"
        st = filled.stats()
        assert st["items"] == 30 and st["text_dim"] == TD and st["image_dim"] == ID
        assert st["top_objects"] == {"cup": 20, "cat": 10}
        assert st["time_range"] == [1_600_000_000.0, 1_600_000_029.0]

    # --- search --------------------------------------------------------------------------------------
    def test_vector_and_keyword_search(self, filled: Collection) -> None:
        c = filled
        hits = c.vector_search(vec(7, TD), column="text_vec", k=3)
        assert len(hits) == 3 and hits[0].id == item(7).id and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].score >= hits[1].score >= hits[2].score
        assert "text_vec" not in hits[0].fields and "thumbnail" not in hits[0].fields
        hits = c.vector_search(vec(1007, ID), column="image_vec", k=1)
        assert hits[0].id == item(7).id and hits[0].score > 0.99
        fetched = c.fetch(hits, columns=["id", "caption"])
        assert fetched[item(7).id]["caption"] == "A photo of thing 7."
        kw = c.keyword_search("cats", k=50)  # stemmed: cats → cat
        assert kw and {h.id for h in kw} == {item(n).id for n in range(0, 30, 3)}
        assert c.keyword_search("   ", k=5) == []
        assert c.keyword_search("o'neil AND (coffee OR \"x", k=5) is not None  # words, not syntax
        with pytest.raises(InputError):
            c.vector_search(vec(1, TD), column="thumbnail", k=3)
        nb = c.neighbours(np.stack([vec(1, TD), vec(2, TD)]), column="text_vec", k=2)
        assert {(r, i) for r, i, _ in nb} >= {(0, item(1).id), (1, item(2).id)}

    def test_filters(self, filled: Collection) -> None:
        c = filled
        q = vec(3, TD)

        def ids(*conds: Condition) -> set[str]:
            return {h.id for h in c.vector_search(q, column="text_vec", k=100, filter=Filter(conds))}

        assert ids(Condition("objects", Op.HAS, "cat")) == {item(n).id for n in range(0, 30, 3)}
        assert ids(Condition("object_terms", Op.HAS, "red cup")) == {item(n).id for n in range(30) if n % 3}
        assert ids(Condition("track_ids", Op.HAS, 2)) == {item(n).id for n in range(2, 30, 4)}
        assert ids(Condition("time", Op.GE, 1_600_000_025)) == {item(n).id for n in range(25, 30)}
        assert ids(Condition("time", Op.LT, 1_600_000_002)) == {item(0).id, item(1).id}
        assert ids(Condition("path", Op.GLOB, "*/a/img1?.jpg")) == {item(n).id for n in range(11, 20, 2)}
        assert ids(Condition("caption", Op.CONTAINS, "THING 2")) == {item(n).id for n in (2, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29)}
        assert ids(Condition("name", Op.EQ, "img5.jpg"), Condition("width", Op.EQ, 640)) == {item(5).id}
        assert ids(Condition("name", Op.NE, "img5.jpg")) == {item(n).id for n in range(30) if n != 5}
        kw = c.keyword_search("coffee", k=50, filter=Filter((Condition("path", Op.GLOB, "*/b/*"),)))
        assert kw and all("/b/" in h.fields["path"] for h in kw)

    def test_filtered_search_returns_the_rows_asked_for(self, store: Store) -> None:
        """A selective filter on an indexed collection still gives k rows, the true nearest ones."""
        c = store.create_collection("many")
        items = [item(n, objects=("cat",) if n % 50 == 0 else ("cup",)) for n in range(600)]
        with c.writer():
            c.add_items(items)
            c.upsert_files(files_for(items))
            c.optimize(force_ann=True)  # type: ignore[call-arg]
        q = vec(123, TD)
        f = Filter((Condition("objects", Op.HAS, "cat"),))
        hits = c.vector_search(q, column="text_vec", k=10, filter=f)
        cats = [it for it in items if "cat" in it.objects]
        truth = sorted(cats, key=lambda it: -float(np.dot(it.text_vec, q)))[:10]
        assert [h.id for h in hits] == [it.id for it in truth]
        assert len(c.vector_search(q, column="text_vec", k=50, filter=f)) == 12

    @pytest.mark.parametrize("evil", [
        "x' OR 1=1 --", "x'); DROP TABLE items; --", "\\", "'", "%", "_", "a\\'b", "ünïcödé 'quoted'", "*/../*",
    ])
    def test_filter_values_are_escaped_never_spliced(self, filled: Collection, evil: str) -> None:
        q = vec(3, TD)
        for cond in (Condition("path", Op.EQ, evil), Condition("objects", Op.HAS, evil),
                     Condition("text", Op.CONTAINS, evil), Condition("name", Op.GLOB, evil)):
            assert filled.vector_search(q, column="text_vec", k=100, filter=Filter((cond,))) == []
        assert filled.keyword_search(evil + " coffee", k=5) is not None
        assert filled.count() == 30

    # --- footage records -------------------------------------------------------------------------
    def test_footage_records(self, store: Store) -> None:
        coll = store.create_collection("footage")
        src = source(settings={"sample_fps": 2.0}, problems=[{"start": 3.0, "end": 4.0}], state=b"\x00pickle", state_version=1)
        tr = TrackRecord(id=track_key(src.id, 7), source_id=src.id, camera="gate", track_id=7, label="person",
                         start_time=T0 + 1, end_time=T0 + 30, score=0.8, colour="red", zones=("gate",), box=[1.0, 2.0, 3.0, 4.0])
        evs = [event(src, "appear", T0 + i * 100, track=i) for i in range(10)]
        with coll.writer():
            for _ in range(2):  # twice: still one copy of each
                coll.upsert_records([src])
                coll.upsert_records([tr])
                coll.upsert_records(evs)
        assert coll.query_records(RecordTable.SOURCES) == [src]
        assert coll.query_records("tracks") == [tr]
        assert coll.count_records(RecordTable.EVENTS) == 10
        f = Filter((Condition("camera", Op.EQ, "gate"), Condition("start_time", Op.GE, T0 + 200),
                    Condition("start_time", Op.LT, T0 + 500)))
        assert [e.track_id for e in coll.query_records("events", f, order_by="start_time")] == [2, 3, 4]
        assert [e.track_id for e in coll.query_records("events", f, order_by="start_time", descending=True, limit=2)] == [4, 3]
        assert coll.query_records("tracks", Filter((Condition("zones", Op.HAS, "gate"),))) == [tr]
        with pytest.raises(InputError, match="cannot filter events on 'width'"):
            coll.query_records("events", Filter((Condition("width", Op.EQ, 3),)))
        with pytest.raises(InputError, match="cannot order"):
            coll.query_records("events", order_by="start_time; DROP")
        with pytest.raises(InputError, match="needs a filter"):
            coll.delete_records("events", Filter())
        with coll.writer():
            assert coll.delete_records("events", Filter((Condition("track_id", Op.GE, 5),))) == 5
        assert coll.count_records("events") == 5

    def test_frames_belong_to_their_source(self, store: Store) -> None:
        coll = store.create_collection("footage")
        src = source()
        photos = [item(n) for n in range(3)]
        frames = [item(100 + n, kind="frame", source_id=src.id, frame_index=n * 25, timestamp=float(n), time=T0 + n,
                       path="/videos/gate.mp4") for n in range(4)]
        stray = item(200, kind="frame", source_id="gone", frame_index=0, path="/videos/old.mp4")
        with coll.writer():
            coll.add_items(photos + frames + [stray])
            coll.upsert_files(files_for(photos))
            coll.upsert_records([src])
            assert coll.delete_orphan_items() == 1  # only the frame of a source that is not stored
            coll.delete_files([photos[0].path])
            assert coll.delete_orphan_items() == 1
        assert coll.count() == 6
        in_range = Filter((Condition("source_id", Op.EQ, src.id), Condition("time", Op.GE, T0 + 1), Condition("time", Op.LT, T0 + 3)))
        hits = coll.vector_search(frames[1].text_vec, column="text_vec", k=10, filter=in_range)
        assert sorted(h.fields["frame_index"] for h in hits) == [25, 50]

    # --- blobs -----------------------------------------------------------------------------------
    def test_blobs(self, store: Store) -> None:
        store.create_collection("up")
        b = store.blobs("up")
        data = b"\x89PNG fake bytes " * 100
        sha = hashlib.sha256(data).hexdigest()
        key = content_key(sha, ".png")
        assert not b.exists(key)
        where = b.put(key, data)
        assert where == b.location(key) and b.exists(key) and b.get(key) == data
        assert b.put(key, data) == where  # idempotent
        assert b.local_path(key).read_bytes() == data
        with b.open(key) as f:
            assert f.read(5) == data[:5] and f.read() == data[5:]
        vkey = content_key(sha, ".mp4", folder="videos")
        b.put_stream(vkey, io.BytesIO(data))
        assert sorted(b.keys()) == sorted([key, vkey]) and list(b.keys("videos/")) == [vkey]
        for bad in ("../../etc/passwd", "/abs", "a/../../b", ".hidden", "a//b", "a\\b", "a/b/c/d/e", "x" * 200, ""):
            with pytest.raises(InputError):
                b.put(bad, b"x")
            with pytest.raises(InputError):
                b.get(bad)
        b.delete(vkey)
        assert not b.exists(vkey)
        with pytest.raises(NotFoundError):
            b.get(vkey)
        with pytest.raises(NotFoundError):
            b.open(vkey)
        assert list(store.blobs(store.create_collection("other").name).keys()) == []  # one collection's blobs only

    def test_blobs_are_seen_by_another_process_and_checked(self, store: Store, store_url: str) -> None:
        store.create_collection("up")
        data = b"\x89PNG other bytes " * 50
        key = content_key(hashlib.sha256(data).hexdigest(), ".png")
        store.blobs("up").put(key, data)
        p = child("""
            import hashlib
            b = store.blobs("up")
            [k] = list(b.keys())
            print(k, hashlib.sha256(b.get(k)).hexdigest())
        """, store_url)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.split() == [key, hashlib.sha256(data).hexdigest()]
        chk = store.check_collection("up")
        assert chk.ok and chk.blobs_checked == 1, chk.to_dict()

    # --- locks -----------------------------------------------------------------------------------
    def test_one_writer_at_a_time_across_processes(self, store: Store, store_url: str) -> None:
        store.create_collection("locked")
        p = child("""
            c = store.open_collection("locked")
            with c.writer():
                print("locked", flush=True)
                time.sleep(60)
        """, store_url)
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "locked", p.stderr.read()
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
        assert store.exists("locked")

    def test_named_lock_is_exclusive_across_processes(self, store: Store, store_url: str) -> None:
        coll = store.create_collection("footage")
        p = child("""
            c = store.open_collection("footage")
            with c.lock("source:abc"):
                print("locked", flush=True)
                time.sleep(60)
        """, store_url)
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "locked", p.stderr.read()
            with pytest.raises(InputError, match="being processed by another process"):
                with coll.lock("source:abc"):
                    pass
            with coll.lock("source:other"):
                pass
        finally:
            p.kill()
            p.wait()
        with coll.lock("source:abc"):
            pass

    def test_writer_is_reentrant_and_exclusive_between_threads_of_two_stores(self, store: Store, store_url: str) -> None:
        c = store.create_collection("w")
        other = open_store(url=store_url).open_collection("w")
        errors: list[BaseException] = []
        with c.writer():
            with c.writer():  # re-entrant for the holding thread
                c.add_items([item(1)])

            def try_write() -> None:
                try:
                    with other.writer():
                        pass
                except InputError as e:
                    errors.append(e)

            t = threading.Thread(target=try_write)
            t.start()
            t.join()
        assert len(errors) == 1 and c.count() == 1

    def test_killed_writer_leaves_a_store_that_opens(self, store: Store, store_url: str) -> None:
        import signal
        import time

        store.create_collection("crash")
        p = child(f"""
            sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
            from tests.store_contract import item, files_for
            c = store.open_collection("crash")
            n = 0
            with c.writer():
                while True:
                    batch = [item(i) for i in range(n, n + 20)]
                    c.add_items(batch)
                    c.upsert_files(files_for(batch))
                    n += 20
                    if n == 40:
                        print("going", flush=True)
        """, store_url)
        assert p.stdout is not None and p.stdout.readline().strip() == "going", p.stderr.read()
        time.sleep(0.5)
        p.send_signal(signal.SIGKILL)
        p.wait()
        c = open_store(url=store_url).open_collection("crash")
        n = c.count()
        assert n >= 40
        with c.writer():  # the lock went with the process
            c.add_items([item(10_000)])
        assert c.count() == n + 1 and len(c.item_ids()) == n + 1

    # --- integrity -------------------------------------------------------------------------------
    def test_check_and_repair_of_a_healthy_collection(self, store: Store, filled: Collection) -> None:
        chk = store.check_collection("photos")
        assert chk.ok and chk.status == "ok" and chk.name == "photos"
        rep = store.repair_collection("photos")
        assert rep.rows_lost == {} and not rep.lost_paths
        assert store.open_collection("photos").count() == 30
