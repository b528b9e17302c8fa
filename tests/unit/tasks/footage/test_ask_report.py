"""Answers and reports read only stored records: built here by hand, no models, real LanceDB."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.core.errors import NotFoundError
from oculi.store.base import ItemRecord
from oculi.store.lance import LanceStore
from oculi.store.records import EventRecord, SourceRecord, TrackRecord, event_id, source_id_for, track_key
from oculi.tasks.footage.ask import ask_footage
from oculi.tasks.footage.query import TOOLS, call_tool, footage_coverage
from oculi.tasks.footage.render import write_footage_report
from oculi.tasks.footage.report import build_footage_report

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
T = lambda h, m=0, s=0: datetime(2026, 11, 27, h, m, s, tzinfo=UTC).timestamp()  # noqa: E731


def jpeg(w: int = 480, h: int = 270) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 90, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def keyframe(iid: str, ts: float, camera: str) -> ItemRecord:
    v = np.ones(8, np.float32) / np.sqrt(8)
    return ItemRecord(id=iid, sha256="s", path="/v.mp4", name="v", width=640, height=360, text_vec=v, image_vec=v,
                      kind="frame", source_id="x", frame_index=1, timestamp=1.0, time=ts, camera=camera,
                      caption="A photo of a person.", thumbnail=jpeg())


def add_track(recs: list, src: SourceRecord, tid: int, label: str, start: float, end: float, *, colour: str | None = None,
              zone: str | None = None, loiter: bool = False, left: bool = True, kf: str | None = None) -> None:
    recs.append(TrackRecord(track_key(src.id, tid), src.id, src.camera, tid, label, start, end, 0.7, colour,
                            (zone,) if zone else (), kf, [100.0, 100.0, 200.0, 300.0], 10, 0 if left else 1))
    ev = lambda typ, a, b, **kw: EventRecord(event_id(src.id, typ, a, track_id=tid, zone=kw.get("zone")), src.id,  # noqa: E731
                                            src.camera, typ, a, b, tid, label, keyframe=kf, box=[100.0, 100.0, 200.0, 300.0], **kw)
    recs.append(ev("appear", start, start))
    if left:
        recs.append(ev("leave", end, end))
    if zone:
        recs.append(ev("zone_enter", start + 1, start + 1, zone=zone))
        recs.append(ev("dwell", start + 1, end, zone=zone, value=end - start - 1))
    if loiter:
        recs.append(ev("loitering", start + 1, end, zone=zone, value=end - start - 1, details={"threshold": 10}))


@pytest.fixture()
def coll(tmp_path: Path):
    c = LanceStore(tmp_path / "c").create_collection("footage")
    gate = SourceRecord(source_id_for("file", "a" * 32, "main gate"), "file", "/v/gate.mp4", "main gate", "a" * 32,
                        start_time=T(16, 59, 40), end_time=T(17, 0, 16), duration=36.0, status="done",
                        settings={"zones": [{"name": "gate", "points": [[0, 0], [1, 0], [1, 1]], "loiter_after": 8}]})
    door = SourceRecord(source_id_for("file", "b" * 32, "front door"), "file", "/v/door.mp4", "front door", "b" * 32,
                        start_time=T(9, 20), end_time=T(9, 50), status="done", problems=[{"start": 600, "end": 900, "error": "x"}])
    night = SourceRecord(source_id_for("file", "c" * 32, "main gate"), "file", "/v/night.mp4", "main gate", "c" * 32,
                         start_time=T(2, 0), end_time=T(2, 10), status="done")
    recs: list = []
    add_track(recs, gate, 1, "person", T(16, 59, 43), T(16, 59, 57), zone="gate", loiter=True, kf="1" * 32)
    add_track(recs, gate, 2, "person", T(16, 59, 45), T(16, 59, 52), kf="2" * 32)
    add_track(recs, gate, 3, "person", T(17, 0, 3), T(17, 0, 8), colour="red", zone="gate", kf="3" * 32)
    add_track(recs, gate, 4, "car", T(17, 0, 11), T(17, 0, 16), colour="blue", zone="gate", left=False, kf="4" * 32)
    add_track(recs, door, 1, "person", T(9, 25), T(9, 26), colour="black", kf="5" * 32)
    add_track(recs, door, 2, "person", T(9, 55), T(9, 56))  # outside 9-10? no: 9:55 is inside; after the door's footage though
    add_track(recs, night, 7, "person", T(2, 1), T(2, 5), zone="gate", loiter=True, kf="6" * 32)
    with c.writer():
        c.upsert_records([gate, door, night])
        c.upsert_records([r for r in recs if isinstance(r, TrackRecord)])
        c.upsert_records([r for r in recs if isinstance(r, EventRecord)])
        c.add_items([keyframe(str(i) * 32, T(17), "main gate") for i in range(1, 7)])
    return c


def ask(coll, question: str):
    return ask_footage(coll, question, now=NOW, tz=UTC)


def test_the_issue_questions(coll) -> None:
    a = ask(coll, "Was anyone loitering at the main gate today?")
    assert (a.kind, a.value) == ("yes", True) and a.answer.startswith("Yes — two people were loitering at main gate today")
    assert [e.track_id for e in a.evidence] == [7, 1] and a.evidence[1].thumbnail == "1" * 32
    assert "track 1" in a.answer and "16:59:44" in a.answer and "02:01:01" in a.answer
    b = ask(coll, "How many people came to the main gate today?")
    assert (b.kind, b.value) == ("count", 4) and sorted(e.track_id for e in b.evidence) == [1, 2, 3, 7]  # night + day
    c = ask(coll, "How many cars came in after 5 pm?")
    assert (c.kind, c.value) == ("count", 1) and c.evidence[0].track_id == 4 and "17:00:11" in c.answer
    d = ask(coll, "When did the person in red leave?")
    assert d.kind == "when" and d.value == T(17, 0, 8) and "left at 17:00:08" in d.answer and "track 3" in d.answer
    e = ask(coll, "Show me everyone near the door between 9 and 10")
    assert e.kind == "list" and [x.track_id for x in e.evidence] == [1, 2] and all(x.camera == "front door" for x in e.evidence)


def test_no_footage_is_not_no(coll) -> None:
    a = ask(coll, "Was anyone at the main gate yesterday?")
    assert a.kind == "no_footage" and a.value is None and not a.answerable
    assert "No footage from main gate covers yesterday" in a.answer
    b = ask(coll, "Was anyone loitering at the front door after 5 pm?")
    assert b.kind == "no_footage"
    c = ask(coll, "Was anyone at the back yard?")
    assert c.kind == "unknown" and "back yard" in c.answer and "main gate" in c.answer
    # an absence over partly covered time says which part was covered
    d = ask(coll, "Was a car loitering at the main gate this afternoon?")
    assert d.kind == "no" and d.value is False and "only part of this afternoon has footage" in d.answer


def test_coverage_excludes_unreadable_stretches(coll) -> None:
    door = [c for c in footage_coverage(coll) if c.camera == "front door"][0]
    assert door.intervals == ((T(9, 20), T(9, 30)), (T(9, 35), T(9, 50)))
    gate = [c for c in footage_coverage(coll) if c.camera == "main gate"][0]
    assert len(gate.intervals) == 2


def test_tools_give_a_model_the_same_facts(coll) -> None:
    assert {t["name"] for t in TOOLS} >= {"find_events", "find_tracks", "count_tracks", "footage_coverage", "list_cameras"}
    n = call_tool(coll, "count_tracks", json.dumps({"camera": "main gate", "labels": ["car"], "after": T(17), "arrived_within": True}))
    assert n == 1
    evs = call_tool(coll, "find_events", {"types": ["loitering"], "camera": "main gate", "after": T(12)})
    assert [e["track_id"] for e in evs] == [1] and evs[0]["start"].startswith("2026-11-27T16:59:44")  # not the 02:01 one
    assert call_tool(coll, "list_cameras", {}) == ["front door", "main gate"]
    from oculi.core.errors import InputError

    with pytest.raises(InputError, match="unknown footage tool"):
        call_tool(coll, "drop_table", {})
    with pytest.raises(InputError, match="unknown arguments"):
        call_tool(coll, "find_events", {"sql": "1=1"})


def test_report_is_written_from_the_events(coll, tmp_path: Path) -> None:
    rep = build_footage_report(coll, "main gate", date(2026, 11, 27), tz=UTC, tz_name="UTC")
    d = rep.to_dict()
    assert d["title"] == "Footage report — main gate, 2026-11-27"
    assert d["counts"]["people"] == 4 and d["counts"]["vehicles"] == 1 and d["counts"]["loitering"] == 2
    kinds = sorted(f["kind"] for f in d["findings"])
    assert kinds == ["loitering", "loitering", "unusual_hours"]  # the 02:01 arrival and both loiterers
    assert d["threat_level"] == "high"  # loitering at 02:01, outside usual hours
    assert 0 < d["confidence"] <= 0.7
    assert "Seen arriving: four people, one car." in d["summary"] and "Two loitering events" in d["summary"]
    assert {k["id"] for k in d["keyframes"]} >= {"1" * 32, "6" * 32}
    assert [r["hour"] for r in d["timeline"]] == ["02:00", "16:00", "17:00"]
    assert all(e["start"].endswith("+00:00") for e in d["events"])
    for fmt in ("md", "html", "json"):
        files = write_footage_report(rep, coll, fmt, tmp_path / f"r.{fmt}", UTC)
        text = files[0].read_text()
        assert "main gate" in text and ("loitered" in text if fmt != "json" else json.loads(text)["threat_level"] == "high")
    md_files = write_footage_report(rep, coll, "md", tmp_path / "r.md", UTC)
    assert any(p.suffix == ".jpg" for p in md_files) and "(r_files/keyframe-01.jpg)" in (tmp_path / "r.md").read_text()
    with pytest.raises(NotFoundError, match="cameras: front door, main gate"):
        build_footage_report(coll, "back yard", date(2026, 11, 27), tz=UTC)
    empty = build_footage_report(coll, "main gate", date(2026, 11, 26), tz=UTC).to_dict()
    assert empty["summary"] == "No footage from main gate on 2026-11-26." and empty["threat_level"] == "none"
