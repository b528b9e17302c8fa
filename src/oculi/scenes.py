"""Images for the question-answering evaluation: real sample photos and generated scenes.

Real photos: scikit-image's samples (``oculi.demo.sample_images``) and scikit-learn's two
sample photos (``china``: the classifier calls it *palace*; ``flower``: *daisy*).

Generated scenes, deterministic (no randomness, the same pixels on every run), built from
those photos so that the answer is known by construction:

- **recoloured** photos: the red cup and saucer of ``coffee`` and the red motorcycle of
  ``motorcycle`` turned blue or green (the hue of their saturated red pixels is replaced, the
  wooden table and everything else are left alone), so "what colour is the cup?" has a known
  answer that is not red;
- **composed** scenes: cut-outs of the photos pasted onto plain coloured canvases (a cat beside
  a cup of espresso; the cup on a yellow or grey ground; the astronaut beside the rocket).

Needs scikit-image and scikit-learn (the ``dev`` extra).

Example:
    >>> paths = write_vqa_images(Path("/tmp/vqa"))  # doctest: +SKIP
    >>> sorted(paths)[:3]  # doctest: +SKIP
    ['astronaut', 'astronaut_rocket', 'camera']
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

RED_HUE = (345.0, 15.0)  # degrees: what counts as red when recolouring
RED_MIN_SATURATION = 0.4
RED_MIN_VALUE = 0.15


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    arr = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    return np.ascontiguousarray(arr[..., :3])


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{name}.jpg")


def recolour_red(rgb: np.ndarray, hue_degrees: float) -> np.ndarray:
    """Give the saturated red pixels of an image another hue, keeping their shading.

    Args:
        rgb: ``[H, W, 3]`` uint8.
        hue_degrees: The new hue (120 green, 220 blue).

    Returns:
        ``[H, W, 3]`` uint8, a new array.
    """
    from skimage import color

    hsv = color.rgb2hsv(rgb)  # [H, W, 3] in [0, 1]
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    red = ((h >= RED_HUE[0]) | (h < RED_HUE[1])) & (s > RED_MIN_SATURATION) & (v > RED_MIN_VALUE)
    hsv[..., 0] = np.where(red, hue_degrees / 360.0, hsv[..., 0])
    return (np.clip(color.hsv2rgb(hsv), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _canvas(size: tuple[int, int], rgb: tuple[int, int, int]) -> np.ndarray:
    w, h = size
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def _paste(canvas: np.ndarray, part: np.ndarray, height: int, left: int, top: int) -> None:
    """Paste ``part`` resized to ``height`` pixels high at (left, top)."""
    from PIL import Image

    ph, pw = part.shape[:2]
    width = round(pw * height / ph)
    img = np.asarray(Image.fromarray(part).resize((width, height), Image.Resampling.LANCZOS))
    canvas[top : top + height, left : left + width] = img


def _coffee_cup() -> np.ndarray:
    return _skimage("coffee")[0:330, 110:490]  # the cup and most of the saucer


def _cat_and_cup() -> np.ndarray:
    c = _canvas((800, 440), (176, 196, 222))  # pale blue
    _paste(c, _skimage("chelsea"), 250, 20, 95)
    _paste(c, _coffee_cup(), 400, 330, 20)
    return c


def _cup_on_yellow() -> np.ndarray:
    c = _canvas((640, 480), (236, 206, 40))
    _paste(c, _coffee_cup(), 340, 95, 70)
    return c


def _green_cup_on_grey() -> np.ndarray:
    c = _canvas((640, 480), (90, 90, 90))
    _paste(c, recolour_red(_coffee_cup(), 120.0), 340, 95, 70)
    return c


def _astronaut_rocket() -> np.ndarray:
    c = _canvas((900, 460), (30, 30, 34))
    _paste(c, _skimage("astronaut"), 420, 20, 20)
    _paste(c, _skimage("rocket")[:, 130:510], 420, 470, 20)
    return c


def _cat_on_red() -> np.ndarray:
    c = _canvas((640, 480), (190, 30, 35))
    _paste(c, _skimage("chelsea"), 380, 30, 50)
    return c


SCENES: dict[str, Callable[[], np.ndarray]] = {
    "coffee_blue": lambda: recolour_red(_skimage("coffee"), 220.0),
    "coffee_green": lambda: recolour_red(_skimage("coffee"), 140.0),
    "motorcycle_blue": lambda: recolour_red(_skimage("motorcycle"), 220.0),
    "cat_and_cup": _cat_and_cup,
    "cup_on_yellow": _cup_on_yellow,
    "green_cup_on_grey": _green_cup_on_grey,
    "astronaut_rocket": _astronaut_rocket,
    "cat_on_red": _cat_on_red,
}
PHOTOS: dict[str, Callable[[], np.ndarray]] = {"china": lambda: _sklearn("china"), "flower": lambda: _sklearn("flower")}


def write_vqa_images(out_dir: Path) -> dict[str, Path]:
    """Write every evaluation image as PNG (existing files are kept) and return name → path."""
    from PIL import Image

    from oculi.demo import sample_images

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {p.stem: p for p in sample_images(out_dir)}
    for name, make in {**PHOTOS, **SCENES}.items():
        p = out_dir / f"{name}.png"
        if not p.exists():
            Image.fromarray(make()).save(p)
        paths[name] = p
    return paths
