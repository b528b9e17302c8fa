"""A question about footage in words → a structured ``FootageQuery``, by rules.

What is read (each by a small rule, so a question no rule understands says so rather than
guessing): the kind of answer (yes/no, how many, when, how long, a list), the place (a camera
or a zone, matched against the names the store knows), the time range (today, yesterday,
this morning, before 9 am, after 5 pm, between 9 and 10, since 8, in the last 2 hours, on
2026-11-27 — relative to a reference time ``now``, in a time zone), the object class (people,
cars, vehicles, dogs ... via the COCO vocabulary), a colour ("the person in red"), the event
type (loitering, crowding, leaving, arriving, entering, staying) and thresholds ("for more than
5 minutes", "more than 3 people").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Sequence

from oculi.core.errors import InputError
from oculi.core.labels import COLOUR_WORDS
from oculi.language.vocab import coco_for_word
from oculi.store.records import EventType
from oculi.tasks.footage.tracking import VEHICLES

MAX_QUESTION_CHARS = 1000



class Intent(StrEnum):
    YES_NO = "yes_no"  # was anyone loitering ...?
    COUNT = "count"  # how many people came ...?
    WHEN = "when"  # when did the person in red leave?
    DURATION = "duration"  # how long did ... stay?
    LIST = "list"  # show me everyone ...


@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` in epoch seconds (``None``: open), and how the question said it."""

    start: float | None = None
    end: float | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        from oculi.store.records import iso_time

        return {"start": iso_time(self.start), "end": iso_time(self.end), "start_ts": self.start, "end_ts": self.end,
                "text": self.text}


@dataclass(frozen=True)
class FootageQuery:
    """What a footage question asks, structured.

    Attributes:
        intent: The kind of answer wanted.
        place: The place words of the question ("main gate"), resolved to ``camera`` and/or
            ``zone`` when a stored name matches.
        time: The time range (open when the question gives none).
        labels: Object classes ("person"; "car", "truck" ... for vehicles).
        colour: A colour name, for "the person in red".
        event: The event type asked about, if any.
        min_seconds / min_count: Thresholds ("for more than 5 minutes", "more than 3 people").
        arrival: The question counts arrivals ("came", "arrived"): objects first seen in the range.
    """

    intent: Intent
    place: str | None = None
    camera: str | None = None
    zone: str | None = None
    time: TimeRange = field(default_factory=TimeRange)
    labels: tuple[str, ...] = ()
    colour: str | None = None
    event: EventType | None = None
    min_seconds: float | None = None
    min_count: int | None = None
    arrival: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent.value, "place": self.place, "camera": self.camera, "zone": self.zone,
            "time": self.time.to_dict(), "labels": list(self.labels), "colour": self.colour,
            "event": self.event.value if self.event else None, "min_seconds": self.min_seconds,
            "min_count": self.min_count, "arrival": self.arrival,
        }


_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_EVENT_WORDS: list[tuple[re.Pattern[str], EventType]] = [
    (re.compile(r"\bloiter\w*|\blinger\w*|\bhang(?:ing|s|ed)? (?:around|about)\b|\bhung around\b"), EventType.LOITERING),
    (re.compile(r"\bcrowd\w*|\bgather\w*|\bgroup of\b"), EventType.CROWDING),
    (re.compile(r"\bleav\w*|\bleft\b|\bexit\w*|\bdepart\w*|\bgo(?:ne)? away\b|\bwent away\b"), EventType.LEAVE),
    (re.compile(r"\benter\w*|\bwent in(?:to)?\b|\bgo(?:es)? in(?:to)?\b"), EventType.ZONE_ENTER),
    (re.compile(r"\bstay\w*|\bdwell\w*|\bspen[dt]\w*|\bwait\w*"), EventType.DWELL),
    (re.compile(r"\barriv\w*|\bappear\w*|\bcame\b|\bcome\b|\bcoming\b|\bshow(?:ed)? up\b|\bturn(?:ed)? up\b"), EventType.APPEAR),
]
_PERSON_WORDS = {"anyone", "anybody", "someone", "somebody", "everyone", "everybody", "people", "person", "persons",
                 "visitor", "visitors", "intruder", "intruders", "who", "man", "men", "woman", "women", "pedestrian",
                 "pedestrians", "guy", "guys", "child", "children", "kid", "kids"}
_VEHICLE_WORDS = {"vehicle", "vehicles", "traffic"}
_NUM_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
              "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "a": 1, "an": 1}
_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
                 "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}
_PLACE_RE = re.compile(r"\b(?:at|near|by|outside|around|in front of|next to|on|from|in|through|to|into)\s+(?:the\s+)?"
                       r"([a-z0-9][a-z0-9 '\-]*?)(?=\s+(?:today|yesterday|this|last|tonight|before|after|between|since|"
                       r"from|during|on|at|in|for|when|while|and|or|who|that|which|wearing|with)\b|[?.!,]|$)")
_CLOCK = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.|o'clock|h)?"


def _clock(h: str, m: str | None, ampm: str | None, *, pm_hint: bool = False) -> dtime:
    hour, minute = int(h), int(m or 0)
    a = (ampm or "").replace(".", "")
    if a == "pm" and hour < 12:
        hour += 12
    elif a == "am" and hour == 12:
        hour = 0
    elif not a and pm_hint and hour < 12:
        hour += 12
    if not (0 <= hour <= 24 and 0 <= minute < 60):
        raise InputError(f"{h}:{m or '00'} is not a time of day")
    return dtime(23, 59, 59) if hour == 24 else dtime(hour, minute)


def _at(day: date, t: dtime, tz: tzinfo) -> float:
    return datetime.combine(day, t, tzinfo=tz).timestamp()


def parse_time(q: str, now: datetime, tz: tzinfo) -> TimeRange:
    """The time range a question names (open when it names none)."""
    now = now.astimezone(tz)
    today = now.date()
    day: date | None = None
    day_text = ""
    m = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", q)
    if m:
        day, day_text = date(int(m[1]), int(m[2]), int(m[3])), f"on {m[0]}"
    elif re.search(r"\byesterday\b", q):
        day, day_text = today - timedelta(days=1), "yesterday"
    elif re.search(r"\b(today|this morning|this afternoon|this evening|tonight)\b", q):
        day, day_text = today, "today"
    m = re.search(r"\b(?:in|during|over) the (?:last|past) (\d+|an?|one|two|three|few)?\s*(minute|hour|day)s?\b", q)
    if m:
        n = {"an": 1, "a": 1, "one": 1, "two": 2, "three": 3, "few": 3}.get(m[1] or "a", None)
        n = n if n is not None else int(m[1])
        unit = {"minute": 60, "hour": 3600, "day": 86400}[m[2]]
        return TimeRange(now.timestamp() - n * unit, now.timestamp(), m[0])
    base = day or today
    pm_hint = bool(re.search(r"\b(afternoon|evening|tonight)\b", q))
    m = re.search(r"\bbetween " + _CLOCK + r" and " + _CLOCK, q)
    if m:
        t1 = _clock(m[1], m[2], m[3] or m[6], pm_hint=pm_hint)
        t2 = _clock(m[4], m[5], m[6], pm_hint=pm_hint)
        if t2 <= t1 and not m[6]:
            t2 = _clock(m[4], m[5], None, pm_hint=True)
        text = (day_text + " " if day_text else "") + m[0]
        return TimeRange(_at(base, t1, tz), _at(base, t2, tz), text.strip())
    m = re.search(r"\b(before|until|till|after|since|from) " + _CLOCK, q)
    if m and (m[4] or m[3] or int(m[2]) <= 24):
        t = _clock(m[2], m[3], m[4], pm_hint=pm_hint)
        text = (day_text + " " if day_text else "") + m[0]
        if m[1] in ("before", "until", "till"):
            return TimeRange(_at(base, dtime(0), tz), _at(base, t, tz), text.strip())
        end = (_at(base + timedelta(days=1), dtime(0), tz) if base != today or m[1] == "after"
               else now.timestamp())
        return TimeRange(_at(base, t, tz), max(end, _at(base, t, tz) + 1), text.strip())
    m = re.search(r"\bat (\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.|o'clock)\b", q)
    if m:
        t = _clock(m[1], m[2], m[3], pm_hint=pm_hint)
        start = _at(base, t, tz)
        return TimeRange(start, start + 3600, ((day_text + " ") if day_text else "") + m[0])
    for word, (h1, h2) in (("morning", (6, 12)), ("afternoon", (12, 18)), ("evening", (18, 24)), ("tonight", (18, 24)),
                           ("night", (0, 6))):
        if re.search(r"\b" + word + r"\b", q):
            end = _at(base + timedelta(days=1), dtime(0), tz) if h2 == 24 else _at(base, dtime(h2), tz)
            said = ("this " + word if day == today and word != "tonight" and re.search(r"\bthis " + word, q)
                    else (day_text + " " + word).strip() if day_text and day_text != "today" else word)
            return TimeRange(_at(base, dtime(h1), tz), end, said)
    if day is not None:
        return TimeRange(_at(day, dtime(0), tz), _at(day + timedelta(days=1), dtime(0), tz), day_text)
    return TimeRange()


def _labels(words: list[str]) -> tuple[str, ...]:
    for w in words:
        if w in _PERSON_WORDS:
            return ("person",)
        if w in _VEHICLE_WORDS:
            return tuple(sorted(VEHICLES))
    for w in words:
        if w in ("in", "at", "on", "a", "it", "is", "was", "the", "to", "tv"):
            continue
        c = coco_for_word(w)
        if c is not None:
            return (c,)
    return ()


def _threshold_seconds(q: str) -> float | None:
    m = re.search(r"\b(?:for )?(?:more than|over|longer than|at least|>)\s*(\d+(?:\.\d+)?|\w+)\s*(seconds?|secs?|minutes?|mins?|"
                  r"hours?|hrs?|s|m|h)\b", q)
    if not m:
        return None
    n = _NUM_WORDS.get(m[1]) if not m[1][0].isdigit() else float(m[1])
    return None if n is None else float(n) * _UNIT_SECONDS[m[2]]


def _threshold_count(q: str) -> int | None:
    m = re.search(r"\b(?:more than|over|at least)\s*(\d+|\w+)\s+(?:people|persons|visitors|of them)\b", q)
    if not m:
        return None
    n = int(m[1]) if m[1].isdigit() else _NUM_WORDS.get(m[1])
    if n is None:
        return None
    return n + 1 if m[0].startswith(("more than", "over")) else n


def _match_name(phrase: str, names: Sequence[str]) -> str | None:
    p = phrase.strip().lower()
    if not p:
        return None
    exact = [n for n in names if n.lower() == p]
    if exact:
        return exact[0]
    within = [n for n in names if n.lower() in p or p in n.lower()]
    if len(within) == 1:
        return within[0]
    pw = set(p.split())
    scored = sorted(((len(pw & set(n.lower().split())), n) for n in names), reverse=True)
    if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        return scored[0][1]
    return None


def parse_question(question: str, *, now: datetime, tz: tzinfo, cameras: Sequence[str] = (),
                   zones: Sequence[str] = ()) -> FootageQuery:
    """Turn a footage question into a ``FootageQuery``.

    Args:
        question: The question in words.
        now: The reference time ("today" is ``now``'s date in ``tz``).
        tz: The time zone clock times are in.
        cameras / zones: Known names, to resolve the place the question names.

    Raises:
        InputError: an empty or over-long question.

    Example:
        >>> from datetime import timezone
        >>> q = parse_question("Was anyone loitering at the main gate today?",
        ...                    now=datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc), tz=timezone.utc,
        ...                    cameras=["main gate"])
        >>> q.intent.value, q.camera, q.labels, q.event.value, q.time.text
        ('yes_no', 'main gate', ('person',), 'loitering', 'today')
    """
    text = (question or "").strip()
    if not text:
        raise InputError("ask a question about the footage, e.g. \"Was anyone loitering at the main gate today?\"")
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(f"questions are at most {MAX_QUESTION_CHARS} characters")
    q = " ".join(text.lower().replace("’", "'").split())
    words = _WORD_RE.findall(q)
    if re.match(r"^(how many|how much|count|number of)\b", q):
        intent = Intent.COUNT
    elif re.match(r"^how long\b", q):
        intent = Intent.DURATION
    elif re.match(r"^(when|what time|at what time)\b", q):
        intent = Intent.WHEN
    elif re.match(r"^(show|list|find|give|display|who|which)\b", q):
        intent = Intent.LIST
    else:
        intent = Intent.YES_NO
    event = next((et for rx, et in _EVENT_WORDS if rx.search(q)), None)
    arrival = event is EventType.APPEAR
    time_range = parse_time(q, now, tz)
    place = camera = zone = None
    for m in _PLACE_RE.finditer(q):
        phrase = m[1].strip()
        if not phrase or phrase.split()[0] in COLOUR_WORDS or re.fullmatch(
                r"[\d: ]+(am|pm)?|(the )?(morning|afternoon|evening|night|day|footage|video)", phrase):
            continue
        exact_zone = next((z for z in zones if z.lower() == phrase), None)
        cam = None if exact_zone else _match_name(phrase, cameras)
        zn = exact_zone or (None if cam else _match_name(phrase, zones))
        if cam or zn:
            place, camera, zone = phrase, cam, zn
            break
        if place is None and not any(c.isdigit() for c in phrase):
            place = phrase
    colour = None
    m = re.search(r"\b(?:in|wearing|dressed in)\s+(?:a\s+)?(" + "|".join(COLOUR_WORDS) + r")\b", q) or \
        re.search(r"\b(" + "|".join(COLOUR_WORDS) + r")\s+(?:car|truck|bus|van|vehicle|bike|jacket|coat|shirt|top|dress)\b", q)
    if m:
        colour = COLOUR_WORDS[m[1]]
    labels = _labels([w for w in words if w not in COLOUR_WORDS])
    if not labels and intent in (Intent.COUNT, Intent.LIST, Intent.YES_NO) and event in (EventType.LOITERING, EventType.CROWDING,
                                                                                           EventType.APPEAR, EventType.DWELL):
        labels = ("person",)
    if event is EventType.ZONE_ENTER and zone is None and camera is not None:
        event, arrival = EventType.APPEAR, True  # "went in at the gate camera" is an arrival
    return FootageQuery(intent=intent, place=place, camera=camera, zone=zone, time=time_range, labels=labels,
                        colour=colour, event=event, min_seconds=_threshold_seconds(q), min_count=_threshold_count(q),
                        arrival=arrival)
