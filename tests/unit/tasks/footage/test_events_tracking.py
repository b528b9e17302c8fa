"""Events from tracked detections, and the tracker's seconds-based lost buffer and re-linking.

The event engine gets scripted tracks (no models); the tracker gets synthetic boxes through the
real ByteTrack of roboflow ``trackers``.
"""

from __future__ import annotations

import pickle

import pytest

from oculi.core.types import Box, DetectedObject
from oculi.tasks.footage.events import EventEngine, EventSettings
from oculi.tasks.footage.tracking import Tracked, Tracker
from oculi.tasks.footage.zones import Zone

T0 = 1_800_000_000.0
GATE = Zone("gate", ((300.0, 200.0), (600.0, 200.0), (600.0, 360.0), (300.0, 360.0)), loiter_after=10.0)


def keyframe_of(i: int) -> str:
    return f"kf{i}"


def engine(**kw) -> EventEngine:
    s = EventSettings(**{"zones": [GATE], "lost_after": 3.0, **kw})
    return EventEngine("src", "gate cam", T0, s, keyframe_of)


def person(tid: int, x: float, y: float = 340.0, label: str = "person", h: float = 120.0) -> Tracked:
    return Tracked(tid, label, 0.7, Box(x - 30, y - h, x + 30, y))


def run(eng: EventEngine, script: dict[int, callable], until: float, fps: float = 2.0) -> list:
    t = 0.0
    while t <= until + 1e-9:
        eng.step(t, int(round(t * 10)), [f(t) for f in script.values() if f(t) is not None])
        t = round(t + 1 / fps, 6)
    eng.finish(t - 1 / fps, grace=1.0)
    events, tracks, _ = eng.drain()
    return sorted(events, key=lambda e: (e.start_time, e.type)), tracks


def by(events, type_, tid=None):
    return [e for e in events if e.type == type_ and (tid is None or e.track_id == tid)]


def test_loiterer_passer_and_leave_times() -> None:
    # track 1 stands in the gate from 2 s to 20 s; track 2 walks through the gate in 3 s; both leave
    script = {
        1: lambda t: person(1, 450) if 2 <= t <= 20 else None,
        2: lambda t: person(2, 200 + 60 * (t - 25)) if 25 <= t <= 33 else None,
    }
    events, tracks = run(engine(), script, 40)
    assert [e.start_time - T0 for e in by(events, "appear")] == [2.0, 25.0]
    assert [e.start_time - T0 for e in by(events, "leave")] == [20.0, 33.0]  # last sighting, not the buffer's end
    loiter = by(events, "loitering")
    assert len(loiter) == 1 and loiter[0].track_id == 1 and loiter[0].zone == "gate"
    assert (loiter[0].start_time - T0, loiter[0].end_time - T0, loiter[0].ongoing) == (2.0, 20.0, 0)
    assert loiter[0].details["threshold"] == 10.0 and loiter[0].keyframe.startswith("kf")
    dwell2 = by(events, "dwell", 2)
    assert len(dwell2) == 1 and 4.5 <= dwell2[0].value <= 5.5  # 300 px of zone at 60 px/s: no loitering
    enter2 = by(events, "zone_enter", 2)[0]
    assert enter2.start_time - T0 == pytest.approx(26.7, abs=0.6)
    assert {t.track_id: t.zones for t in tracks} == {1: ("gate",), 2: ("gate",)}


def test_a_one_frame_detection_leaves_no_trace_and_inertia_ignores_flicker() -> None:
    script = {
        1: lambda t: person(1, 450) if t == 5.0 else None,  # one frame only: never confirmed
        # track 2 walks along the zone's edge; one frame inside does not make an entry
        2: lambda t: person(2, 290 if t != 12.0 else 310) if 10 <= t <= 14 else None,
    }
    events, tracks = run(engine(), script, 20)
    assert {e.track_id for e in events} == {2}
    assert not by(events, "zone_enter") and [t.track_id for t in tracks] == [2]


def test_footage_ending_with_someone_in_view_is_ongoing_not_a_leave() -> None:
    events, tracks = run(engine(), {1: lambda t: person(1, 450) if t >= 3 else None}, 30)
    assert not by(events, "leave")
    loiter = by(events, "loitering")[0]
    assert loiter.ongoing == 1 and loiter.end_time - T0 == 30.0
    assert tracks[0].ongoing == 1


def test_crowding_and_frame_loitering_without_zones() -> None:
    script = {i: (lambda t, i=i: person(i, 80 + 90 * i) if 5 <= t <= 12 else None) for i in range(1, 5)}
    events, _ = run(engine(zones=[], crowd_min=4, loiter_after=6.0), script, 20)
    crowd = by(events, "crowding")
    assert len(crowd) == 1 and crowd[0].count == 4 and crowd[0].zone is None
    assert (crowd[0].start_time - T0, crowd[0].end_time - T0) == (5.5, 12.0)
    assert {e.track_id for e in by(events, "loitering")} == {1, 2, 3, 4}  # in view for 7 s > 6 s
    assert not by(events, "zone_enter")


def test_the_engine_state_pickles_and_resumes_identically() -> None:
    script = {1: lambda t: person(1, 450) if 2 <= t <= 20 else None}
    whole, _ = run(engine(), script, 30)
    a = engine()
    t = 0.0
    while t <= 9.0:
        a.step(t, int(t * 10), [f(t) for f in script.values() if f(t) is not None])
        t += 0.5
    first, _, _ = a.drain()
    b = pickle.loads(pickle.dumps(a))
    rest, _ = run_from(b, script, t, 30)
    merged = {e.id: e for e in first} | {e.id: e for e in rest}
    assert sorted(merged) == sorted(e.id for e in whole)
    assert {i: merged[i] for i in merged} == {e.id: e for e in whole}


def run_from(eng, script, t, until):
    while t <= until + 1e-9:
        eng.step(t, int(round(t * 10)), [f(t) for f in script.values() if f(t) is not None])
        t = round(t + 0.5, 6)
    eng.finish(t - 0.5, grace=1.0)
    events, tracks, _ = eng.drain()
    return events, tracks


def det(x: float, y: float = 300.0, label: str = "person", score: float = 0.7, w: float = 60, h: float = 120) -> DetectedObject:
    return DetectedObject(label, score, Box(x - w / 2, y - h, x + w / 2, y))


@pytest.mark.parametrize("fps", [2.0, 5.0])
def test_ids_survive_an_occlusion_measured_in_seconds(fps: float) -> None:
    # a walker at 60 px/s is unseen for 2.5 s behind a wall; the buffer is 4 s at any sampling rate
    tr = Tracker(lost_after=4.0)
    ids = set()
    t = 0.0
    while t <= 12:
        x = 60 * t
        hidden = 4.0 <= t < 6.5
        out = tr.update([] if hidden else [det(x)], t)
        ids |= {o.track_id for o in out}
        t = round(t + 1 / fps, 6)
    assert ids == {1}


def test_a_gap_longer_than_the_buffer_is_a_new_track_and_classes_do_not_mix() -> None:
    tr = Tracker(lost_after=1.0)
    seen = []
    for t in (0.0, 0.5, 1.0, 4.0, 4.5):  # 3 s unseen > 1 s buffer
        out = tr.update([det(100)], t)
        seen.append({o.track_id for o in out})
        if t == 0.5:
            assert out[0].since == 0.0  # when the track's first detection was
    # ByteTrack names a track from its second detection on; the first is remembered as ``since``
    assert seen[0] == set() and seen[2] == {1} and seen[3] == set() and seen[4] == {2}
    # a car where a person was is another track (one ByteTrack per class group)
    car = det(100, label="car", w=200, h=80)
    tr.update([det(100), car], 5.0)
    out = tr.update([det(100), car], 5.5)
    assert {o.label: o.track_id for o in out} == {"person": 2, "car": 3}
    # car/truck flicker stays one vehicle track; low scores continue tracks but never start them
    out = tr.update([det(100, label="truck", w=200, h=80, score=0.3), det(500, score=0.3)], 6.0)
    assert [(o.label, o.track_id) for o in out] == [("truck", 3)]


def test_fast_object_after_a_missed_frame_is_relinked_along_its_motion() -> None:
    tr = Tracker(lost_after=3.0)
    ids = []
    for t in (0.0, 0.5, 1.0, 2.0, 2.5):  # 175 px/s; missed at 1.5 s; boxes barely overlap after the miss
        out = tr.update([det(100 + 175 * t, label="car", w=140, h=80)], t)
        ids.append(out[0].track_id if out else None)
    assert ids == [None, 1, 1, 1, 1]
