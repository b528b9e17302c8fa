"""Answers and reports read only stored records: built here by hand, no models, real LanceDB."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from oculi.core.errors import NotFoundError
from oculi.tasks.footage.ask import ask_footage
from oculi.tasks.footage.query import TOOLS, call_tool, footage_coverage
from oculi.tasks.footage.render import write_footage_report
from oculi.tasks.footage.report import build_footage_report
from tests.footage_records import T

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)


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
