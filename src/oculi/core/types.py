"""The result types every task and interface speaks.

``Observation`` is what perception saw in one image (or one frame of a source at a
timestamp). It is produced once by the perceiver and consumed by caption, ask, search and
every later task; language is produced from it, never from pixels directly, so nothing is
stated that perception did not find.

All types are frozen dataclasses validated in ``__post_init__`` and serialise to plain JSON
through ``to_dict``; ``from_dict`` reads what ``to_dict`` wrote. The JSON shape is versioned by
``SCHEMA_VERSION``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Sequence

import numpy as np

SCHEMA_VERSION = "1.1"  # 1.1: DetectedObject.labels (the classifier on its own crop); answer kinds wearing/holding/eating


class ObjectSource(StrEnum):
    """Which perception part found an object."""

    DETECTOR = "detector"
    FACES = "faces"
    CLASSIFIER = "classifier"


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the original image: ``[x1, y1, x2, y2]``."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        vals = (self.x1, self.y1, self.x2, self.y2)
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"box coordinates must be finite, got {vals}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box must have x2>=x1 and y2>=y1, got {vals}")

    @classmethod
    def from_list(cls, xyxy: Sequence[float]) -> "Box":
        if len(xyxy) != 4:
            raise ValueError(f"a box needs 4 numbers, got {len(xyxy)}")
        return cls(*(float(v) for v in xyxy))

    def to_list(self) -> list[float]:
        return [_r(self.x1, 1), _r(self.y1, 1), _r(self.x2, 1), _r(self.y2, 1)]

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scale(self, sx: float, sy: float) -> "Box":
        """The box with x coordinates multiplied by ``sx`` and y by ``sy``."""
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def clip(self, width: int, height: int) -> "Box":
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )


@dataclass(frozen=True)
class DetectedObject:
    """One object found in an image.

    Attributes:
        label: Class name, lower case (COCO names for the built-in detector, e.g. ``"person"``).
        score: Confidence in [0, 1].
        box: Where it is.
        colour: Dominant colour name of the object's region, when measured.
        track_id: Identity across frames of one source (footage); ``None`` for a still image.
        source: Which perception part found it.
        labels: The classifier's labels for the object's own crop, best first (ImageNet
            classes for the built-in model: ``cat`` → ``Egyptian cat``; a person's crop may
            show a garment); empty when the object was not classified on its own.
    """

    label: str
    score: float
    box: Box
    colour: str | None = None
    track_id: int | None = None
    source: ObjectSource = ObjectSource.DETECTOR
    labels: tuple["Label", ...] = ()

    def __post_init__(self) -> None:
        if not self.label:
            raise ValueError("an object needs a label")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [0, 1], got {self.score}")
        object.__setattr__(self, "labels", tuple(self.labels))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "label": self.label,
            "score": _r(self.score),
            "box": self.box.to_list(),
            "colour": self.colour,
            "source": str(self.source),
        }
        if self.track_id is not None:
            d["track_id"] = self.track_id
        if self.labels:
            d["labels"] = [lab.to_dict() for lab in self.labels]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectedObject":
        return cls(
            label=d["label"],
            score=float(d["score"]),
            box=Box.from_list(d["box"]),
            colour=d.get("colour"),
            track_id=d.get("track_id"),
            source=ObjectSource(d.get("source", "detector")),
            labels=tuple(Label.from_dict(x) for x in d.get("labels", ())),
        )


@dataclass(frozen=True)
class Label:
    """An image-level label with a score (e.g. an ImageNet class)."""

    name: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": _r(self.score)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Label":
        return cls(name=d["name"], score=float(d["score"]))


@dataclass(frozen=True)
class Attribute:
    """What a trained classifier head (``oculi train classifier``) says about the image.

    Attributes:
        head: The trained model's name (``defect-type``).
        title: What it tells, in words (``defect type``).
        value: The class it chose (``crack``).
        score: Its probability in [0, 1].
    """

    head: str
    title: str
    value: str
    score: float

    def __post_init__(self) -> None:
        if not self.head or not self.value:
            raise ValueError("an attribute needs a head and a value")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [0, 1], got {self.score}")

    @property
    def phrase(self) -> str:
        """``"defect type: crack"``."""
        return f"{self.title}: {self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "title": self.title, "value": self.value, "score": _r(self.score)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Attribute":
        return cls(head=d["head"], title=d.get("title") or d["head"], value=d["value"], score=float(d["score"]))


@dataclass(frozen=True)
class TextLine:
    """One line of text read by OCR, with its box and recognition confidence."""

    text: str
    score: float
    box: Box

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": _r(self.score), "box": self.box.to_list()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextLine":
        return cls(text=d["text"], score=float(d["score"]), box=Box.from_list(d["box"]))


@dataclass(frozen=True)
class ColourShare:
    """A named colour and the fraction of the image (or region) it covers."""

    name: str
    fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fraction": _r(self.fraction, 3)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ColourShare":
        return cls(name=d["name"], fraction=float(d["fraction"]))


@dataclass(frozen=True)
class ImageInfo:
    """What is known about the image an observation came from.

    ``source_id``/``frame_index``/``timestamp`` place a frame inside footage; a still image
    leaves them ``None``.
    """

    width: int
    height: int
    path: str | None = None
    sha256: str | None = None
    format: str | None = None
    source_id: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    def to_dict(self) -> dict[str, Any]:
        d = {
            "width": self.width,
            "height": self.height,
            "path": self.path,
            "sha256": self.sha256,
            "format": self.format,
        }
        for k in ("source_id", "frame_index", "timestamp"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ImageInfo":
        keys = ("width", "height", "path", "sha256", "format", "source_id", "frame_index", "timestamp")
        return cls(**{k: d.get(k) for k in keys})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Observation:
    """Everything perception found in one image.

    Attributes:
        image: Size, path, hash (and frame placement for footage).
        objects: Detected objects (detector and face finder), highest score first.
        labels: Image-level labels from the classifier, highest score first.
        text: OCR lines in reading order.
        colours: Dominant colours of the whole image.
        embedding: Visual embedding (``[D]`` float32, L2-normalised) or ``None``.
        models: Which model produced each part, e.g. ``{"detector": "centernet-mbv3"}``.
        attributes: What trained classifier heads said (``defect type: crack``), one per head;
            in JSON only when there is one.
    """

    image: ImageInfo
    objects: tuple[DetectedObject, ...] = ()
    labels: tuple[Label, ...] = ()
    text: tuple[TextLine, ...] = ()
    colours: tuple[ColourShare, ...] = ()
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    models: dict[str, str] = field(default_factory=dict, compare=False)
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "text", tuple(self.text))
        object.__setattr__(self, "colours", tuple(self.colours))
        if self.embedding is not None:
            emb = np.asarray(self.embedding, dtype=np.float32)
            if emb.ndim != 1:
                raise ValueError(f"embedding must be 1-D, got shape {emb.shape}")
            object.__setattr__(self, "embedding", emb)

    # --- queries -------------------------------------------------------------------------
    def objects_of(self, label: str) -> tuple[DetectedObject, ...]:
        """Objects whose label equals ``label`` (case-insensitive)."""
        lab = label.lower()
        return tuple(o for o in self.objects if o.label == lab)

    def count(self, label: str) -> int:
        return len(self.objects_of(label))

    def counts(self) -> dict[str, int]:
        """Object counts by label, most frequent first."""
        out: dict[str, int] = {}
        for o in self.objects:
            out[o.label] = out.get(o.label, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def full_text(self) -> str:
        """All OCR lines joined in reading order."""
        return "\n".join(t.text for t in self.text)

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self, include_embedding: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "image": self.image.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
            "counts": self.counts(),
            "labels": [lab.to_dict() for lab in self.labels],
            "text": [t.to_dict() for t in self.text],
            "colours": [c.to_dict() for c in self.colours],
            "models": dict(self.models),
        }
        if self.attributes:
            d["attributes"] = [a.to_dict() for a in self.attributes]
        if include_embedding and self.embedding is not None:
            d["embedding"] = [float(x) for x in self.embedding]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Observation":
        emb = d.get("embedding")
        return cls(
            image=ImageInfo.from_dict(d["image"]),
            objects=tuple(DetectedObject.from_dict(o) for o in d.get("objects", [])),
            labels=tuple(Label.from_dict(x) for x in d.get("labels", [])),
            text=tuple(TextLine.from_dict(x) for x in d.get("text", [])),
            colours=tuple(ColourShare.from_dict(x) for x in d.get("colours", [])),
            embedding=np.asarray(emb, dtype=np.float32) if emb is not None else None,
            models=dict(d.get("models", {})),
            attributes=tuple(Attribute.from_dict(x) for x in d.get("attributes", [])),
        )


class AnswerKind(StrEnum):
    """What sort of question was answered."""

    COUNT = "count"
    PRESENCE = "presence"
    COLOUR = "colour"
    POSITION = "position"
    TEXT = "text"
    CATEGORY = "category"
    WEARING = "wearing"  # what a person wears
    HOLDING = "holding"  # what a person holds or carries
    EATING = "eating"  # what a person eats or drinks
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    """A piece of what was seen that supports an answer; points at a region or a text line."""

    kind: str  # "object" | "label" | "text" | "colour"
    description: str
    score: float | None = None
    box: Box | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "score": None if self.score is None else _r(self.score),
            "box": None if self.box is None else self.box.to_list(),
        }


@dataclass(frozen=True)
class Answer:
    """An answer to a question about an image.

    ``answerable`` is False when perception cannot support an answer; ``answer`` then says so
    in words ("I cannot tell ...") and ``confidence`` is 0.
    """

    question: str
    answer: str
    confidence: float
    kind: AnswerKind
    evidence: tuple[Evidence, ...] = ()
    answerable: bool = True
    model: str | None = None  # the id of the model that answered (in JSON when known)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema_version": SCHEMA_VERSION,
            "question": self.question,
            "answer": self.answer,
            "confidence": _r(self.confidence),
            "kind": str(self.kind),
            "answerable": self.answerable,
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.model is not None:
            d["model"] = self.model
        return d


@dataclass(frozen=True)
class Caption:
    """A grounded caption and the observation it was written from."""

    caption: str
    observation: Observation
    model: str | None = None  # the id of the model that wrote the caption (in JSON when known)

    def to_dict(self, include_embedding: bool = False) -> dict[str, Any]:
        d = {
            "schema_version": SCHEMA_VERSION,
            "caption": self.caption,
            "observation": self.observation.to_dict(include_embedding=include_embedding),
        }
        if self.model is not None:
            d["model"] = self.model
        return d


@dataclass(frozen=True)
class ClassScore:
    """Score of one user-given label in zero-shot classification."""

    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": _r(self.score)}


@dataclass(frozen=True)
class Classification:
    """Zero-shot classification over the caller's labels, best first."""

    scores: tuple[ClassScore, ...]

    @property
    def best(self) -> ClassScore:
        return self.scores[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "label": self.best.label,
            "scores": [s.to_dict() for s in self.scores],
        }


@dataclass(frozen=True)
class Detections:
    """The objects found in one image."""

    image: ImageInfo
    objects: tuple[DetectedObject, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "image": self.image.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
        }


@dataclass(frozen=True)
class Reading:
    """The text read in one image: lines in reading order and their joined text."""

    image: ImageInfo
    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return "\n".join(t.text for t in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "image": self.image.to_dict(),
            "text": self.text,
            "lines": [t.to_dict() for t in self.lines],
        }
