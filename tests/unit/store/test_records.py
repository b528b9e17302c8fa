"""Footage record tables: sources owning tracks, events and frame items, with time filters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oculi.core.errors import InputError
from oculi.store import Condition, FileRecord, Filter, Op
from oculi.store import lance as lance_mod
from oculi.store.lance import LanceStore, compile_filter
from oculi.store.records import (
    EventRecord,
    EventType,
    RecordTable,
    SourceRecord,
    TrackRecord,
    event_id,
    source_id_for,
    track_key,
)
from tests.unit.store.test_lance_store import files_for, item

REPO = Path(__file__).resolve().parents[3]
T0 = 1_800_000_000.0


def source(camera: str = "gate", fp: str = "f" * 32, **kw) -> SourceRecord:
    sid = source_id_for("file", fp, camera)
    return SourceRecord(id=sid, kind="file", uri=f"/videos/{camera}.mp4", camera=camera, fingerprint=fp,
                        start_time=T0, **kw)


def event(src: SourceRecord, type: str, start: float, end: float | None = None, track: int | None = 1, **kw) -> EventRecord:
    return EventRecord(id=event_id(src.id, type, start, track_id=track, zone=kw.get("zone")), source_id=src.id,
                       camera=src.camera, type=type, start_time=start, end_time=start if end is None else end,
                       track_id=track, **kw)


@pytest.fixture()
def coll(tmp_path: Path):
    return LanceStore(tmp_path / "collections").create_collection("footage")


def test_records_roundtrip_and_upsert_is_idempotent(coll) -> None:
    src = source(settings={"sample_fps": 2.0, "zones": [{"name": "gate"}]}, problems=[{"start": 3.0, "end": 4.0}],
                 state=b"\x00pickle", state_version=1)
    tr = TrackRecord(id=track_key(src.id, 7), source_id=src.id, camera="gate", track_id=7, label="person",
                     start_time=T0 + 1, end_time=T0 + 30, score=0.8, colour="red", zones=("gate",), box=[1.0, 2.0, 3.0, 4.0])
    evs = [event(src, "appear", T0 + 1, track=7), event(src, "loitering", T0 + 5, T0 + 30, track=7, zone="gate", value=25.0)]
    with coll.writer():
        for _ in range(2):  # twice: still one copy of each
            coll.upsert_records([src])
            coll.upsert_records([tr])
            coll.upsert_records(evs)
    assert coll.query_records(RecordTable.SOURCES) == [src]
    assert coll.query_records("tracks") == [tr]
    assert coll.count_records(RecordTable.EVENTS) == 2
    got = coll.query_records(RecordTable.EVENTS, order_by="start_time")
    assert [e.type for e in got] == ["appear", "loitering"] and got[1] == evs[1]
    assert got[1].to_dict()["seconds"] == 25.0 and got[1].to_dict()["zone"] == "gate"
    # an update of an ongoing event replaces it (same id: same start)
    longer = EventRecord(**{**evs[1].__dict__, "end_time": T0 + 60, "value": 55.0})
    with coll.writer():
        coll.upsert_records([longer])
    assert coll.count_records(RecordTable.EVENTS) == 2
    assert coll.query_records(RecordTable.EVENTS, Filter((Condition("type", Op.EQ, "loitering"),)))[0].end_time == T0 + 60


def test_time_filters_ordering_and_limits(coll) -> None:
    a, b = source("gate"), source("door", fp="e" * 32)
    evs = [event(a, "appear", T0 + i * 100, track=i) for i in range(10)] + [event(b, "appear", T0 + 50, track=1)]
    with coll.writer():
        coll.upsert_records([a, b])
        coll.upsert_records(evs)
    f = Filter((Condition("camera", Op.EQ, "gate"), Condition("start_time", Op.GE, T0 + 200),
                Condition("start_time", Op.LT, T0 + 500)))
    got = coll.query_records(RecordTable.EVENTS, f, order_by="start_time")
    assert [e.track_id for e in got] == [2, 3, 4]
    assert [e.track_id for e in coll.query_records("events", f, order_by="start_time", descending=True, limit=2)] == [4, 3]
    assert coll.count_records("events", Filter((Condition("track_id", Op.EQ, 1),))) == 2
    assert coll.query_records("events", Filter((Condition("camera", Op.EQ, "nowhere"),))) == []


def test_record_filters_are_checked_per_table_and_escaped(coll) -> None:
    with pytest.raises(InputError, match="cannot filter events on 'width'"):
        coll.query_records("events", Filter((Condition("width", Op.EQ, 3),)))
    with pytest.raises(InputError, match="cannot filter on"):
        Condition("nonsense", Op.EQ, 1)
    with pytest.raises(InputError, match="cannot order"):
        coll.query_records("events", order_by="start_time; DROP")
    with pytest.raises(InputError, match="needs a filter"):
        coll.delete_records("events", Filter())
    sql = compile_filter(Filter((Condition("camera", Op.EQ, "o'brien gate"),)), "events")
    assert sql == "camera = 'o''brien gate'"
    src = source("o'brien gate")
    with coll.writer():
        coll.upsert_records([src, source("other", fp="1" * 32)])
    assert [s.camera for s in coll.query_records("sources", Filter((Condition("camera", Op.EQ, "o'brien gate"),)))] == ["o'brien gate"]


def test_frames_belong_to_their_source_not_to_file_records(coll) -> None:
    src = source()
    photos = [item(n) for n in range(3)]
    frames = [item(100 + n, kind="frame", source_id=src.id, frame_index=n * 25, timestamp=float(n), time=T0 + n,
                    path="/videos/gate.mp4") for n in range(4)]
    stray = item(200, kind="frame", source_id="gone", frame_index=0, path="/videos/old.mp4")
    with coll.writer():
        coll.add_items(photos + frames + [stray])
        coll.upsert_files(files_for(photos))
        coll.upsert_records([src])
        coll.upsert_records([event(src, "appear", T0 + 1)])
        assert coll.delete_orphan_items() == 1  # only the frame of a source that is not stored
        assert coll.count() == 7
        coll.delete_files([photos[0].path])  # pruning a photo leaves the frames alone
        assert coll.delete_orphan_items() == 1
    assert coll.count() == 6
    in_range = Filter((Condition("source_id", Op.EQ, src.id), Condition("time", Op.GE, T0 + 1), Condition("time", Op.LT, T0 + 3)))
    assert sorted(r["frame_index"] for rows in [coll.get_items([f.id for f in frames])] for r in rows) == [0, 25, 50, 75]
    hits = coll.vector_search(frames[1].text_vec, column="text_vec", k=10, filter=in_range)
    assert sorted(h.fields["frame_index"] for h in hits) == [25, 50]
    # deleting the source's records makes its frames orphans
    with coll.writer():
        for table in RecordTable:
            field = "id" if table is RecordTable.SOURCES else "source_id"
            coll.delete_records(table, Filter((Condition(field, Op.EQ, src.id),)))
        assert coll.delete_orphan_items() == 4
    assert coll.count() == 2 and coll.count_records("events") == 0


def test_version_1_collection_is_migrated_to_have_record_tables(tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "collections")
    c = store.create_collection("old")
    with c.writer():
        c.add_items([item(1)])
        c.upsert_files(files_for([item(1)]))
    assert not set(c._db.list_tables().tables) & {"sources", "tracks", "events"}  # made on first use
    meta = json.loads((c.path / "collection.json").read_text())  # make it look like a version-1 collection
    meta["schema_version"] = 1
    (c.path / "collection.json").write_text(json.dumps(meta))
    c2 = LanceStore(store.root).open_collection("old")
    assert c2.meta["schema_version"] == lance_mod.STORE_SCHEMA_VERSION == 2
    assert set(c2._db.list_tables().tables) >= {"items", "files", "sources", "tracks", "events"}
    assert c2.count() == 1 and c2.count_records("events") == 0


def test_named_lock_is_exclusive_across_processes(coll) -> None:
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO / 'src')!r})
        from oculi.store.lance import LanceStore
        c = LanceStore({str(coll.path.parent)!r}).open_collection("footage")
        with c.lock("source:abc"):
            print("locked", flush=True)
            time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="being processed by another process"):
            with coll.lock("source:abc"):
                pass
        with coll.lock("source:other"):  # another name is free
            pass
    finally:
        proc.kill()
        proc.wait()
    with coll.lock("source:abc"):  # released when its holder died
        pass


def test_record_validation() -> None:
    with pytest.raises(ValueError):
        EventRecord(id="x", source_id="s", camera="c", type="teleport", start_time=1, end_time=2)
    with pytest.raises(ValueError, match="ends before"):
        EventRecord(id="x", source_id="s", camera="c", type=EventType.APPEAR, start_time=2, end_time=1)
    with pytest.raises(ValueError, match="camera"):
        SourceRecord(id="x", kind="file", uri="/a", camera="", fingerprint="f", start_time=0)
    assert FileRecord  # file records are untouched by footage


def test_footage_tables_are_checksummed_and_checked(tmp_path: Path) -> None:
    from tests.footage_records import fill_collection

    store = LanceStore(tmp_path / "c")
    fill_collection(store.create_collection("cams"))
    ok = store.check_collection("cams")
    assert ok.status == "ok" and {"sources", "tracks", "events"} <= set(ok.tables)
    assert ok.tables["events"]["rows_read"] > 0
    frag = next((tmp_path / "c" / "cams" / "events.lance" / "data").glob("*.lance"))
    data = bytearray(frag.read_bytes())
    data[len(data) // 2] ^= 0xFF
    frag.write_bytes(bytes(data))
    bad = store.check_collection("cams")
    assert bad.status == "damaged"
    d = bad.damage[0]
    assert d.table == "events" and "footage events" in d.affects and "oculi watch --reprocess" in d.affects
