"""What an index run reports: progress while it works, and the report at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from oculi.core.types import SCHEMA_VERSION


@dataclass
class IndexProgress:
    """Passed to the ``progress`` callback: ``phase`` is ``scanning``, ``indexing`` or ``finishing``."""

    phase: str
    done: int = 0
    total: int = 0
    failed: int = 0
    current: str = ""
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class IndexReport:
    """What an index run did.

    Attributes:
        found: Image files seen by the walk (or items given to ``ingest_images``).
        added: New items perceived and stored.
        relinked: Files recorded against an item already stored (copies, renames, touched files).
        unchanged: Files skipped because size and modification time matched.
        changed: Files whose content changed since the last run (counted in ``added``/``relinked`` too).
        removed: File records forgotten because the file is gone (``prune``).
        missing: Files gone since the last run but kept because ``prune`` was off.
        items_removed: Items deleted because no file holds them any more.
        failed: ``[{"path", "error"}]`` files that could not be indexed.
        problems: ``[{"path", "problem"}]`` folders or links skipped by the walk.
        interrupted: The run was stopped before it finished (rerun to complete it).
        ids: ``{path: item id}`` of every file indexed in this run (new or relinked).
    """

    collection: str
    found: int = 0
    added: int = 0
    relinked: int = 0
    unchanged: int = 0
    changed: int = 0
    removed: int = 0
    missing: int = 0
    items_removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0
    perceive_s: float = 0.0
    items_total: int = 0
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.added / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "found": self.found,
            "added": self.added,
            "relinked": self.relinked,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "removed": self.removed,
            "missing": self.missing,
            "items_removed": self.items_removed,
            "items_total": self.items_total,
            "failed": self.failed,
            "problems": self.problems,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images_per_s, 2),
            "ids": self.ids,
        }


ProgressFn = Callable[[IndexProgress], None]
StopFn = Callable[[], bool]
