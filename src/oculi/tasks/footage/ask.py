"""Answer a question about footage from the stored tracks and events, with evidence.

question → ``parse_question`` (rules) → ``FootageQuery`` → the query functions of
``oculi.tasks.footage.query`` → an answer written only from what they return: yes / no, how
many, when, how long, or a list, each citing event times, track ids and keyframe thumbnails.
A time range (or place) with no footage gets "no footage covers ..." — never a bare "no" —
and an absence claimed over partly covered time says which part was covered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Iterable, Sequence

from oculi.core.types import SCHEMA_VERSION
from oculi.language.vocab import number_word, plural
from oculi.store.records import EventRecord, EventType, TrackRecord, iso_time
from oculi.tasks.footage import query as fq
from oculi.tasks.footage.parse import FootageQuery, Intent, parse_question

MAX_EVIDENCE = 50


@dataclass(frozen=True)
class FootageEvidence:
    """One fact an answer rests on: an event, or a tracked object (``type == "track"``)."""

    type: str
    camera: str
    start: float
    end: float
    track_id: int | None = None
    label: str | None = None
    zone: str | None = None
    thumbnail: str | None = None
    seconds: float | None = None
    colour: str | None = None
    ongoing: bool = False

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        return {"type": self.type, "camera": self.camera, "start": iso_time(self.start, tz), "end": iso_time(self.end, tz),
                "start_ts": self.start, "end_ts": self.end,
                "track_id": self.track_id, "label": self.label, "zone": self.zone, "thumbnail": self.thumbnail,
                "seconds": None if self.seconds is None else round(self.seconds, 1), "colour": self.colour,
                "ongoing": self.ongoing}

    @classmethod
    def of_event(cls, e: EventRecord) -> "FootageEvidence":
        return cls(e.type, e.camera, e.start_time, e.end_time, e.track_id, e.label, e.zone, e.keyframe,
                   e.value if e.value is not None else (e.duration if e.duration else None), None, bool(e.ongoing))

    @classmethod
    def of_track(cls, t: TrackRecord) -> "FootageEvidence":
        return cls("track", t.camera, t.start_time, t.end_time, t.track_id, t.label, None, t.keyframe,
                   t.end_time - t.start_time, t.colour, bool(t.ongoing))


@dataclass(frozen=True)
class FootageAnswer:
    """An answer about footage.

    Attributes:
        answer: The sentence.
        kind: ``yes``, ``no``, ``count``, ``when``, ``duration``, ``list``, ``no_footage`` or
            ``unknown`` (the question names something there is no footage of, or that cannot be
            read from events).
        value: True/False, a number, or None.
        query: The structured query the question became.
        evidence: What the answer rests on (at most ``MAX_EVIDENCE``; ``total`` counts all).
        coverage: The footage that the question's cameras have, per camera.
    """

    question: str
    answer: str
    kind: str
    value: Any
    query: FootageQuery
    evidence: tuple[FootageEvidence, ...] = ()
    total: int = 0
    coverage: tuple[fq.Coverage, ...] = ()
    method: str = "rules"

    @property
    def answerable(self) -> bool:
        return self.kind not in ("no_footage", "unknown")

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """JSON (docs/SCHEMAS.md); times as ISO 8601 in ``tz`` (UTC by default)."""
        return {
            "schema_version": SCHEMA_VERSION, "question": self.question, "answer": self.answer, "kind": self.kind,
            "value": self.value, "answerable": self.answerable, "method": self.method, "query": self.query.to_dict(),
            "evidence": [e.to_dict(tz) for e in self.evidence], "total": self.total,
            "coverage": [c.to_dict(tz) for c in self.coverage],
        }


@dataclass
class _Ctx:
    coll: Any
    q: FootageQuery
    tz: tzinfo
    now: datetime
    cameras: list[str] = field(default_factory=list)

    def when(self, ts: float, *, with_day: bool | None = None) -> str:
        d = datetime.fromtimestamp(ts, self.tz)
        if with_day is None:
            with_day = d.date() != self.now.astimezone(self.tz).date()
        return f"{d.day} {d:%b %H:%M:%S}" if with_day else f"{d:%H:%M:%S}"

    def span(self, a: float, b: float) -> str:
        return f"{self.when(a)}–{self.when(b)}" if b - a >= 1 else self.when(a)

    def where(self) -> str:
        q = self.q
        if q.zone and q.camera:
            return f" in zone {q.zone} of {q.camera}"
        if q.zone:
            return f" in zone {q.zone}"
        if q.camera:
            return f" at {q.camera}"
        return ""

    def noun(self, n: int) -> str:
        labels = self.q.labels
        base = "vehicle" if len(labels) > 1 else (labels[0] if labels else "object")
        if self.q.colour:
            base = f"{base} in {self.q.colour}" if base == "person" else f"{self.q.colour} {base}"
        if base.startswith("person"):
            return base.replace("person", "person" if n == 1 else "people", 1)
        head, _, rest = base.partition(" in ")
        return (plural(head, n) + (" in " + rest if rest else "")) if n != 1 else base


def _fmt_secs(s: float) -> str:
    s = max(0.0, s)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _coverage_note(ctx: _Ctx, covs: Sequence[fq.Coverage]) -> str:
    spans = [(s, e) for c in covs for s, e in c.intervals]
    if not spans:
        return "there is no footage yet"
    shown = ", ".join(ctx.span(s, e) for s, e in spans[:4]) + (" …" if len(spans) > 4 else "")
    return f"footage covers {shown}"


def ask_footage(coll: Any, question: str, *, now: datetime | None = None, tz: tzinfo | None = None) -> FootageAnswer:
    """Answer a question about a collection's footage (rules; see the module docstring).

    Args:
        coll: The collection holding the sources, tracks and events.
        question: E.g. "Was anyone loitering at the main gate today?".
        now: Reference time for "today", "in the last hour" ... (default: the current time).
        tz: Time zone of clock times in the question and the answer (default: UTC).

    Example:
        >>> a = ask_footage(coll, "How many people came to the main gate today?")  # doctest: +SKIP
        >>> a.answer, a.value  # doctest: +SKIP
        ('3 people came to main gate today: tracks 1 (16:59:33), 2 (16:59:35), 3 (17:00:00).', 3)
    """
    tz = tz or timezone.utc
    now = (now or datetime.now(tz)).astimezone(tz)
    cameras = fq.list_cameras(coll)
    zones = fq.list_zones(coll)
    q = parse_question(question, now=now, tz=tz, cameras=cameras, zones=zones)
    ctx = _Ctx(coll, q, tz, now, cameras)
    if q.place and not q.camera and not q.zone:
        known = ", ".join(cameras + [f"zone {z}" for z in zones]) or "none yet"
        return FootageAnswer(question, f"I have no footage of a camera or zone called \"{q.place}\" (known: {known}).",
                             "unknown", None, q)
    scope = [q.camera] if q.camera else cameras
    covs = tuple(c for c in fq.footage_coverage(coll) if c.camera in scope)
    covered = sum(c.seconds_within(q.time.start, q.time.end) for c in covs)
    when_text = q.time.text or "any time"
    if covered <= 0:
        who = q.camera or ("any camera" if not q.zone else f"zone {q.zone}")
        msg = f"No footage from {who} covers {when_text}, so I cannot tell ({_coverage_note(ctx, covs)})."
        return FootageAnswer(question, msg, "no_footage", None, q, coverage=covs)
    return _answer(ctx, question, covs)


def _answer(ctx: _Ctx, question: str, covs: tuple[fq.Coverage, ...]) -> FootageAnswer:
    q = ctx.q
    win = dict(after=q.time.start, before=q.time.end)
    place = dict(camera=q.camera)
    if q.event in (EventType.LOITERING, EventType.CROWDING, EventType.ZONE_ENTER) or (q.event is EventType.DWELL and q.zone):
        evs = fq.find_events(ctx.coll, types=[q.event.value], labels=q.labels if q.event is not EventType.CROWDING else None,
                             zone=q.zone, min_seconds=q.min_seconds, min_count=q.min_count, **place, **win)
        if q.colour:
            colours = {t.track_id for t in fq.find_tracks(ctx.coll, colour=q.colour, **place, **win)}
            evs = [e for e in evs if e.track_id in colours]
        return _from_events(ctx, question, evs, covs)
    tracks = fq.find_tracks(ctx.coll, labels=q.labels or None, colour=q.colour, zone=q.zone, arrived_within=q.arrival,
                            **place, **win)
    if q.min_seconds is not None:
        tracks = [t for t in tracks if t.end_time - t.start_time >= q.min_seconds]
    return _from_tracks(ctx, question, tracks, covs)


def _distinct_tracks(evs: Iterable[EventRecord]) -> int:
    return len({(e.source_id, e.track_id) for e in evs if e.track_id is not None}) or len(list(evs))


def _partial(ctx: _Ctx, covs: Sequence[fq.Coverage]) -> str:
    q = ctx.q
    if q.time.start is None or q.time.end is None:
        return ""
    end = min(q.time.end, ctx.now.timestamp())
    covered = sum(c.seconds_within(q.time.start, end) for c in covs)
    if end - q.time.start - covered > 60:
        return f" (only part of {q.time.text or 'that time'} has footage: {_coverage_note(ctx, covs)})"
    return ""


def _from_events(ctx: _Ctx, question: str, evs: list[EventRecord], covs: tuple[fq.Coverage, ...]) -> FootageAnswer:
    q = ctx.q
    ev = q.event
    assert ev is not None
    tail = (" " + q.time.text) if q.time.text else ""
    evidence = tuple(FootageEvidence.of_event(e) for e in evs[:MAX_EVIDENCE])
    verb = {EventType.LOITERING: "loitering", EventType.CROWDING: "crowding", EventType.ZONE_ENTER: "entering",
            EventType.DWELL: "staying"}[ev]
    if not evs:
        who = "crowding" if ev is EventType.CROWDING else f"no {ctx.noun(2)} {verb}"
        text = (f"No — no crowding{ctx.where()}{tail}" if ev is EventType.CROWDING else f"No — {who}{ctx.where()}{tail}")
        if q.intent is Intent.COUNT:
            return FootageAnswer(question, f"0 — {who}{ctx.where()}{tail}{_partial(ctx, covs)}.", "count", 0, q, (), 0, covs)
        return FootageAnswer(question, text + _partial(ctx, covs) + ".", "no", False, q, (), 0, covs)
    parts = []
    for e in evs[:8]:
        if ev is EventType.CROWDING:
            parts.append(f"up to {e.count} {plural(e.label or 'object', e.count or 2)} {ctx.span(e.start_time, e.end_time)}"
                         + (f" in zone {e.zone}" if e.zone else ""))
        else:
            secs = f", {_fmt_secs(e.value)}" if e.value is not None else ""
            zone = f" in zone {e.zone}" if e.zone and not q.zone else ""
            parts.append(f"track {e.track_id} ({e.label}) {ctx.span(e.start_time, e.end_time)}{secs}{zone}"
                         + (", still there when the footage ends" if e.ongoing else ""))
    more = f" and {len(evs) - 8} more" if len(evs) > 8 else ""
    n = len(evs) if ev is EventType.CROWDING else _distinct_tracks(evs)
    listing = "; ".join(parts) + more
    if q.intent is Intent.COUNT:
        what = "crowding event" if ev is EventType.CROWDING else ctx.noun(n)
        return FootageAnswer(question, f"{n} {plural(what, n) if ev is EventType.CROWDING else what} {verb if ev is not EventType.CROWDING else ''}"
                             f"{ctx.where()}{tail}: {listing}.".replace("  ", " "), "count", n, q, evidence, len(evs), covs)
    if q.intent is Intent.WHEN:
        return FootageAnswer(question, f"{listing[0].upper()}{listing[1:]}.", "when", evs[0].start_time, q, evidence, len(evs), covs)
    if q.intent is Intent.LIST:
        return FootageAnswer(question, f"{number_word(n).capitalize()}: {listing}.", "list", n, q, evidence, len(evs), covs)
    if ev is EventType.CROWDING:
        text = f"Yes — crowding{ctx.where()}{tail}: {listing}."
    else:
        text = f"Yes — {number_word(n)} {ctx.noun(n)} {'was' if n == 1 else 'were'} {verb}{ctx.where()}{tail}: {listing}."
    return FootageAnswer(question, text, "yes", True, q, evidence, len(evs), covs)


def _leave_of(ctx: _Ctx, t: TrackRecord) -> tuple[str, float]:
    evs = fq.find_events(ctx.coll, types=[EventType.LEAVE.value], track_id=t.track_id, source_id=t.source_id)
    if evs:
        return f"left at {ctx.when(evs[0].start_time)}", evs[0].start_time
    if t.ongoing:
        return f"was still there when the footage ended (last seen {ctx.when(t.end_time)})", t.end_time
    return f"was last seen at {ctx.when(t.end_time)}", t.end_time


def _from_tracks(ctx: _Ctx, question: str, tracks: list[TrackRecord], covs: tuple[fq.Coverage, ...]) -> FootageAnswer:
    q = ctx.q
    n = len(tracks)
    tail = (" " + q.time.text) if q.time.text else ""
    noun = ctx.noun(n)
    evidence = tuple(FootageEvidence.of_track(t) for t in tracks[:MAX_EVIDENCE])
    verb = "came" if q.arrival else "was seen" if n == 1 else "were seen"
    where = ctx.where() if not q.arrival else (f" to {q.camera}" if q.camera and not q.zone else ctx.where())
    if q.intent is Intent.WHEN:
        if not tracks:
            return FootageAnswer(question, f"I found no {ctx.noun(2)}{ctx.where()}{tail}{_partial(ctx, covs)}.", "no", False, q,
                                 (), 0, covs)
        if q.event is EventType.LEAVE:
            parts, first = [], None
            for t in tracks[:8]:
                s, ts = _leave_of(ctx, t)
                first = ts if first is None else first
                parts.append(f"the {ctx.noun(1)} (track {t.track_id}{', ' + t.camera if not q.camera else ''}) {s}")
            text = "; ".join(parts)
            return FootageAnswer(question, text[0].upper() + text[1:] + ".", "when", first, q, evidence, n, covs)
        parts = [f"track {t.track_id} {ctx.span(t.start_time, t.end_time)}" for t in tracks[:8]]
        return FootageAnswer(question, f"The {noun if n == 1 else ctx.noun(n)}{ctx.where()}: " + "; ".join(parts) + ".", "when",
                             tracks[0].start_time, q, evidence, n, covs)
    if q.intent is Intent.DURATION:
        if not tracks:
            return FootageAnswer(question, f"I found no {ctx.noun(2)}{ctx.where()}{tail}.", "no", False, q, (), 0, covs)
        parts = [f"track {t.track_id}: {_fmt_secs(t.end_time - t.start_time)} ({ctx.span(t.start_time, t.end_time)})"
                 for t in tracks[:8]]
        return FootageAnswer(question, "; ".join(parts).capitalize() + ".", "duration", tracks[0].end_time - tracks[0].start_time,
                             q, evidence, n, covs)
    listing = ", ".join(f"{t.track_id} ({ctx.when(t.start_time)}{'' if not t.colour or q.colour else ', ' + t.colour})"
                        for t in tracks[:10]) + (f" and {n - 10} more" if n > 10 else "")
    label = "track" if n == 1 else "tracks"
    if q.intent is Intent.COUNT:
        text = f"{n} {noun} {verb.replace('was seen', 'seen').replace('were seen', 'seen')}{where}{tail}"
        text += f": {label} {listing}." if n else f"{_partial(ctx, covs)}."
        return FootageAnswer(question, text, "count", n, q, evidence, n, covs)
    if q.intent is Intent.LIST:
        if not n:
            return FootageAnswer(question, f"No {ctx.noun(2)}{ctx.where()}{tail}{_partial(ctx, covs)}.", "list", 0, q, (), 0, covs)
        items = "; ".join(f"track {t.track_id} ({t.label}{', ' + t.colour if t.colour else ''}) {ctx.span(t.start_time, t.end_time)}"
                          for t in tracks[:20]) + (f" and {n - 20} more" if n > 20 else "")
        return FootageAnswer(question, f"{number_word(n).capitalize()} {noun}{ctx.where()}{tail}: {items}.", "list", n, q, evidence,
                             n, covs)
    if not n:
        return FootageAnswer(question, f"No — no {ctx.noun(2)} {'came' if q.arrival else 'seen'}{where}{tail}{_partial(ctx, covs)}.",
                             "no", False, q, (), 0, covs)
    return FootageAnswer(question, f"Yes — {number_word(n)} {noun} {verb}{where}{tail}: {label} {listing}.", "yes", True, q,
                         evidence, n, covs)


__all__ = ["FootageAnswer", "FootageEvidence", "ask_footage", "parse_question"]
