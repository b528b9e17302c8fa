"""Colour naming without a model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from oculi.core.types import Box
from oculi.perception.colour import COLOUR_NAMES, dominant_colours, name_pixels, region_colour


def _solid(rgb: tuple[int, int, int], w: int = 120, h: int = 80) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (h, w, 1))


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((220, 20, 30), "red"),
        ((30, 60, 220), "blue"),
        ((250, 250, 250), "white"),
        ((10, 10, 10), "black"),
        ((128, 128, 128), "grey"),
        ((30, 160, 40), "green"),
        ((250, 240, 30), "yellow"),
        ((255, 140, 0), "orange"),
        ((139, 69, 19), "brown"),
        ((128, 0, 128), "purple"),
        ((255, 105, 180), "pink"),
    ],
)
def test_solid_images(rgb: tuple[int, int, int], name: str):
    arr = _solid(rgb)
    for img in (arr, Image.fromarray(arr)):
        shares = dominant_colours(img)
        assert shares[0].name == name and shares[0].fraction == pytest.approx(1.0)
        assert len(shares) == 1


def test_name_pixels_covers_every_name():
    rgb = np.array([[220, 20, 30], [255, 140, 0], [250, 240, 30], [30, 160, 40], [30, 60, 220], [128, 0, 128],
                    [255, 192, 203], [139, 69, 19], [0, 0, 0], [255, 255, 255], [128, 128, 128]], dtype=np.uint8)  # fmt: skip
    assert [COLOUR_NAMES[i] for i in name_pixels(rgb)] == list(COLOUR_NAMES)


def test_seventy_percent_green_thirty_red():
    arr = _solid((30, 160, 40), w=100, h=100)
    arr[:, 70:] = (220, 20, 30)
    shares = dominant_colours(arr, k=3)
    assert [s.name for s in shares[:2]] == ["green", "red"]
    assert shares[0].fraction == pytest.approx(0.7, abs=0.03)
    assert shares[1].fraction == pytest.approx(0.3, abs=0.03)
    assert sum(s.fraction for s in shares) <= 1.0 + 1e-6
    assert len(dominant_colours(arr, k=1)) == 1


def test_region_colour_of_a_red_square_on_white():
    arr = _solid((255, 255, 255), w=300, h=200)
    arr[50:150, 100:200] = (200, 25, 25)
    for img in (arr, Image.fromarray(arr)):
        assert region_colour(img, Box(100, 50, 200, 150)) == "red"
        # a loose box (background around the square) still names the square
        assert region_colour(img, Box(80, 30, 220, 170)) == "red"
        assert region_colour(img, Box(0, 0, 60, 40)) == "white"
        assert region_colour(img, Box(10, 10, 14, 14)) is None  # tiny region
        assert region_colour(img, Box(-50, -50, 500, 500)) is not None  # clipped to the image


def test_region_without_a_dominant_colour():
    rng = np.random.default_rng(0)
    palette = np.array([[220, 20, 30], [30, 60, 220], [30, 160, 40], [250, 240, 30], [128, 0, 128]], dtype=np.uint8)
    blocks = palette[rng.integers(0, len(palette), (20, 20))]  # [20, 20, 3] random colour blocks
    arr = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))  # [160, 160, 3]
    assert region_colour(arr, Box(0, 0, 160, 160)) is None


def test_grey_and_float_arrays():
    grey = np.full((50, 50), 250, dtype=np.uint8)
    assert dominant_colours(grey)[0].name == "white"
    assert dominant_colours(np.full((50, 50, 3), 0.05, dtype=np.float32))[0].name == "black"
    with pytest.raises(ValueError):
        dominant_colours(np.zeros((4, 4, 5), dtype=np.uint8))


def test_fast_on_large_images():
    big = Image.fromarray(np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8))
    dominant_colours(big)
    t = time.perf_counter()
    for _ in range(5):
        dominant_colours(big)
        region_colour(big, Box(500, 500, 3500, 2500))
    per_call = (time.perf_counter() - t) / 10
    assert per_call < 0.05  # ~2 ms measured; generous for loaded CI machines


def _cup_scene() -> tuple[np.ndarray, Box]:
    """A drawn cup seen from above on a wooden table: red body, white rim, orange coffee inside."""
    from PIL import ImageDraw

    img = Image.new("RGB", (400, 300), (150, 85, 35))  # table
    d = ImageDraw.Draw(img)
    d.ellipse((110, 60, 290, 260), fill=(190, 25, 30))  # the cup's red body
    d.ellipse((130, 60, 270, 170), fill=(245, 245, 240))  # white rim
    d.ellipse((145, 72, 255, 158), fill=(215, 140, 70))  # the coffee
    return np.asarray(img), Box(110, 60, 290, 260)


def test_an_objects_colour_leaves_out_what_it_contains():
    arr, box = _cup_scene()
    # the middle of the box is coffee: the rule before named the cup from it
    cx, cy = (int(v) for v in box.center)
    assert COLOUR_NAMES[int(name_pixels(arr[cy - 20 : cy, cx - 20 : cx + 20]).ravel()[0])] == "orange"
    assert region_colour(arr, box) == "red"
    assert region_colour(Image.fromarray(arr), Box(100, 50, 300, 270)) == "red"  # a loose box too


def test_an_object_of_its_surroundings_colour_still_gets_one():
    arr = _solid((250, 250, 250), w=200, h=200)
    assert region_colour(arr, Box(50, 50, 150, 150)) == "white"


@pytest.mark.slow
@pytest.mark.parametrize(("scene", "label", "colour"), [
    ("coffee", "cup", "red"), ("coffee_blue", "cup", "blue"), ("motorcycle", "motorcycle", "red"),
    ("motorcycle_blue", "motorcycle", "blue"),
])
def test_object_colours_on_real_photos(engine, tmp_path_factory, scene, label, colour):
    from oculi.scenes import write_vqa_images

    paths = write_vqa_images(tmp_path_factory.getbasetemp() / "vqa_images")
    objs = [o for o in engine.detect(paths[scene]).objects if o.label == label]
    assert objs and objs[0].colour == colour
