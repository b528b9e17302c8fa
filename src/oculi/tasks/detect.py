"""Detect: objects with label, score, box and colour."""

from __future__ import annotations

from oculi.backends.base import Detector
from oculi.core.types import Detections
from oculi.imageio import LoadedImage


def detect(loaded: LoadedImage, detector: Detector, *, min_score: float = 0.0) -> Detections:
    objs = [o for o in detector.detect(loaded.image) if o.score >= min_score]
    return Detections(loaded.info, tuple(sorted(objs, key=lambda o: -o.score)))
