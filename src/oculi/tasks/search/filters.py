"""The ``--where`` filter language, capture-time bounds and path globs → one store ``Filter``."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from typing import Any, Sequence

from oculi.core.errors import InputError
from oculi.core.labels import COLOUR_WORDS
from oculi.language.vocab import coco_for_word, imagenet_for_word
from oculi.store.base import Condition, Filter, Op

# ``--where`` keys → (store field, operator for "=")
_WHERE_KEYS: dict[str, tuple[str, Op]] = {
    "object": ("object_terms", Op.HAS), "objects": ("object_terms", Op.HAS),
    "label": ("labels", Op.HAS), "labels": ("labels", Op.HAS),
    "colour": ("colours", Op.HAS), "color": ("colours", Op.HAS), "colours": ("colours", Op.HAS),
    "colors": ("colours", Op.HAS),
    "text": ("text", Op.CONTAINS), "caption": ("caption", Op.CONTAINS),
    "path": ("path", Op.EQ), "name": ("name", Op.EQ), "format": ("format", Op.EQ),
    "camera": ("camera", Op.CONTAINS), "kind": ("kind", Op.EQ), "id": ("id", Op.EQ), "sha256": ("sha256", Op.EQ),
    "source": ("source_id", Op.EQ), "source_id": ("source_id", Op.EQ),
    "frame": ("frame_index", Op.EQ), "frame_index": ("frame_index", Op.EQ),
    "timestamp": ("timestamp", Op.EQ), "width": ("width", Op.EQ), "height": ("height", Op.EQ),
    "size": ("file_size", Op.EQ), "file_size": ("file_size", Op.EQ),
    "time": ("time", Op.EQ), "date": ("time", Op.EQ), "taken": ("taken_at", Op.EQ), "taken_at": ("taken_at", Op.EQ),
    "lat": ("gps_lat", Op.EQ), "lon": ("gps_lon", Op.EQ), "track": ("track_ids", Op.HAS),
}
_WHERE_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|!=|=|>|<|~)\s*(.*?)\s*$", re.S)


def parse_time(value: Any, *, name: str = "time") -> float:
    """Epoch seconds from a date/datetime/number/ISO string (``2021``, ``2021-06``, ``2021-06-01``,
    ``2021-06-01T12:00``); naive values are UTC. A bare date means its start (``--before`` is
    exclusive there)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise InputError(f"{name}: not a finite time")
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    s = str(value).strip()
    if not s:
        raise InputError(f"{name}: empty date")
    try:
        if re.fullmatch(r"\d{4}", s):
            dt = datetime(int(s), 1, 1)
        elif re.fullmatch(r"\d{4}-\d{2}", s):
            y, m = s.split("-")
            dt = datetime(int(y), int(m), 1)
        else:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise InputError(f"{name}: cannot read {s!r} as a date; use e.g. 2021-06-01 or 2021-06-01T14:30") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _norm_object(v: str) -> str:
    v = v.strip().lower()
    parts = v.split()
    colour = None
    if len(parts) > 1 and parts[0] in COLOUR_WORDS:
        colour, v = COLOUR_WORDS[parts[0]], " ".join(parts[1:])
    coco = coco_for_word(v) or v
    return f"{colour} {coco}" if colour else coco


def parse_where(exprs: str | Sequence[str] | None) -> list[Condition]:
    """Parse ``--where`` expressions: ``key OP value`` joined by ``,`` or `` and ``.

    Keys: object, label, colour, text, caption, path, name, format, camera, kind, id, source,
    frame, timestamp, width, height, size, time/date, taken, lat, lon, track. Operators: ``=``,
    ``!=``, ``<``, ``<=``, ``>``, ``>=``, and ``~`` (contains; a glob for path/name).

    Example:
        >>> [(c.field, c.op.value, c.value) for c in parse_where("object=people, width>=640")]
        [('object_terms', 'has', 'person'), ('width', '>=', 640.0)]
    """
    if exprs is None:
        return []
    items = [exprs] if isinstance(exprs, str) else list(exprs)
    parts: list[str] = []
    for e in items:
        parts.extend(p for p in re.split(r"\s*,\s*|\s+and\s+", e.strip(), flags=re.I) if p.strip())
    out: list[Condition] = []
    for p in parts:
        m = _WHERE_RE.match(p)
        if not m:
            raise InputError(f"cannot read --where {p!r}; use key=value, e.g. object=person or width>=640")
        key, op, raw = m.group(1).lower(), m.group(2), m.group(3).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        if key not in _WHERE_KEYS:
            raise InputError(f"unknown --where key {key!r}; known: {', '.join(sorted(_WHERE_KEYS))}")
        if raw == "":
            raise InputError(f"--where {key}: the value is empty")
        fld, eq_op = _WHERE_KEYS[key]
        value: Any = raw
        if fld == "object_terms":
            value = _norm_object(raw)
        elif fld == "labels":
            value = imagenet_for_word(raw) or raw.strip().lower()
        elif fld == "colours":
            value = COLOUR_WORDS.get(raw.lower(), raw.lower())
        elif fld in ("time", "taken_at"):
            value = parse_time(raw, name=key)
        if op == "=":
            cop = eq_op
        elif op == "~":
            cop = Op.GLOB if fld in ("path", "name") else Op.CONTAINS
        else:
            cop = Op(op)
        if fld in ("object_terms", "labels", "colours", "track_ids") and cop is not Op.HAS:
            raise InputError(f"--where {key} supports only '=' (the item has it)")
        out.append(Condition(fld, cop, value))
    return out


def build_filter(
    where: str | Sequence[str] | Filter | None = None,
    *,
    after: Any = None,
    before: Any = None,
    path_glob: str | None = None,
) -> Filter:
    """One ``Filter`` from ``--where``, ``--after`` (inclusive), ``--before`` (exclusive) and
    ``--path-glob`` (a relative glob matches anywhere: ``holiday/*.jpg`` → ``*/holiday/*.jpg``)."""
    conds: list[Condition] = list(where.conditions) if isinstance(where, Filter) else parse_where(where)
    if after is not None:
        conds.append(Condition("time", Op.GE, parse_time(after, name="--after")))
    if before is not None:
        conds.append(Condition("time", Op.LT, parse_time(before, name="--before")))
    if after is not None and before is not None and conds[-2].value >= conds[-1].value:  # type: ignore[operator]
        raise InputError("--after must be earlier than --before")
    if path_glob is not None:
        g = path_glob.strip()
        if not g:
            raise InputError("--path-glob is empty")
        if not g.startswith(("/", "*")):
            g = "*/" + g
        conds.append(Condition("path", Op.GLOB, g))
    return Filter(tuple(conds))
