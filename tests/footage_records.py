"""Hand-made footage records (sources, tracks, events, keyframe items) for tests that need no models."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import numpy as np
from PIL import Image

from oculi.store.base import ItemRecord
from oculi.store.records import EventRecord, SourceRecord, TrackRecord, event_id, source_id_for, track_key

UTC = timezone.utc


def T(h: int, m: int = 0, s: int = 0) -> float:  # noqa: N802 - a time of 2026-11-27, UTC
    return datetime(2026, 11, 27, h, m, s, tzinfo=UTC).timestamp()


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


def fill_collection(c) -> None:
    """Three sources (the gate by day and by night, the front door) with tracks, events and keyframes."""
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
