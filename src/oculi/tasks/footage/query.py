"""The footage query functions: typed, deterministic look-ups over stored sources, tracks and events.

These are the only way questions and reports read footage records, and they are also the tool
set a tool-calling model is given (``TOOLS``: name, description, JSON-schema parameters;
``call_tool`` runs one by name with JSON arguments and returns JSON). The rules-based parser
and a model therefore reach the same facts through the same code.

Times are epoch seconds. A time window ``[after, before)`` selects what *overlaps* it: an event
or track that started before ``after`` but was still going on counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Callable, Sequence

from oculi.core.errors import InputError
from oculi.store.base import Condition, Filter, Op
from oculi.store.records import EventRecord, EventType, RecordTable, SourceRecord, TrackRecord, iso_time

MAX_RESULTS = 10_000


@dataclass(frozen=True)
class Coverage:
    """Footage a camera has, as merged ``(start, end)`` epoch intervals."""

    camera: str
    intervals: tuple[tuple[float, float], ...]

    def seconds_within(self, after: float | None, before: float | None) -> float:
        lo = float("-inf") if after is None else after
        hi = float("inf") if before is None else before
        return sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in self.intervals)

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        return {"camera": self.camera, "intervals": [[iso_time(s, tz), iso_time(e, tz)] for s, e in self.intervals]}


def _merge(intervals: Sequence[tuple[float, float]], gap: float = 1.0) -> tuple[tuple[float, float], ...]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((a, b) for a, b in out)


def list_cameras(coll: Any) -> list[str]:
    """Camera names that have footage, sorted."""
    return sorted({s.camera for s in coll.query_records(RecordTable.SOURCES)})


def list_zones(coll: Any, camera: str | None = None) -> list[str]:
    """Zone names configured on the cameras' sources."""
    names: set[str] = set()
    for s in _sources(coll, camera):
        for z in (s.settings or {}).get("zones", []):
            names.add(z["name"])
    return sorted(names)


def _sources(coll: Any, camera: str | None) -> list[SourceRecord]:
    f = Filter((Condition("camera", Op.EQ, camera),)) if camera else None
    return coll.query_records(RecordTable.SOURCES, f, order_by="start_time")


def footage_coverage(coll: Any, camera: str | None = None) -> list[Coverage]:
    """The processed footage per camera: from each source's start to the last frame processed
    (minus the stretches that could not be read)."""
    by_cam: dict[str, list[tuple[float, float]]] = {}
    for s in _sources(coll, camera):
        if s.end_time is None:
            continue
        spans = [(s.start_time, s.end_time)]
        for p in s.problems or []:  # cut out unreadable stretches
            a, b = s.start_time + float(p["start"]), s.start_time + float(p["end"])
            cut = []
            for x, y in spans:
                if b <= x or a >= y:
                    cut.append((x, y))
                else:
                    if a > x:
                        cut.append((x, a))
                    if b < y:
                        cut.append((b, y))
            spans = cut
        by_cam.setdefault(s.camera, []).extend(spans)
    return [Coverage(cam, _merge(v)) for cam, v in sorted(by_cam.items())]


def _window(after: float | None, before: float | None) -> list[Condition]:
    conds = []
    if before is not None:
        conds.append(Condition("start_time", Op.LT, before))
    if after is not None:
        conds.append(Condition("end_time", Op.GE, after))
    if after is not None and before is not None and after >= before:
        raise InputError("the time window is empty (after is not before 'before')")
    return conds


def find_events(coll: Any, *, camera: str | None = None, types: Sequence[str] | None = None,
                labels: Sequence[str] | None = None, zone: str | None = None, track_id: int | None = None,
                source_id: str | None = None, after: float | None = None, before: float | None = None,
                min_seconds: float | None = None, min_count: int | None = None,
                limit: int = MAX_RESULTS) -> list[EventRecord]:
    """Events overlapping ``[after, before)``, oldest first.

    Args:
        camera / zone / track_id / source_id: Exact matches when given.
        types: Event types (``EventType`` values) to keep.
        labels: Object classes to keep (``person``, ``car`` ...).
        min_seconds: Keep spans lasting at least this long (dwell, loitering, crowding).
        min_count: Crowding: keep those with at least this many at once.
    """
    conds = _window(after, before)
    for name, value in (("camera", camera), ("zone", zone), ("source_id", source_id)):
        if value is not None:
            conds.append(Condition(name, Op.EQ, value))
    if track_id is not None:
        conds.append(Condition("track_id", Op.EQ, int(track_id)))
    if types and len(types) == 1:
        conds.append(Condition("type", Op.EQ, EventType(types[0]).value))
    if labels and len(labels) == 1:
        conds.append(Condition("label", Op.EQ, labels[0]))
    if min_count is not None:
        conds.append(Condition("count", Op.GE, min_count))
    rows = coll.query_records(RecordTable.EVENTS, Filter(tuple(conds)), order_by="start_time")
    tset = {EventType(t).value for t in types} if types else None
    lset = set(labels) if labels else None
    out = [e for e in rows if (tset is None or e.type in tset) and (lset is None or e.label in lset)
           and (min_seconds is None or e.duration >= min_seconds)]
    return out[:limit]


def find_tracks(coll: Any, *, camera: str | None = None, labels: Sequence[str] | None = None,
                colour: str | None = None, zone: str | None = None, source_id: str | None = None,
                after: float | None = None, before: float | None = None, arrived_within: bool = False,
                limit: int = MAX_RESULTS) -> list[TrackRecord]:
    """Tracked objects overlapping ``[after, before)`` (with ``arrived_within``: first seen in
    it), oldest first. ``zone`` keeps those that were in that zone; ``colour`` those whose
    dominant colour it is."""
    conds = [] if arrived_within else _window(after, before)
    if arrived_within:
        if after is not None:
            conds.append(Condition("start_time", Op.GE, after))
        if before is not None:
            conds.append(Condition("start_time", Op.LT, before))
    for name, value in (("camera", camera), ("colour", colour), ("source_id", source_id)):
        if value is not None:
            conds.append(Condition(name, Op.EQ, value))
    if zone is not None:
        conds.append(Condition("zones", Op.HAS, zone))
    if labels and len(labels) == 1:
        conds.append(Condition("label", Op.EQ, labels[0]))
    rows = coll.query_records(RecordTable.TRACKS, Filter(tuple(conds)) if conds else None, order_by="start_time")
    lset = set(labels) if labels else None
    return [t for t in rows if lset is None or t.label in lset][:limit]


def count_tracks(coll: Any, **kw: Any) -> int:
    """How many tracked objects ``find_tracks`` would return."""
    return len(find_tracks(coll, **kw))


def source_timeline(coll: Any, source_id: str) -> dict[str, Any]:
    """A source with its events and tracks (oldest first) and the keyframes the events cite:
    ``{"source": SourceRecord, "events": [...], "tracks": [...], "keyframes": [{"id", "time", "caption"}]}``.

    Raises:
        NotFoundError: no such source.
    """
    from oculi.core.errors import NotFoundError

    srcs = coll.query_records(RecordTable.SOURCES, Filter((Condition("id", Op.EQ, source_id),)))
    if not srcs:
        raise NotFoundError(f"no source {source_id!r} in collection {coll.name!r}")
    evs = find_events(coll, source_id=source_id)
    trs = find_tracks(coll, source_id=source_id)
    ids = list(dict.fromkeys(e.keyframe for e in evs if e.keyframe))
    kfs = sorted(({"id": r["id"], "time": r["time"], "caption": r["caption"]}
                  for r in coll.get_items(ids, columns=["id", "time", "caption"])), key=lambda k: k["time"])
    return {"source": srcs[0], "events": evs, "tracks": trs, "keyframes": kfs}


# --- the tool set --------------------------------------------------------------------------------

_TIME = {"type": ["number", "null"], "description": "epoch seconds"}
TOOLS: list[dict[str, Any]] = [
    {"name": "list_cameras", "description": "Camera names that have footage.", "parameters": {"type": "object", "properties": {}}},
    {"name": "list_zones", "description": "Zone names configured on a camera (or all cameras).",
     "parameters": {"type": "object", "properties": {"camera": {"type": ["string", "null"]}}}},
    {"name": "footage_coverage", "description": "Time intervals (epoch seconds) of processed footage per camera.",
     "parameters": {"type": "object", "properties": {"camera": {"type": ["string", "null"]}}}},
    {"name": "find_events", "description": "Events (appear, leave, zone_enter, zone_leave, dwell, loitering, crowding) "
     "overlapping a time window, oldest first.",
     "parameters": {"type": "object", "properties": {
         "camera": {"type": ["string", "null"]}, "types": {"type": ["array", "null"], "items": {"type": "string", "enum": [t.value for t in EventType]}},
         "labels": {"type": ["array", "null"], "items": {"type": "string"}}, "zone": {"type": ["string", "null"]},
         "track_id": {"type": ["integer", "null"]}, "after": _TIME, "before": _TIME,
         "min_seconds": {"type": ["number", "null"]}, "min_count": {"type": ["integer", "null"]},
         "limit": {"type": "integer", "default": 100}}}},
    {"name": "find_tracks", "description": "Tracked objects (one per person/vehicle seen) overlapping a window; "
     "arrived_within=true keeps those first seen inside it.",
     "parameters": {"type": "object", "properties": {
         "camera": {"type": ["string", "null"]}, "labels": {"type": ["array", "null"], "items": {"type": "string"}},
         "colour": {"type": ["string", "null"]}, "zone": {"type": ["string", "null"]}, "after": _TIME, "before": _TIME,
         "arrived_within": {"type": "boolean", "default": False}, "limit": {"type": "integer", "default": 100}}}},
    {"name": "count_tracks", "description": "How many tracked objects find_tracks would return.",
     "parameters": {"type": "object", "properties": {
         "camera": {"type": ["string", "null"]}, "labels": {"type": ["array", "null"], "items": {"type": "string"}},
         "colour": {"type": ["string", "null"]}, "zone": {"type": ["string", "null"]}, "after": _TIME, "before": _TIME,
         "arrived_within": {"type": "boolean", "default": False}}}},
]

_FUNCS: dict[str, Callable[..., Any]] = {
    "list_cameras": list_cameras, "list_zones": list_zones, "footage_coverage": footage_coverage,
    "find_events": find_events, "find_tracks": find_tracks, "count_tracks": count_tracks,
}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (EventRecord, TrackRecord, Coverage)):
        return v.to_dict()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def call_tool(coll: Any, name: str, arguments: str | dict[str, Any]) -> Any:
    """Run a query function by its tool name with JSON arguments; returns JSON-ready data.

    Raises:
        InputError: unknown tool, malformed or unknown arguments.
    """
    fn = _FUNCS.get(name)
    if fn is None:
        raise InputError(f"unknown footage tool {name!r}; tools: {', '.join(_FUNCS)}")
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments or {})
    except ValueError:
        raise InputError(f"{name}: arguments are not JSON") from None
    allowed = set(next(t for t in TOOLS if t["name"] == name)["parameters"]["properties"])
    unknown = set(args) - allowed
    if unknown:
        raise InputError(f"{name}: unknown arguments {sorted(unknown)}; allowed: {sorted(allowed)}")
    try:
        return _jsonable(fn(coll, **{k: v for k, v in args.items() if v is not None}))
    except (TypeError, ValueError) as e:
        raise InputError(f"{name}: {e}") from None
