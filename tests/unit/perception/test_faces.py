"""Haar frontal faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import ModelAssetError
from oculi.core.types import ObjectSource
from oculi.perception.faces import MIN_NEIGHBOURS, HaarFaceDetector, face_score


def _photo(name: str) -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def test_face_score_is_monotonic_and_bounded():
    scores = [face_score(n) for n in range(MIN_NEIGHBOURS, 80)]
    assert scores[0] == pytest.approx(0.5)
    assert all(a <= b for a, b in zip(scores, scores[1:]))
    assert 0.5 <= min(scores) and max(scores) < 1.0
    assert face_score(30, has_eye=False) < face_score(30)


@pytest.fixture(scope="module")
def faces(settings: Settings) -> HaarFaceDetector:
    det = HaarFaceDetector(settings)
    try:
        det.load()
    except ModelAssetError as e:
        pytest.skip(f"Haar cascades missing: {e}")
    return det


def test_astronaut_has_one_face_upper_middle(faces: HaarFaceDetector):
    img = _photo("astronaut")
    found = faces.detect(img)
    assert len(found) == 1
    f = found[0]
    assert f.label == "face" and f.source is ObjectSource.FACES and 0.5 <= f.score <= 1.0
    cx, cy = f.box.center
    assert 0.25 * img.width < cx < 0.75 * img.width and cy < 0.5 * img.height
    assert 0.1 * img.width < f.box.width < 0.35 * img.width


def test_boxes_are_in_original_pixels_for_large_images(faces: HaarFaceDetector):
    img = _photo("astronaut")
    big = img.resize((2048, 2048))
    (small_face,) = faces.detect(img)
    (big_face,) = faces.detect(big)
    assert big_face.box.x1 == pytest.approx(small_face.box.x1 * 4, abs=24)
    assert big_face.box.width == pytest.approx(small_face.box.width * 4, rel=0.15)


@pytest.mark.parametrize("name", ["coins", "coffee", "chelsea", "rocket", "camera"])
def test_no_faces_on_photos_without_people(faces: HaarFaceDetector, name: str):
    # coins shows heads in profile that the face cascade alone takes for faces
    assert faces.detect(_photo(name)) == []


def test_blank_and_tiny_images(faces: HaarFaceDetector):
    assert faces.detect(Image.new("RGB", (640, 480), "white")) == []
    assert faces.detect(Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8))) == []
