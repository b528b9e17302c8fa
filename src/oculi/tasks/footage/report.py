"""A day of one camera's footage as a report, written only from its stored events.

``build_footage_report`` reads the day's sources, tracks and events through the query
functions and returns a ``FootageReport``: title, scene (camera, footage covered, zones),
a short summary whose every sentence is a count or a time taken from the events, a confidence,
a threat level from fixed rules, the events, an hourly timeline, counts, the flagged findings
(loitering, activity at unusual hours, crowding) and the keyframes that show them.

Threat level (rules, in order): ``high`` — loitering or crowding at unusual hours, or three or
more loitering events; ``medium`` — any loitering, crowding, or arrivals at unusual hours;
``low`` — activity only at usual hours; ``none`` — no tracked object. Confidence is the mean
best detection score of the tracks the findings rest on (all tracks when nothing is flagged),
times the share of the day's footage that was readable; ``None`` without tracks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, tzinfo
from typing import Any

from oculi.core.errors import NotFoundError
from oculi.core.types import SCHEMA_VERSION
from oculi.language.vocab import number_word, plural
from oculi.store.records import EventRecord, EventType, TrackRecord, iso_time
from oculi.tasks.footage import query as fq
from oculi.tasks.footage.tracking import VEHICLES

MAX_REPORT_EVENTS = 1000
MAX_KEYFRAMES = 12


@dataclass
class Finding:
    """One flagged fact: its kind (``loitering``, ``unusual_hours``, ``crowding``), the sentence and the event."""

    kind: str
    text: str
    event: EventRecord

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "event": self.event.to_dict(tz)}


@dataclass
class FootageReport:
    """The footage report's data (``to_dict`` is the JSON form, docs/SCHEMAS.md)."""

    title: str
    camera: str
    day: str
    timezone: str
    scene: dict[str, Any]
    summary: str
    confidence: float | None
    threat_level: str
    events: list[EventRecord]
    events_total: int
    timeline: list[dict[str, Any]]
    counts: dict[str, Any]
    findings: list[Finding]
    keyframes: list[dict[str, Any]] = field(default_factory=list)

    tz: tzinfo | None = None

    def to_dict(self) -> dict[str, Any]:
        tz = self.tz
        scene = dict(self.scene)
        scene["footage"] = [[iso_time(s, tz), iso_time(e, tz)] for s, e in self.scene["footage"]]
        scene["sources"] = [dict(s, start=iso_time(s["start"], tz), end=iso_time(s["end"], tz)) for s in self.scene["sources"]]
        keyframes = [dict(k, time=iso_time(k["time"], tz)) for k in self.keyframes]
        return {
            "schema_version": SCHEMA_VERSION, "title": self.title, "camera": self.camera, "day": self.day,
            "timezone": self.timezone, "scene": scene, "summary": self.summary,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "threat_level": self.threat_level, "findings": [f.to_dict(tz) for f in self.findings],
            "counts": self.counts, "timeline": self.timeline, "keyframes": keyframes,
            "events": [e.to_dict(tz) for e in self.events], "events_total": self.events_total,
        }


def _hm(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def build_footage_report(coll: Any, camera: str, day: date, *, tz: tzinfo, tz_name: str = "UTC",
                         usual_hours: tuple[int, int] = (7, 19)) -> FootageReport:
    """The report of ``camera`` on ``day`` (midnight to midnight in ``tz``).

    Args:
        coll: The collection.
        camera: Camera name (exact, as given to ``oculi watch``).
        day: The day.
        tz: Time zone of the day and of every time shown.
        usual_hours: ``(start, end)`` hours; activity outside is flagged as unusual hours.

    Raises:
        NotFoundError: the camera has no footage, naming the cameras that do.
    """
    cameras = fq.list_cameras(coll)
    if camera not in cameras:
        raise NotFoundError(f"no footage from a camera called {camera!r} (cameras: {', '.join(cameras) or 'none yet'})")
    start = datetime.combine(day, dtime(0), tzinfo=tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=tz).timestamp()
    covs = [c for c in fq.footage_coverage(coll, camera)]
    covered = sum(c.seconds_within(start, end) for c in covs)
    spans = [(max(s, start), min(e, end)) for c in covs for s, e in c.intervals if e > start and s < end]
    events = fq.find_events(coll, camera=camera, after=start, before=end)
    tracks = fq.find_tracks(coll, camera=camera, after=start, before=end)
    sources = [s for s in coll.query_records("sources") if s.camera == camera and s.end_time is not None
               and s.end_time >= start and s.start_time < end]
    zones = sorted({z["name"]: z for s in sources for z in (s.settings or {}).get("zones", [])}.values(), key=lambda z: z["name"])
    lo, hi = usual_hours

    def unusual(ts: float) -> bool:
        h = datetime.fromtimestamp(ts, tz).hour
        return not (lo <= h < hi)

    findings: list[Finding] = []
    for e in events:
        if e.type == EventType.LOITERING.value:
            findings.append(Finding("loitering", f"A {e.label} (track {e.track_id}) loitered"
                                    + (f" in zone {e.zone}" if e.zone else "") + f" for {_dur(e.value or e.duration)}, "
                                    f"{_hm(e.start_time, tz)}–{_hm(e.end_time, tz)}"
                                    + (" (still there when the footage ends)" if e.ongoing else "") + ".", e))
        elif e.type == EventType.CROWDING.value:
            findings.append(Finding("crowding", f"Up to {e.count} {plural(e.label or 'object', e.count or 2)} at once"
                                    + (f" in zone {e.zone}" if e.zone else "") + f", {_hm(e.start_time, tz)}–{_hm(e.end_time, tz)}.", e))
        elif e.type == EventType.APPEAR.value and unusual(e.start_time):
            findings.append(Finding("unusual_hours", f"A {e.label} (track {e.track_id}) arrived at {_hm(e.start_time, tz)}, "
                                    f"outside usual hours ({lo:02d}:00–{hi:02d}:00).", e))
    arrivals = [t for t in tracks if start <= t.start_time < end]
    by_label = Counter(t.label for t in arrivals)
    counts = {
        "tracks_by_label": dict(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))),
        "people": by_label.get("person", 0),
        "vehicles": sum(n for lab, n in by_label.items() if lab in VEHICLES),
        "events_by_type": dict(sorted(Counter(e.type for e in events).items())),
        "loitering": sum(1 for f in findings if f.kind == "loitering"),
        "crowding": sum(1 for f in findings if f.kind == "crowding"),
        "unusual_hours": sum(1 for f in findings if f.kind == "unusual_hours"),
    }
    timeline = _timeline(events, arrivals, start, tz)
    threat = _threat(findings, tracks, unusual)
    processed = sum(max(0.0, min(s.end_time, end) - max(s.start_time, start)) for s in sources)
    readable = covered / processed if processed > 0 else 0.0
    basis = {(f.event.source_id, f.event.track_id) for f in findings if f.event.track_id is not None}
    scored = [t.score for t in tracks if (t.source_id, t.track_id) in basis] or [t.score for t in tracks]
    confidence = (sum(scored) / len(scored)) * min(1.0, readable) if scored else None
    summary = _summary(camera, day, covered, spans, counts, findings, tz, usual_hours)
    title = f"Footage report — {camera}, {day.isoformat()}"
    scene = {
        "camera": camera, "day": day.isoformat(), "timezone": tz_name, "usual_hours": [lo, hi],
        "footage": [[s, e] for s, e in spans], "footage_seconds": round(covered, 1), "zones": zones,
        "sources": [{"id": s.id, "uri": s.uri, "kind": s.kind, "start": s.start_time, "end": s.end_time,
                     "status": s.status, "problems": s.problems} for s in sources],
    }
    keyframes = _keyframes(coll, findings, tracks)
    return FootageReport(title, camera, day.isoformat(), tz_name, scene, summary, confidence, threat,
                         events[:MAX_REPORT_EVENTS], len(events), timeline, counts, findings, keyframes, tz)


def _timeline(events: list[EventRecord], arrivals: list[TrackRecord], start: float, tz: tzinfo) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for t in arrivals:
        h = datetime.fromtimestamp(t.start_time, tz).hour
        r = rows.setdefault(h, {"hour": f"{h:02d}:00", "arrivals": Counter(), "events": Counter()})
        r["arrivals"][t.label] += 1
    for e in events:
        if e.start_time < start:
            continue
        h = datetime.fromtimestamp(e.start_time, tz).hour
        r = rows.setdefault(h, {"hour": f"{h:02d}:00", "arrivals": Counter(), "events": Counter()})
        r["events"][e.type] += 1
    return [{"hour": r["hour"], "arrivals": dict(sorted(r["arrivals"].items())), "events": dict(sorted(r["events"].items()))}
            for _, r in sorted(rows.items())]


def _threat(findings: list[Finding], tracks: list[TrackRecord], unusual: Any) -> str:
    loiter = [f for f in findings if f.kind == "loitering"]
    crowd = [f for f in findings if f.kind == "crowding"]
    odd = [f for f in findings if f.kind == "unusual_hours"]
    if any(unusual(f.event.start_time) for f in loiter + crowd) or len(loiter) >= 3:
        return "high"
    if loiter or crowd or odd:
        return "medium"
    return "low" if tracks else "none"


def _summary(camera: str, day: date, covered: float, spans: list[tuple[float, float]], counts: dict[str, Any],
             findings: list[Finding], tz: tzinfo, usual_hours: tuple[int, int]) -> str:
    if covered <= 0:
        return f"No footage from {camera} on {day.isoformat()}."
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    parts = [f"Footage from {camera} covers {_dur(covered)} between {_hm(first, tz)} and {_hm(last, tz)}."]
    seen = [f"{number_word(n)} {plural(lab, n) if lab != 'person' else ('person' if n == 1 else 'people')}"
            for lab, n in counts["tracks_by_label"].items()]
    parts.append(("Seen arriving: " + ", ".join(seen) + ".") if seen else "Nobody and nothing was tracked.")
    for kind, noun in (("loitering", "loitering event"), ("crowding", "crowding event")):
        fs = [f for f in findings if f.kind == kind]
        if fs:
            parts.append(f"{number_word(len(fs)).capitalize()} {plural(noun, len(fs))}: " + " ".join(f.text for f in fs[:3])
                         + (f" (and {len(fs) - 3} more)" if len(fs) > 3 else ""))
    if not any(f.kind == "loitering" for f in findings):
        parts.append("No loitering.")
    odd = [f for f in findings if f.kind == "unusual_hours"]
    lo, hi = usual_hours
    parts.append(f"{number_word(len(odd)).capitalize()} {plural('arrival', len(odd))} outside usual hours ({lo:02d}:00–{hi:02d}:00)."
                 if odd else f"No arrivals outside usual hours ({lo:02d}:00–{hi:02d}:00).")
    return " ".join(parts)


def _keyframes(coll: Any, findings: list[Finding], tracks: list[TrackRecord]) -> list[dict[str, Any]]:
    """Keyframes of the findings first, then of each track's first sighting (at most ``MAX_KEYFRAMES``)."""
    wanted: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        if f.event.keyframe:
            wanted.setdefault(f.event.keyframe, []).append({"kind": f.kind, "track_id": f.event.track_id,
                                                            "box": f.event.box, "label": f.event.label})
    for t in tracks:
        if t.keyframe and len(wanted) < MAX_KEYFRAMES:
            wanted.setdefault(t.keyframe, []).append({"kind": "track", "track_id": t.track_id, "box": t.box, "label": t.label})
    ids = list(wanted)[:MAX_KEYFRAMES]
    rows = {r["id"]: r for r in coll.get_items(ids, columns=["id", "time", "caption", "width", "height", "observation"])}
    out = []
    for i in ids:
        r = rows.get(i)
        if r is None:
            continue
        out.append({"id": i, "time": r["time"], "caption": r["caption"], "width": r["width"], "height": r["height"],
                    "marks": wanted[i]})
    return out
