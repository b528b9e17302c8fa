"""What inspection returns: ``InspectResult`` per image with its ``DefectRegion``s, and the
``InspectorCard`` of a fitted model (JSON schema ``oculi.inspect/1``, docs/SCHEMAS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA = "oculi.inspect/1"
FIT_SCHEMA = "oculi.inspect-fit/1"


@dataclass(frozen=True)
class DefectRegion:
    """One connected region where the anomaly map is above the threshold.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in image pixels (x2, y2 exclusive).
        area_fraction: Share of the image the region covers (0..1).
        peak: Highest anomaly-map value inside (0..1, the score's scale).
        position: Where its centre lies: ``upper left`` ... ``centre`` ... ``lower right``.
        description: Words from measured properties only: tone (``dark``/``bright``: the
            deviating pixels' mean grey level against the ring around the region;
            ``discoloured``; ``smooth``/``rough``: texture strength against the ring) and shape
            (``linear``: elongation >= 3; ``elongated``: >= 1.8; ``compact``), then ``anomaly``.
        contrast: Mean grey level (0-255) of the deviating pixels minus that of the ring around.
        elongation: Square root of the ratio of the principal second moments of those pixels.
    """

    box: tuple[int, int, int, int]
    area_fraction: float
    peak: float
    position: str
    description: str
    contrast: float = 0.0
    elongation: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "area_fraction": round(self.area_fraction, 5), "peak": round(self.peak, 4),
                "position": self.position, "description": self.description, "contrast": round(self.contrast, 1),
                "elongation": round(self.elongation, 2)}


@dataclass
class InspectResult:
    """One inspected image.

    Attributes:
        path: The image's path (or upload name).
        score: Anomaly score 0..1 (``raw / (raw + ref)``, ``ref`` the median held-out good score:
            a typical good part scores about 0.5).
        threshold: The model's pass/fail threshold on the same scale.
        passed: ``score < threshold``.
        regions: Above-threshold regions, highest peak first (empty when passed).
        heatmap: ``[H, W]`` float32 anomaly map 0..1 at the image's size.
        finding: One line made from the measured region properties.
        heatmap_path: The heat-map overlay PNG, when one was written.
        warnings: E.g. the image's size differs from the good images'.
        raw_score: The nearest-neighbour distance behind ``score``.
        part_class: With an inspector of several product types, the type the image was taken
            for (most of its patches' nearest good patches are of it); its threshold applies.
    """

    path: str
    score: float
    threshold: float
    passed: bool
    regions: list[DefectRegion]
    heatmap: np.ndarray
    finding: str
    heatmap_path: str | None = None
    warnings: list[str] = field(default_factory=list)
    raw_score: float = 0.0
    model: str = ""
    part_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "score": round(self.score, 4), "threshold": round(self.threshold, 4),
                "pass": self.passed, "regions": [r.to_dict() for r in self.regions], "heatmap": self.heatmap_path,
                "finding": self.finding, "warnings": list(self.warnings), "raw_score": round(self.raw_score, 4),
                "model": self.model, "class": self.part_class}


@dataclass(frozen=True)
class InspectorCard:
    """What a fitted inspector is, how it was calibrated, and what to watch out for."""

    name: str
    version: int
    path: str
    backbone: str
    input_size: int
    feature_dim: int
    n_good: int
    n_fit: int
    n_val: int
    val_source: str
    bank_size: int
    patches_seen: int
    coreset_ratio: float
    coreset_radius: float
    bank_full: bool
    percentile: float
    threshold: float
    threshold_raw: float
    score_ref: float
    val_scores: list[float]
    image_size: tuple[int, int]
    fit_seconds: float
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    whitening: float | None = None  # the bank's whitening regularisation; None: plain distances (older inspectors)
    classes: list[dict[str, Any]] | None = None  # several product types: per type name, n_fit, n_val, bank_size, score_ref,
    #                                              threshold(_raw), patch_ref, whitening, val_scores

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["image_size"] = list(self.image_size)
        return {"schema": FIT_SCHEMA, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, name: str, version: int, path: str) -> "InspectorCard":
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw.update(name=name, version=version, path=path, image_size=tuple(d["image_size"]))
        return cls(**kw)

    def threshold_statement(self) -> str:
        return (f"threshold {self.threshold:.3f} = the {self.percentile:g}th percentile of the scores of "
                f"{self.n_val} held-out good images ({self.val_source}; the larger of their empirical percentile "
                f"and the normal prediction bound); no defective image was used")

    def to_markdown(self) -> str:
        w, h = self.image_size
        lines = [f"# Inspector `{self.name}` v{self.version}", "",
                 "A PatchCore-style anomaly detector: it learnt what the good parts look like and flags what differs.", "",
                 f"- Backbone: {self.backbone} patch features ({self.feature_dim}-d, input {self.input_size}x{self.input_size})",
                 f"- Good images: {self.n_good} ({self.n_fit} in the memory bank, {self.n_val} held out for calibration)",
                 f"- Good images' size: {w}x{h}",
                 f"- Memory bank: {self.bank_size} patches kept of {self.patches_seen} seen "
                 f"(greedy k-center, seed ratio {self.coreset_ratio:g}, covering radius {self.coreset_radius:.3f}"
                 + (", bank cap reached" if self.bank_full else "") + ")",
                 "- Distance: " + (f"Euclidean between features whitened with the good patches' covariance (regularisation {self.whitening:g})"
                                   if self.whitening is not None else "Euclidean between the raw features"),
                 f"- Pass/fail: {self.threshold_statement()}",
                 f"- Score scale: raw nearest-neighbour distance / (raw + {self.score_ref:.4f}), the median held-out good score",
                 f"- Fit time: {self.fit_seconds:.1f} s"]
        if self.classes:
            lines += ["", "## Product types", "",
                      "A bank, whitening and threshold per type; an image is measured against every type and scored as the one "
                      "whose good patches explain it best (lowest median patch distance in that type's own units).", ""]
            lines += [f"- {c['name']}: {c['n_fit']} good images in the bank ({c['bank_size']} patches), threshold {c['threshold']:.3f} "
                      f"from {c['n_val']} held-out images" for c in self.classes]
        if self.warnings:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in self.warnings]
        if self.skipped:
            lines += ["", "## Images skipped", ""] + [f"- {s}" for s in self.skipped]
        return "\n".join(lines) + "\n"
