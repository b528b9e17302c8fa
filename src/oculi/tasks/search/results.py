"""What a search and a duplicates run return (``to_dict`` is the versioned JSON of docs/SCHEMAS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from oculi.core.types import SCHEMA_VERSION


@dataclass
class SearchResult:
    id: str
    path: str
    score: float
    why: list[str]
    caption: str = ""
    name: str = ""
    matched: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        f = self.fields
        t = f.get("time")
        return {
            "id": self.id,
            "path": self.path,
            "name": self.name,
            "score": round(float(self.score), 4),
            "why": self.why,
            "matched": self.matched,
            "scores": {k: round(float(v), 4) for k, v in self.scores.items()},
            "caption": self.caption,
            "caption_model": f.get("caption_model"),
            "labels": list(f.get("labels") or []),
            "objects": list(f.get("objects") or []),
            "colours": list(f.get("colours") or []),
            "text": f.get("text") or "",
            "width": f.get("width"),
            "height": f.get("height"),
            "time": datetime.fromtimestamp(t, timezone.utc).isoformat() if isinstance(t, (int, float)) else None,
            "taken_at": f.get("taken_at"),
            "camera": f.get("camera"),
            "gps": [f["gps_lat"], f["gps_lon"]] if f.get("gps_lat") is not None and f.get("gps_lon") is not None else None,
            "kind": f.get("kind") or "image",
            "source_id": f.get("source_id"),
            "frame_index": f.get("frame_index"),
            "timestamp": f.get("timestamp"),
        }


@dataclass
class SearchResults:
    collection: str
    query: dict[str, Any]
    results: list[SearchResult]
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "query": self.query,
            "results": [r.to_dict() for r in self.results],
            "elapsed_ms": round(self.elapsed_ms, 1),
        }

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


@dataclass
class DuplicateGroup:
    """Items that look the same. ``exact``: identical bytes found at several paths."""

    items: list[dict[str, Any]]
    exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"exact": self.exact, "items": self.items}


@dataclass
class DuplicatesReport:
    collection: str
    threshold: float
    groups: list[DuplicateGroup]
    items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "threshold": self.threshold,
            "items": self.items,
            "groups": [g.to_dict() for g in self.groups],
        }
