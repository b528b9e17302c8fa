"""Annotated renderings: the one drawing module for boxes, text lines, masks and heat-maps.

Everything that shows evidence on an image draws here: ``oculi detect --annotate``, the demo,
footage report keyframes and ``oculi report`` (objects, OCR lines, inspection defect regions
with their anomaly heat-map). Heat-maps are drawn from an ``HxW`` array in ``[0, 1]`` of any
size (resized to the image), so an inspection model at any feature resolution can hand its map
over as it is.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

from oculi.core.types import Box, DetectedObject, TextLine

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]
TEXT_COLOUR = (0, 200, 255)
REGION_COLOUR = (255, 40, 40)
HEATMAP_ALPHA = 0.45


@dataclass(frozen=True)
class Mark:
    """A labelled region to outline that is not a detected object (an anomaly, a footage track).

    ``number`` is drawn in a tag at the box corner, so prose can refer to "region 2".
    """

    box: Box
    label: str = ""
    number: int | None = None
    colour: tuple[int, int, int] = REGION_COLOUR


def _colour_for(label: str) -> tuple[int, int, int]:
    return PALETTE[sum(map(ord, label)) % len(PALETTE)]


def _font(img: Image.Image) -> Any:
    return ImageFont.load_default(size=max(12, round(max(img.size) / 45)))


def _tag(draw: ImageDraw.ImageDraw, x: float, y: float, caption: str, colour: tuple[int, int, int], font: Any) -> None:
    tb = draw.textbbox((x, y), caption, font=font)
    h = tb[3] - tb[1]
    ty = y - h - 4 if y > h + 4 else y
    draw.rectangle([x, ty, x + (tb[2] - tb[0]) + 6, ty + h + 4], fill=colour)
    draw.text((x + 3, ty), caption, fill=(0, 0, 0), font=font)


def heatmap_colours(heatmap: Any) -> Any:
    """A 0..1 map as ``[H, W, 3]`` uint8: blue (0) through green and yellow to red (1)."""
    import numpy as np

    v = np.clip(heatmap, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def heatmap_overlay(image: Image.Image, heatmap: Any, boxes: Iterable[tuple[int, int, int, int]] = (),
                    *, floor: float = 0.0, alpha: float = 0.5) -> Image.Image:
    """The image with a 0..1 anomaly map of the image's size (``[H, W]``) blended over it
    (values under ``floor`` left nearly clear) and region boxes drawn in red: the inspection
    heat-map PNG. ``annotate_image(heatmap=...)`` draws a map of any size with the other evidence."""
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


def heatmap_rgba(heatmap: Any, size: tuple[int, int], *, alpha: float = HEATMAP_ALPHA, floor: float = 0.0) -> Image.Image:
    """An ``HxW`` map in ``[0, 1]`` as an RGBA overlay of ``size`` (blue → yellow → red; opacity
    grows with the value above ``floor``, so values under it, such as a clean part's scores
    below the pass/fail threshold, leave the image as it is).

    Raises:
        ValueError: the map is not two-dimensional or holds no finite value.
    """
    import numpy as np

    m = np.asarray(heatmap, dtype=np.float32)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"a heat-map must be a 2-D array, got shape {m.shape}")
    if not np.isfinite(m).any():
        raise ValueError("a heat-map holds no finite value")
    m = np.clip(np.nan_to_num(m, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    small = Image.fromarray((m * 255).astype(np.uint8), mode="L").resize(size, Image.BILINEAR)
    v = np.asarray(small, dtype=np.float32) / 255.0  # [H, W]
    f = min(max(float(floor), 0.0), 0.99)
    # 0 at the floor, 1 at the map's top: scores sit in a narrow band above the threshold (a clear
    # defect may score 0.6 against 0.54), so scaling to 1.0 left it faint; a top barely over the
    # floor (under a tenth of the way to 1.0) stays faint, so a marginal finding is not shouted
    top = float(v.max())
    above = np.clip((v - f) / max(top - f, 0.1 * (1.0 - f), 1e-6), 0.0, 1.0)
    a = (alpha * np.clip(above * 1.5, 0, 1) * 255).astype(np.uint8)
    rgba = np.concatenate([heatmap_colours(0.5 + 0.5 * above if f > 0 else v), a[..., None]], axis=-1)  # [H, W, 4]
    return Image.fromarray(rgba, mode="RGBA")


def mask_rgba(mask: Any, size: tuple[int, int], colour: tuple[int, int, int] = REGION_COLOUR,
              alpha: float = 0.4) -> Image.Image:
    """A boolean (or 0..1) ``HxW`` mask as a flat translucent overlay of ``size``."""
    import numpy as np

    m = np.asarray(mask, dtype=np.float32)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"a mask must be a 2-D array, got shape {m.shape}")
    small = Image.fromarray((np.clip(m, 0, 1) * 255).astype(np.uint8), mode="L").resize(size, Image.NEAREST)
    a = (np.asarray(small, dtype=np.float32) / 255.0 * alpha * 255).astype(np.uint8)
    rgba = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = a
    return Image.fromarray(rgba, mode="RGBA")


def annotate_image(
    image: Image.Image,
    objects: Iterable[DetectedObject] = (),
    text: Iterable[TextLine] = (),
    *,
    marks: Sequence[Mark] = (),
    heatmap: Any = None,
    heatmap_floor: float = 0.0,
    masks: Sequence[Any] = (),
    number_text: bool = False,
) -> Image.Image:
    """Return a copy of ``image`` with the evidence drawn on it.

    Args:
        image: The image (any mode).
        objects: Detected objects: a box and a "label score" tag each.
        text: OCR lines: thin boxes (numbered ``T1``, ``T2``... when ``number_text``).
        marks: Other regions (anomalies, tracks): red boxes with a number/label tag.
        heatmap: An ``HxW`` array in ``[0, 1]`` (any resolution) blended under the boxes.
        heatmap_floor: Heat-map values at or under this (an inspector's threshold) are not drawn.
        masks: ``HxW`` masks blended as translucent red.

    Returns:
        A new RGB image the size of ``image``.

    Example:
        >>> from PIL import Image
        >>> import numpy as np
        >>> out = annotate_image(Image.new("RGB", (64, 48)), heatmap=np.eye(8, dtype="float32"))
        >>> out.size
        (64, 48)
    """
    out = image.convert("RGB").copy()
    if heatmap is not None:
        out = Image.alpha_composite(out.convert("RGBA"), heatmap_rgba(heatmap, out.size, floor=heatmap_floor)).convert("RGB")
    for m in masks:
        out = Image.alpha_composite(out.convert("RGBA"), mask_rgba(m, out.size)).convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    font = _font(out)
    for o in objects:
        c = _colour_for(o.label)
        b = o.box
        draw.rectangle([b.x1, b.y1, b.x2, b.y2], outline=c, width=width)
        _tag(draw, b.x1, b.y1, f"{o.label} {o.score:.2f}", c, font)
    for i, t in enumerate(text, 1):
        b = t.box
        draw.rectangle([b.x1, b.y1, b.x2, b.y2], outline=TEXT_COLOUR, width=max(1, width - 1))
        if number_text:
            _tag(draw, b.x1, b.y1, f"T{i}", TEXT_COLOUR, font)
    for k, m in enumerate(marks, 1):
        b = m.box
        draw.rectangle([b.x1, b.y1, b.x2, b.y2], outline=m.colour, width=width + 1)
        caption = " ".join(x for x in (f"#{m.number if m.number is not None else k}", m.label) if x)
        _tag(draw, b.x1, b.y1, caption, m.colour, font)
    return out


def image_bytes(image: Image.Image, fmt: str = "PNG", *, max_side: int | None = None) -> bytes:
    """``image`` encoded as PNG or JPEG, shrunk first so its longer side is at most ``max_side``."""
    img = image
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 85} if fmt.upper() == "JPEG" else {}))
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:`` URI of encoded image bytes (for one-file HTML and PDF reports)."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def annotation_path(dest: Path, source: Path, many: bool) -> Path:
    """Where to write the annotation of ``source``: ``dest`` itself, or ``dest/<stem>.png`` for batches."""
    if many or dest.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return dest / f"{source.stem}.annotated.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest
