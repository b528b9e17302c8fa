"""Zones (named polygons) and the duration / time arguments of ``oculi watch``.

A zone is tested at an object's bottom centre (where a person stands), like Frigate's zones and
supervision's ``PolygonZone`` default anchor. Coordinates are video pixels, or fractions of the
frame when every number is at most 1 (``"0.5,0.5 1,0.5 1,1 0.5,1"`` is the lower-right quarter).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Sequence

import numpy as np

from oculi.core.errors import InputError

MAX_ZONE_POINTS = 64
MAX_ZONES = 32
ZONE_NAME_RE = re.compile(r"^[\w][\w .'-]{0,63}$")


@dataclass(frozen=True)
class Zone:
    """A named polygon in video pixels.

    Attributes:
        name: Shown in events (``"gate"``).
        points: ``[(x, y), ...]``, at least three, in video pixels.
        loiter_after: Seconds in the zone after which a stay is ``loitering`` (``None``: never).
    """

    name: str
    points: tuple[tuple[float, float], ...]
    loiter_after: float | None = None

    def __post_init__(self) -> None:
        if not ZONE_NAME_RE.match(self.name or ""):
            raise InputError(f"invalid zone name {self.name!r}: use 1-64 letters, digits, spaces, '.', '-' or '_'")
        if not 3 <= len(self.points) <= MAX_ZONE_POINTS:
            raise InputError(f"zone {self.name!r} needs 3 to {MAX_ZONE_POINTS} points, got {len(self.points)}")

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Which of the points ``xy`` (``[N, 2]``) lie inside (even-odd rule), ``[N]`` bool."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        x, y = xy[:, 0], xy[:, 1]
        inside = np.zeros(len(xy), dtype=bool)
        pts = self.points
        for i in range(len(pts)):
            x1, y1 = pts[i]
            x2, y2 = pts[(i + 1) % len(pts)]
            if y1 == y2:
                continue
            cross = ((y1 > y) != (y2 > y)) & (x < (x2 - x1) * (y - y1) / (y2 - y1) + x1)
            inside ^= cross
        return inside

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "points": [[round(x, 2), round(y, 2)] for x, y in self.points],
                "loiter_after": self.loiter_after}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Zone":
        return cls(d["name"], tuple((float(x), float(y)) for x, y in d["points"]), d.get("loiter_after"))


def parse_points(text: str) -> list[tuple[float, float]]:
    """``"x1,y1 x2,y2 ..."`` → points. Raises ``InputError`` naming the bad part."""
    pts = []
    for part in (text or "").replace(";", " ").split():
        xy = part.split(",")
        if len(xy) != 2:
            raise InputError(f"zone point {part!r} is not 'x,y' (a zone is written \"x1,y1 x2,y2 x3,y3 ...\")")
        try:
            x, y = float(xy[0]), float(xy[1])
        except ValueError:
            raise InputError(f"zone point {part!r} is not two numbers") from None
        if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
            raise InputError(f"zone point {part!r} must be two non-negative numbers")
        pts.append((x, y))
    if len(pts) < 3:
        raise InputError(f"a zone needs at least 3 points, got {len(pts)} in {text!r}")
    return pts


def build_zones(polygons: Sequence[str], names: Sequence[str], *, width: int, height: int,
                loiter_after: float | None) -> list[Zone]:
    """Zones from ``--zone``/``--zone-name`` pairs (names default to ``zone1``, ``zone2`` ...).

    Points that are all at most 1 are fractions of the frame; others are pixels and must lie
    within it (a small margin is allowed).
    """
    if len(polygons) > MAX_ZONES:
        raise InputError(f"at most {MAX_ZONES} zones")
    if len(names) > len(polygons):
        raise InputError("more --zone-name than --zone options")
    zones = []
    for i, text in enumerate(polygons):
        pts = parse_points(text)
        if all(x <= 1.0 and y <= 1.0 for x, y in pts):
            pts = [(x * width, y * height) for x, y in pts]
        elif any(x > width * 1.05 or y > height * 1.05 for x, y in pts):
            raise InputError(f"zone {text!r} reaches outside the {width}x{height} video")
        name = names[i] if i < len(names) else f"zone{i + 1}"
        zones.append(Zone(name.strip(), tuple(pts), loiter_after))
    if len({z.name for z in zones}) != len(zones):
        raise InputError("zone names must differ")
    return zones


_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s?)?\s*$")


def parse_duration(text: str | float | int, *, name: str = "duration") -> float:
    """Seconds from ``"30s"``, ``"2m"``, ``"1m30s"``, ``"1.5h"`` or a plain number of seconds.

    Example:
        >>> parse_duration("1m30s"), parse_duration("45"), parse_duration("2h")
        (90.0, 45.0, 7200.0)
    """
    if isinstance(text, (int, float)):
        v = float(text)
    else:
        m = _DURATION_RE.match(str(text).lower())
        if not m or not any(m.groups()):
            raise InputError(f"{name}: {text!r} is not a duration (e.g. 30s, 2m, 1m30s, 1.5h)")
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        v = h * 3600 + mi * 60 + s
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{name} must be a non-negative duration")
    return v


def resolve_tz(name: str | None) -> tzinfo:
    """A time zone by IANA name (``Europe/Paris``), ``UTC``, or the machine's local zone for None."""
    if not name or name.lower() == "local":
        tz = datetime.now().astimezone().tzinfo
        return tz or timezone.utc
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError for odd names
        raise InputError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris, or UTC)") from None


def parse_instant(text: str, tz: tzinfo, *, name: str = "time") -> float:
    """Epoch seconds from an ISO date/time; a time without an offset is in ``tz``.

    Example:
        >>> parse_instant("2026-11-27T08:00:00", timezone.utc)
        1795766400.0
    """
    s = (text or "").strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise InputError(f"{name}: {text!r} is not an ISO date/time (e.g. 2026-11-27T08:00:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()
