"""Colour naming without a model: HSV rules over a small thumbnail.

Eleven basic colour names are used: red, orange, yellow, green, blue, purple, pink, brown,
black, white, grey. Every pixel of a thumbnail (at most ``THUMB`` pixels on its longer side,
box-filtered so texture and noise average out) is named by these rules, in order:

1. value < 0.2 → black;
2. low chroma (saturation < 0.2, or saturation × value < 0.1) → white (value ≥ 0.8),
   black (value < 0.3) or grey;
3. otherwise by hue (degrees): red < 12 ≤ orange < 40 ≤ yellow < 68 ≤ green < 165 ≤
   blue < 255 ≤ purple < 290 ≤ pink < 340 ≤ red;
4. brown is dark or dull orange/yellow (hue 12-55 with value < 0.65, or hue 12-45 with
   saturation < 0.45 and value < 0.85) and dull dark red (saturation < 0.6, value < 0.5);
   pink is also pale red (saturation < 0.45, value ≥ 0.7); dark magenta (hue 290-320,
   value < 0.65) is purple.

``dominant_colours`` reports the shares of the whole image; ``region_colour`` names an
object's region from its central part (the middle half of the box in each direction, so the
background around the object weighs little) and returns ``None`` when the region is tiny or
no colour covers at least ``REGION_DOMINANCE`` of it.

Cost: about 1-2 ms per call on a 640x480 image (a 64 px thumbnail has ~3,000 pixels);
large images are point-sampled before the box filter, so a 12-megapixel image costs about
the same. NumPy input is strided the same way before it is wrapped as an image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from oculi.core.labels import COLOUR_NAMES
from oculi.core.types import Box, ColourShare

if TYPE_CHECKING:
    from PIL import Image

_IDX = {n: i for i, n in enumerate(COLOUR_NAMES)}

THUMB = 64  # longer side of the thumbnail the whole image is named on
REGION_THUMB = 32  # longer side of the thumbnail a region is named on
MIN_REGION_SIDE = 6  # pixels (of the central part); smaller regions get no colour
REGION_DOMINANCE = 0.4  # the top colour must cover this much of the central region
MIN_SHARE = 0.05  # dominant_colours leaves out colours covering less


def _to_pil(image: "Image.Image | np.ndarray", max_side: int | None = None) -> "Image.Image":
    """Wrap an array as a PIL image; with ``max_side``, large arrays are strided down first."""
    from PIL import Image

    if not isinstance(image, np.ndarray):
        return image
    arr = image
    if arr.ndim == 3 and arr.shape[2] in (1, 4):
        arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise ValueError(f"expected a non-empty HxW or HxWx3 image array, got shape {arr.shape}")
    if max_side is not None:
        step = max(1, max(arr.shape[:2]) // max_side)
        arr = arr[::step, ::step]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def _thumbnail(image: "Image.Image", side: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB thumbnail of ``box`` (the whole image by default), longer side at most ``side``.

    Large images are first point-sampled to 4x the target (reads only the sampled pixels),
    then box-filtered, so each thumbnail pixel averages 16 samples.

    Returns:
        ``[h, w, 3]`` uint8.
    """
    from PIL import Image

    if image.mode != "RGB":
        image = image.convert("RGB")
    if box is None:
        box = (0, 0, image.size[0], image.size[1])
    w, h = box[2] - box[0], box[3] - box[1]
    if max(w, h) > 4 * side:
        s = 4 * side / max(w, h)
        image = image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.NEAREST, box=box)
    elif box != (0, 0, image.size[0], image.size[1]):
        image = image.crop(box)
    w, h = image.size
    if max(w, h) > side:
        s = side / max(w, h)
        image = image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def name_pixels(rgb: np.ndarray) -> np.ndarray:
    """Name each RGB pixel.

    Args:
        rgb: ``[..., 3]`` uint8 RGB.

    Returns:
        ``[...]`` int indices into ``COLOUR_NAMES``.
    """
    x = rgb.astype(np.float32) * (1.0 / 255.0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx = x.max(axis=-1)
    mn = x.min(axis=-1)
    c = mx - mn
    v = mx
    s = np.where(mx > 0, c / np.maximum(mx, 1e-6), 0.0)
    safe_c = np.maximum(c, 1e-6)
    h = np.where(
        mx == r,
        ((g - b) / safe_c) % 6.0,
        np.where(mx == g, (b - r) / safe_c + 2.0, (r - g) / safe_c + 4.0),
    ) * 60.0  # degrees [0, 360)

    # chromatic hue bands
    out = np.select(
        [h < 12, h < 40, h < 68, h < 165, h < 255, h < 290, h < 340],
        [_IDX["red"], _IDX["orange"], _IDX["yellow"], _IDX["green"], _IDX["blue"], _IDX["purple"], _IDX["pink"]],
        default=_IDX["red"],
    )
    is_red = (h < 12) | (h >= 340)
    out = np.where((h >= 290) & (h < 320) & (v < 0.65), _IDX["purple"], out)  # dark magenta
    brown = ((h >= 12) & (h < 55) & (v < 0.65)) | ((h >= 12) & (h < 45) & (s < 0.45) & (v < 0.85))
    brown |= is_red & (s < 0.6) & (v < 0.5)
    out = np.where(brown, _IDX["brown"], out)
    out = np.where(is_red & (s < 0.45) & (v >= 0.7), _IDX["pink"], out)
    # achromatic
    achrom = (s < 0.2) | (s * v < 0.1)
    grey_name = np.where(v >= 0.8, _IDX["white"], np.where(v < 0.3, _IDX["black"], _IDX["grey"]))
    out = np.where(achrom, grey_name, out)
    out = np.where(v < 0.2, _IDX["black"], out)
    return out


def _shares(rgb: np.ndarray) -> list[tuple[str, float]]:
    names = name_pixels(rgb).ravel()
    if names.size == 0:
        return []
    counts = np.bincount(names, minlength=len(COLOUR_NAMES)).astype(np.float64) / names.size
    order = np.argsort(-counts, kind="stable")
    return [(COLOUR_NAMES[i], float(counts[i])) for i in order if counts[i] > 0]


def dominant_colours(image: "Image.Image | np.ndarray", k: int = 3) -> list[ColourShare]:
    """The ``k`` colours covering most of the image, largest share first.

    Args:
        image: RGB ``PIL.Image`` or ``[H, W, 3]`` uint8 array (``[H, W]`` grey also works).
        k: How many colours at most; colours under 5 % are left out.

    Returns:
        ``ColourShare``s whose fractions are shares of the whole image.
    """
    thumb = _thumbnail(_to_pil(image, max_side=4 * THUMB), THUMB)
    return [ColourShare(n, f) for n, f in _shares(thumb)[: max(0, k)] if f >= MIN_SHARE]


def region_colour(image: "Image.Image | np.ndarray", box: Box) -> str | None:
    """The dominant colour name of an object's region, or ``None``.

    The central part of the box (the middle half in each direction) is named, which keeps
    most background out.

    Returns:
        A colour name, or ``None`` when the central part is smaller than ``MIN_REGION_SIDE``
        pixels on a side or no colour covers at least ``REGION_DOMINANCE`` of it.
    """
    if isinstance(image, np.ndarray):
        h, w = image.shape[:2]
    else:
        w, h = image.size
    b = box.clip(w, h)
    cx, cy = b.center
    hw, hh = b.width / 4.0, b.height / 4.0
    x1, y1 = int(round(cx - hw)), int(round(cy - hh))
    x2, y2 = int(round(cx + hw)), int(round(cy + hh))
    if x2 - x1 < MIN_REGION_SIDE or y2 - y1 < MIN_REGION_SIDE:
        return None
    if isinstance(image, np.ndarray):
        region = _to_pil(image[y1:y2, x1:x2], max_side=4 * REGION_THUMB)
        thumb = _thumbnail(region, REGION_THUMB)
    else:
        thumb = _thumbnail(image, REGION_THUMB, box=(x1, y1, x2, y2))
    shares = _shares(thumb)
    if not shares or shares[0][1] < REGION_DOMINANCE:
        return None
    return shares[0][0]
