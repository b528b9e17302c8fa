"""Zones, durations, instants, and the rules that turn footage questions into structured queries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from oculi.core.errors import InputError
from oculi.store.records import EventType
from oculi.tasks.footage.parse import Intent, parse_question
from oculi.tasks.footage.zones import Zone, build_zones, parse_duration, parse_instant, resolve_tz

NOW = datetime(2026, 11, 27, 18, 30, tzinfo=timezone.utc)
UTC = timezone.utc
T = lambda h, m=0, d=27: datetime(2026, 11, d, h, m, tzinfo=UTC).timestamp()  # noqa: E731
CAMS = ["main gate", "front door"]


def q(text: str, **kw):
    return parse_question(text, now=NOW, tz=UTC, cameras=kw.get("cameras", CAMS), zones=kw.get("zones", ["gate"]))


def test_zones_from_pixels_and_fractions() -> None:
    z = build_zones(["380,230 600,230 600,355 380,355", "0.5,0.5 1,0.5 1,1 0.5,1"], ["gate"], width=640, height=360,
                    loiter_after=30)
    assert [x.name for x in z] == ["gate", "zone2"] and z[0].loiter_after == 30
    assert z[1].points[0] == (320.0, 180.0)
    inside = z[0].contains(np.array([[480, 330], [100, 330], [380.5, 231]]))
    assert inside.tolist() == [True, False, True]
    with pytest.raises(InputError, match="at least 3 points"):
        build_zones(["1,1 2,2"], [], width=640, height=360, loiter_after=None)
    with pytest.raises(InputError, match="not 'x,y'"):
        build_zones(["1,1 2 3,3"], [], width=640, height=360, loiter_after=None)
    with pytest.raises(InputError, match="outside"):
        build_zones(["0,0 2000,0 2000,10"], [], width=640, height=360, loiter_after=None)
    with pytest.raises(InputError, match="names must differ"):
        build_zones(["0,0 10,0 10,10", "0,0 10,0 10,10"], ["a", "a"], width=640, height=360, loiter_after=None)
    with pytest.raises(InputError, match="invalid zone name"):
        Zone("../etc", ((0, 0), (1, 0), (1, 1)))


def test_durations_and_instants() -> None:
    assert parse_duration("30s") == 30 and parse_duration("1m30s") == 90 and parse_duration("2h") == 7200
    assert parse_duration("45") == 45 and parse_duration("1.5m") == 90
    for bad in ("soon", "-3s", "3 parsecs", ""):
        with pytest.raises(InputError, match="duration"):
            parse_duration(bad)
    assert parse_instant("2026-11-27T08:00:00", UTC) == T(8)
    assert parse_instant("2026-11-27T08:00:00+01:00", UTC) == T(7)
    assert parse_instant("2026-11-27", UTC) == T(0)
    with pytest.raises(InputError, match="ISO"):
        parse_instant("yesterday-ish", UTC)
    assert resolve_tz("UTC") is UTC and resolve_tz("Europe/Paris").utcoffset(NOW) == timedelta(hours=1)
    with pytest.raises(InputError, match="unknown time zone"):
        resolve_tz("Mars/Olympus")


def test_the_issue_questions_become_structured_queries() -> None:
    a = q("Was anyone loitering at the main gate today?")
    assert (a.intent, a.camera, a.labels, a.event) == (Intent.YES_NO, "main gate", ("person",), EventType.LOITERING)
    assert (a.time.start, a.time.end, a.time.text) == (T(0), T(0, d=28), "today")
    b = q("How many people came to the main gate today?")
    assert (b.intent, b.camera, b.labels, b.arrival) == (Intent.COUNT, "main gate", ("person",), True)
    c = q("How many cars came in after 5 pm?")
    assert (c.intent, c.labels, c.arrival, c.camera) == (Intent.COUNT, ("car",), True, None)
    assert (c.time.start, c.time.end) == (T(17), T(0, d=28))
    d = q("When did the person in red leave?")
    assert (d.intent, d.colour, d.event, d.place) == (Intent.WHEN, "red", EventType.LEAVE, None)
    e = q("Show me everyone near the door between 9 and 10")
    assert (e.intent, e.camera, e.labels) == (Intent.LIST, "front door", ("person",))
    assert (e.time.start, e.time.end) == (T(9), T(10))


@pytest.mark.parametrize("text, start, end", [
    ("Was anyone at the gate before 9 am?", T(0), T(9)),
    ("Was anyone at the gate before 9?", T(0), T(9)),
    ("Who came between 2 and 4 this afternoon?", T(14), T(16)),
    ("Anyone at the gate yesterday?", T(0, d=26), T(0, d=27)),
    ("Who was at the door this morning?", T(6), T(12)),
    ("Any cars in the last 2 hours?", T(16, 30), T(18, 30)),
    ("Anyone at the gate at 3 pm?", T(15), T(16)),
    ("Anyone on 2026-11-20?", T(0, d=20), T(0, d=21)),
    ("Was anyone loitering?", None, None),
])
def test_time_ranges(text: str, start: float | None, end: float | None) -> None:
    r = q(text).time
    assert (r.start, r.end) == (start, end)


def test_places_thresholds_and_classes() -> None:
    z = q("How long did the person in red stay at the gate?")
    assert (z.intent, z.zone, z.camera, z.colour, z.event) == (Intent.DURATION, "gate", None, "red", EventType.DWELL)
    assert q("Was anyone at the gate for more than 5 minutes?").min_seconds == 300
    assert q("Did more than 3 people gather at the gate?").min_count == 4
    assert q("How many vehicles came today?").labels == ("bus", "car", "motorcycle", "truck")
    assert q("Were there dogs at the front door?").labels == ("dog",)
    unknown = q("Was anyone at the back yard today?")
    assert unknown.place == "back yard" and unknown.camera is None and unknown.zone is None
    with pytest.raises(InputError):
        q("   ")
    with pytest.raises(InputError, match="at most"):
        q("why " * 400)
