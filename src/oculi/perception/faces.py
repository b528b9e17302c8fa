"""Frontal faces with OpenCV's bundled Haar cascades (no model download).

``HaarFaceDetector`` runs ``haarcascade_frontalface_default.xml`` on a greyscale copy of
the image reduced to at most ``WORK_PIXELS`` (480x360) pixels, keeping the aspect ratio
(scale factor 1.15, at least 4 neighbours, faces at least 24 px there, i.e. about 7 % of the
shorter side of a 4:3 photo). Every candidate is then verified with
``haarcascade_eye.xml`` on the upper 60 % of its box, upscaled to ``EYE_ROI_WIDTH`` pixels:
the face cascade alone fires on face-like patterns (on the scikit-image ``coins`` photo it
finds six "faces", the heads on the coins, with 4-12 neighbours) where the eye cascade finds
no eye; real faces down to ~26 px wide show at least one eye. A candidate is kept when an
eye is found, or when its neighbour count reaches ``STRONG_NEIGHBOURS`` (a strong frontal
detection with hidden eyes, e.g. sunglasses). On the scikit-image photos this leaves
exactly one face (astronaut, 26-31 neighbours) and none on coins, coffee, chelsea, rocket,
camera, clock, page, text, motorcycle, hubble, retina, brick, grass, gravel or moon.

Score heuristic (the cascade gives no probability): with ``n`` the number of merged raw
detections (OpenCV's "neighbours") for the box,
``score = 1 - 0.5 * exp(-(n - MIN_NEIGHBOURS) / 10)``: the weakest accepted detection scores
0.5, ``n = 15`` about 0.83, ``n = 30`` about 0.96; a face kept without an eye scores 0.8
times that.

Cost: 75-150 ms CPU (one thread) per 640x480 photo on this machine, most of it the face
cascade; the 640x480 working size with scale factor 1.1 cost 1.5-2x more for the same
results on the photos above. The perceiver runs it only when the detector found no person.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from oculi.config import Settings
from oculi.core.errors import BackendError, ModelAssetError
from oculi.core.types import Box, DetectedObject, ObjectSource

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
WORK_PIXELS = 480 * 360  # the cascade runs on a copy reduced to at most this many pixels
SCALE_FACTOR = 1.15
MIN_NEIGHBOURS = 4
STRONG_NEIGHBOURS = 20  # kept even when no eye is found
MIN_FACE_FRACTION = 0.04  # smallest face side, as a fraction of the shorter image side
MIN_FACE_PX = 24  # the cascade's window; it finds nothing smaller
EYE_ROI_WIDTH = 96


def face_score(neighbours: int, has_eye: bool = True) -> float:
    """The fixed heuristic score of a face from its neighbour count (see module docstring)."""
    s = 1.0 - 0.5 * math.exp(-max(0, neighbours - MIN_NEIGHBOURS) / 10.0)
    return float(s if has_eye else 0.8 * s)


class HaarFaceDetector:
    """Frontal face detector (Detector protocol): label ``"face"``, source ``FACES``.

    Example:
        >>> faces = HaarFaceDetector(Settings())  # doctest: +SKIP
        >>> [f.box.to_list() for f in faces.detect(img)]  # doctest: +SKIP
        [[177.0, 66.0, 272.0, 161.0]]
    """

    name = "haar-frontalface"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._face: Any = None
        self._eye: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load both cascades from OpenCV's data folder (idempotent).

        Raises:
            ModelAssetError: when the OpenCV build carries no Haar cascades.
        """
        if self._face is not None:
            return
        with self._lock:
            if self._face is not None:
                return
            import cv2

            base = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if base is None:
                raise ModelAssetError(
                    "this OpenCV build has no bundled Haar cascades; install opencv-python-headless>=4.9,<5"
                )
            face = cv2.CascadeClassifier(base + FACE_CASCADE)
            eye = cv2.CascadeClassifier(base + EYE_CASCADE)
            if face.empty() or eye.empty():
                raise ModelAssetError(f"cannot load the Haar cascades from {base}; reinstall opencv-python-headless")
            self._eye = eye
            self._face = face

    def _has_eye(self, grey: np.ndarray, x: int, y: int, w: int, h: int) -> bool:
        import cv2

        roi = grey[y : y + max(1, int(h * 0.6)), x : x + w]  # eyes lie in the upper part
        if roi.size == 0:
            return False
        scale = EYE_ROI_WIDTH / roi.shape[1]
        roi = cv2.resize(roi, (EYE_ROI_WIDTH, max(1, round(roi.shape[0] * scale))), interpolation=cv2.INTER_LINEAR)
        eyes = self._eye.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(12, 12))
        return len(eyes) > 0

    def detect(self, image: "Image.Image") -> list[DetectedObject]:
        """Find frontal faces.

        Args:
            image: An RGB image.

        Returns:
            ``DetectedObject``s labelled ``"face"`` (boxes in the image's pixels), highest
            score first.
        """
        import cv2

        self.load()
        grey = np.asarray(image.convert("L"), dtype=np.uint8)  # [H, W]
        H, W = grey.shape
        scale = min(1.0, math.sqrt(WORK_PIXELS / float(H * W)))
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA)
        min_side = max(MIN_FACE_PX, int(MIN_FACE_FRACTION * min(grey.shape)))
        if min(grey.shape) < min_side:
            return []
        try:
            boxes, neighbours = self._face.detectMultiScale2(
                grey, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBOURS, minSize=(min_side, min_side)
            )
        except cv2.error as exc:
            raise BackendError(f"the Haar face detector failed: {exc}") from exc
        out: list[DetectedObject] = []
        for (x, y, w, h), n in zip(np.asarray(boxes).reshape(-1, 4).tolist(), np.asarray(neighbours).ravel().tolist()):
            eye = self._has_eye(grey, x, y, w, h)
            if not eye and n < STRONG_NEIGHBOURS:
                log.debug("dropping face candidate %s (%d neighbours, no eye)", (x, y, w, h), n)
                continue
            box = Box(x / scale, y / scale, (x + w) / scale, (y + h) / scale).clip(W, H)
            out.append(DetectedObject("face", face_score(int(n), eye), box, source=ObjectSource.FACES))
        return sorted(out, key=lambda o: -o.score)
