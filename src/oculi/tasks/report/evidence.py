"""Evidence references: what every statement of a report points at.

A reference names an image of the report (``img1``...) or a footage frame (source, time,
keyframe item), optionally a region of it (a box in the image's pixels) or one OCR line, or a
record (``rec3``). Findings and cross-checks carry a tuple of them, so a reader (or a program
reading the JSON form) can go from any sentence to the pixels or the words it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oculi.core.types import Box


class EvidenceKind(StrEnum):
    OBJECT = "object"  # a detected object's box
    TEXT = "text"  # an OCR line
    LABEL = "label"  # an image-level classifier label
    ANOMALY = "anomaly"  # an inspection defect region (or the whole-image anomaly score)
    EVENT = "event"  # a footage event (a frame of a source at a time)
    RECORD = "record"  # a line of the records file


class Severity(StrEnum):
    """How much a finding needs a person: ``high`` act now, ``medium`` look, ``low`` note, ``none``/``info``."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"
    NONE = "none"


SEVERITY_ORDER = {s: i for i, s in enumerate((Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO, Severity.NONE))}


@dataclass(frozen=True)
class EvidenceRef:
    """One pointer into the evidence.

    Attributes:
        kind: What sort of evidence.
        image: Report image id (``img1``) for image evidence; ``None`` otherwise.
        record: Record id (``rec1``) for record evidence.
        region: Box in the image's pixels (objects, text lines, anomaly regions, event boxes).
        text_line: 0-based index of the OCR line in the image's observation.
        frame: Footage placement: ``{"source_id", "time", "keyframe"}``.
        description: What it is, in a few words (``cat 0.93``, ``"EXIT"``).
        score: The perception score, when there is one.
    """

    kind: EvidenceKind
    description: str
    image: str | None = None
    record: str | None = None
    region: Box | None = None
    text_line: int | None = None
    frame: dict[str, Any] | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "description": self.description, "image": self.image, "record": self.record,
                "region": None if self.region is None else self.region.to_list(), "text_line": self.text_line,
                "frame": self.frame, "score": None if self.score is None else round(float(self.score), 4)}


@dataclass(frozen=True)
class Finding:
    """One thing seen in one image, with its evidence and severity."""

    id: str
    image: str
    kind: EvidenceKind
    text: str
    severity: Severity
    evidence: tuple[EvidenceRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "image": self.image, "kind": self.kind.value, "text": self.text,
                "severity": self.severity.value, "evidence": [e.to_dict() for e in self.evidence]}


class CheckStatus(StrEnum):
    CONSISTENT = "consistent"  # the images bear the record out
    CONFLICT = "conflict"  # the images (or footage) contradict the record
    UNVERIFIABLE = "unverifiable"  # nothing the model can perceive decides it


@dataclass(frozen=True)
class CrossCheck:
    """A record's claim set against what the images or footage show."""

    record: str
    status: CheckStatus
    text: str
    claim: str
    images: tuple[str, ...] = ()
    evidence: tuple[EvidenceRef, ...] = ()
    severity: Severity = Severity.INFO
    counts: tuple[int, ...] = ()  # counts the text states that no single piece of evidence holds (events in all)

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "status": self.status.value, "claim": self.claim, "text": self.text,
                "images": list(self.images), "severity": self.severity.value,
                "evidence": [e.to_dict() for e in self.evidence]}
