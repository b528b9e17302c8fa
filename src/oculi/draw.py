"""Annotated renderings: boxes, labels and text lines drawn on an image (one drawing module)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from PIL import Image, ImageDraw, ImageFont

from oculi.core.types import DetectedObject, TextLine

if TYPE_CHECKING:
    import numpy as np

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]
TEXT_COLOUR = (0, 200, 255)


def _colour_for(label: str) -> tuple[int, int, int]:
    return PALETTE[sum(map(ord, label)) % len(PALETTE)]


def annotate_image(
    image: Image.Image,
    objects: Iterable[DetectedObject] = (),
    text: Iterable[TextLine] = (),
) -> Image.Image:
    """Return a copy of ``image`` with object boxes (label + score) and OCR line boxes drawn."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(out.size) / 45)))
    for o in objects:
        c = _colour_for(o.label)
        b = o.box
        draw.rectangle([b.x1, b.y1, b.x2, b.y2], outline=c, width=width)
        caption = f"{o.label} {o.score:.2f}"
        tb = draw.textbbox((b.x1, b.y1), caption, font=font)
        ty = b.y1 - (tb[3] - tb[1]) - 4 if b.y1 > (tb[3] - tb[1]) + 4 else b.y1
        draw.rectangle([b.x1, ty, b.x1 + (tb[2] - tb[0]) + 6, ty + (tb[3] - tb[1]) + 4], fill=c)
        draw.text((b.x1 + 3, ty), caption, fill=(0, 0, 0), font=font)
    for t in text:
        b = t.box
        draw.rectangle([b.x1, b.y1, b.x2, b.y2], outline=TEXT_COLOUR, width=max(1, width - 1))
    return out


def annotation_path(dest: Path, source: Path, many: bool) -> Path:
    """Where to write the annotation of ``source``: ``dest`` itself, or ``dest/<stem>.png`` for batches."""
    if many or dest.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return dest / f"{source.stem}.annotated.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def heatmap_colours(heatmap: "np.ndarray") -> "np.ndarray":
    """A 0..1 map as ``[H, W, 3]`` uint8: blue (0) through green and yellow to red (1)."""
    import numpy as np

    v = np.clip(heatmap, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def heatmap_overlay(image: Image.Image, heatmap: "np.ndarray", boxes: Iterable[tuple[int, int, int, int]] = (),
                    *, floor: float = 0.0, alpha: float = 0.5) -> Image.Image:
    """The image with a 0..1 anomaly map blended over it (values under ``floor`` left clear) and
    region boxes drawn in red. ``heatmap`` must have the image's size (``[H, W]``)."""
    import numpy as np

    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if heatmap.shape != base.shape[:2]:
        raise ValueError(f"heat-map shape {heatmap.shape} does not match the image's {base.shape[:2]}")
    colours = heatmap_colours(heatmap).astype(np.float32)
    a = np.where(heatmap >= floor, alpha, 0.15)[..., None]
    out = Image.fromarray((base * (1 - a) + colours * a).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 250))
    for x1, y1, x2, y2 in boxes:
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 0, 0), width=width)
    return out
