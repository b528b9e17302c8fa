"""PP-OCRv4 reader: accuracy on scikit-image's page, no text on photos, reading order."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from oculi.config import Settings
from oculi.core.errors import ModelAssetError
from oculi.core.types import Box, TextLine
from oculi.perception.ocr import RapidOCRReader, reading_order

# skimage.data.page(): a photographed book page (the last line, cut off at the bottom edge,
# is ">>> markers = np.zeros_like(coins)" and is left out of the ground truth).
PAGE_LINES = [
    "Region-based segmentation",
    "Let us first determine markers of the coins and the",
    "background. These markers are pixels that we can label",
    "unambiguously as either object or background. Here,",
    "the markers are found at the two extreme parts of the",
    "histogram of grey values:",
]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())


def _word_recall(truth: list[str], got: str) -> float:
    pool = _words(got)
    hit = 0
    for w in (w for line in truth for w in _words(line)):
        if w in pool:
            pool.remove(w)
            hit += 1
    return hit / sum(len(_words(line)) for line in truth)


def _photo(name: str) -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _line(text: str, y: float, x1: float = 0.0, x2: float = 100.0, h: float = 20.0) -> TextLine:
    return TextLine(text, 0.9, Box(x1, y, x2, y + h))


def test_reading_order_rows_then_left_to_right():
    lines = [_line("c", 50), _line("b", 2, 200, 300), _line("a", 0), _line("d", 52, 150, 250)]
    assert [t.text for t in reading_order(lines)] == ["a", "b", "c", "d"]


def test_reading_order_keeps_skewed_stacked_lines_apart():
    # overlapping boxes of a tilted paragraph: stacked, not side by side
    lines = [_line("second", 14, 5, 300), _line("first", 0, 0, 300), _line("third", 28, 0, 300)]
    assert [t.text for t in reading_order(lines)] == ["first", "second", "third"]


@pytest.fixture(scope="module")
def reader(settings: Settings) -> RapidOCRReader:
    r = RapidOCRReader(settings)
    try:
        r.load()
    except ModelAssetError as e:
        pytest.skip(f"OCR asset missing: {e}")
    return r


@pytest.mark.slow
def test_page_words(reader: RapidOCRReader):
    lines = reader.read(_photo("page"))
    text = "\n".join(t.text for t in lines)
    assert _word_recall(PAGE_LINES, text) >= 0.9, text
    assert lines[0].text == "Region-based segmentation"
    tops = [t.box.y1 for t in lines]
    assert tops == sorted(tops), "lines are not top to bottom"
    assert all(0.5 <= t.score <= 1.0 and t.text for t in lines)
    assert reader.read_text(_photo("page")) == text


@pytest.mark.slow
def test_handwritten_text_image_gives_no_confident_garbage(reader: RapidOCRReader):
    # skimage.data.text() is handwritten maths photographed at an angle: PP-OCRv4 reads
    # little of it; whatever it returns must be well-formed and confident
    lines = reader.read(_photo("text"))
    assert all(t.text.strip() and t.score >= 0.5 for t in lines)


@pytest.mark.slow
def test_synthetic_reading_order(reader: RapidOCRReader):
    font = ImageFont.load_default(size=40)
    img = Image.new("RGB", (800, 260), "white")
    d = ImageDraw.Draw(img)
    d.text((20, 20), "Hello world", fill="black", font=font)
    d.text((420, 24), "OPEN 24 HOURS", fill="black", font=font)
    d.text((20, 150), "Second line here", fill="black", font=font)
    assert [t.text for t in reader.read(img)] == ["Hello world", "OPEN 24 HOURS", "Second line here"]


@pytest.mark.slow
@pytest.mark.parametrize("size", [(640, 480), (300, 200), (5, 5)])
def test_blank_image_has_no_text(reader: RapidOCRReader, size: tuple[int, int]):
    assert reader.read(Image.new("RGB", size, "white")) == []
    assert reader.read_text(Image.new("RGB", size, (30, 90, 200))) == ""


@pytest.mark.slow
def test_photos_without_text(reader: RapidOCRReader):
    assert reader.read(_photo("coffee")) == []
    chelsea = _photo("chelsea").resize((640, 480))
    assert reader.read(chelsea) == []
    # the same photo with a small page of print pasted in is read (the probe fires)
    page = _photo("page").resize((288, 143), Image.Resampling.BICUBIC)
    chelsea.paste(page, (340, 320))
    assert "segmentation" in reader.read_text(chelsea).lower()


@pytest.mark.slow
def test_large_image_boxes_are_in_image_pixels(reader: RapidOCRReader):
    page = _photo("page")
    big = page.resize((page.width * 4, page.height * 4), Image.Resampling.BICUBIC)  # detection runs downscaled
    lines = reader.read(big)
    assert lines and lines[0].text == "Region-based segmentation"
    b = lines[0].box
    assert 0 <= b.x1 < 60 and 20 < b.y1 < 80 and 1000 < b.x2 <= big.width, b
    assert np.all([t.box.x2 <= big.width and t.box.y2 <= big.height for t in lines])
