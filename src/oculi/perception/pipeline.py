"""The built-in perceiver: every perception part run once on an image, fused into an Observation.

Parts (each loads lazily, once per process, and is shared by every task):
- ``EfficientNetClassifier``: ImageNet labels and the 1280-d visual embedding (one pass);
- ``CenterNetDetector``: COCO objects with boxes;
- ``HaarFaceDetector``: faces (only where the detector found no person, to save time);
- ``RapidOCRReader``: text lines;
- ``colour``: dominant colours of the image and of each object's own pixels;
- ``crops``: the classifier on each (large enough) object's own crop, for fine names.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Sequence

from PIL import Image

from oculi.config import Settings
from oculi.core.types import DetectedObject, ImageInfo, Observation
from oculi.perception import colour
from oculi.perception.crops import label_objects
from oculi.perception.fusion import reconcile

log = logging.getLogger(__name__)

TOP_K_LABELS = 5


class BuiltinPerceiver:
    """Runs the built-in perception parts on images and returns ``Observation``s.

    Example:
        >>> p = BuiltinPerceiver(Settings())  # doctest: +SKIP
        >>> obs = p.observe(img, info)  # doctest: +SKIP
        >>> obs.counts()  # doctest: +SKIP
        {'person': 1}
    """

    def __init__(self, settings: Settings) -> None:
        from oculi.perception.classifier import EfficientNetClassifier
        from oculi.perception.detector import CenterNetDetector
        from oculi.perception.faces import HaarFaceDetector
        from oculi.perception.ocr import RapidOCRReader

        self.settings = settings
        self.classifier = EfficientNetClassifier(settings)
        self.detector = CenterNetDetector(settings)
        self.faces = HaarFaceDetector(settings)
        self.reader = RapidOCRReader(settings)
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def models(self) -> dict[str, str]:
        return {
            "classifier": self.classifier.name,
            "detector": self.detector.name,
            "faces": self.faces.name,
            "ocr": self.reader.name,
        }

    def load(self) -> None:
        """Load every part (idempotent). Raises ``ModelAssetError`` naming the fix."""
        with self._lock:
            if self._loaded:
                return
            self.classifier.load()
            self.detector.load()
            self.faces.load()
            if self.settings.ocr:
                self.reader.load()
            self._loaded = True

    def _objects(self, image: Image.Image, dets: list[DetectedObject]) -> list[DetectedObject]:
        objs = [replace(o, colour=colour.region_colour(image, o.box)) for o in dets]
        if not any(o.label == "person" for o in objs):
            objs += [replace(f, colour=None) for f in self.faces.detect(image)]
        return objs

    def observe(self, image: Image.Image, info: ImageInfo, *, ocr: bool = True) -> Observation:
        """Perceive one image."""
        return self.observe_batch([image], [info], ocr=ocr)[0]

    def observe_batch(
        self, images: Sequence[Image.Image], infos: Sequence[ImageInfo], *, ocr: bool = True
    ) -> list[Observation]:
        """Perceive several images, batching the classifier and detector passes."""
        self.load()
        labels, emb = self.classifier.classify_and_embed(images, top_k=TOP_K_LABELS)  # emb: [N, 1280]
        dets = self.detector.detect_batch(images)
        objects = [self._objects(img, d) for img, d in zip(images, dets)]
        objects = label_objects(images, objects, self.classifier, labels, max_crops=self.settings.object_crops)
        out = []
        for i, (img, info) in enumerate(zip(images, infos)):
            objs = reconcile(objects[i], labels[i], info.width, info.height)
            text = self.reader.read(img) if (ocr and self.settings.ocr) else []
            out.append(
                Observation(
                    image=info,
                    objects=tuple(objs),
                    labels=tuple(labels[i]),
                    text=tuple(text),
                    colours=tuple(colour.dominant_colours(img, k=3)),
                    embedding=emb[i],
                    models=self.models,
                )
            )
        return out
