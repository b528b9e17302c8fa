"""Synthetic inspection data: textures with drawn defects, written in the MVTec AD layout.

Good parts are random crops of a texture (scikit-image's ``brick``, ``grass`` and ``gravel``
photos, and generated ``weave``, ``grain`` and ``fabric`` textures), so no two are the same
pixels. Defects are drawn on other crops, with their exact masks:

* ``scratch``: a thin straight line, darker or brighter than the surface;
* ``spot``: a small filled disc, darker or brighter;
* ``hole``: a near-black disc with a soft rim;
* ``stain``: a smooth-edged tinted blob blended over the surface;
* ``missing``: a rectangle where the texture is gone (flat surface colour).

Each defect comes in sizes ``small`` / ``medium`` / ``large`` (scaled to the image side). Used by
``benchmarks/bench_inspect.py`` and the tests; ``oculi eval inspect`` reads what ``write_mvtec``
writes like any MVTec AD category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

TEXTURES = ("brick", "grass", "gravel", "weave", "grain", "fabric")
DEFECTS = ("scratch", "spot", "hole", "stain", "missing")
SIZES = {"small": 0.5, "medium": 1.0, "large": 1.8}


def texture(name: str, seed: int = 0, side: int = 512) -> np.ndarray:
    """A ``[side, side, 3]`` uint8 texture (photos from scikit-image, or generated)."""
    rng = np.random.default_rng(seed)
    if name in ("brick", "grass", "gravel"):
        from skimage import data

        g = getattr(data, name)().astype(np.float32)
        tint = {"brick": (1.0, 0.82, 0.7), "grass": (0.8, 1.0, 0.75), "gravel": (1.0, 1.0, 1.0)}[name]
        img = np.stack([g * t for t in tint], axis=-1)
    else:
        import cv2

        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        if name == "weave":  # a regular woven pattern with a little noise
            g = 128 + 50 * np.sin(xx / 3.0) * np.sin(yy / 3.0) + 25 * np.sign(np.sin(xx / 6.0 + np.pi * (np.sin(yy / 6.0) > 0)))
            g += rng.normal(0, 6, g.shape)
            img = np.stack([g * 0.95, g * 0.9, g * 1.05], axis=-1)
        elif name == "grain":  # wood-like rings distorted by smooth noise
            n = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), 12) * 60
            g = 140 + 40 * np.sin((yy + n) / 7.0) + rng.normal(0, 4, (side, side))
            img = np.stack([g * 1.05, g * 0.8, g * 0.55], axis=-1)
        elif name == "fabric":  # band-limited noise (felt, leather)
            n = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), 1.5)
            g = 120 + 90 * n / (n.std() + 1e-6) * 0.35
            img = np.stack([g * 0.75, g * 0.8, g * 1.0], axis=-1)
        else:
            raise ValueError(f"unknown texture {name!r}; known: {', '.join(TEXTURES)}")
    return np.clip(img, 0, 255).astype(np.uint8)


def crop(tex: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size x size`` crop, randomly flipped left-right (still the same surface)."""
    h, w = tex.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    out = tex[y : y + size, x : x + size]
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


def add_defect(img: np.ndarray, kind: str, size: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a defect; returns ``(image [H, W, 3] uint8, mask [H, W] bool)``."""
    import cv2

    h, w = img.shape[:2]
    s = SIZES[size] * min(h, w) / 256.0
    out = img.astype(np.float32).copy()
    mask = np.zeros((h, w), np.uint8)
    margin = int(30 * s) + 4
    cy, cx = int(rng.integers(margin, h - margin)), int(rng.integers(margin, w - margin))
    sign = 1 if rng.random() < 0.5 else -1
    mean = out.reshape(-1, 3).mean(axis=0)
    if kind == "scratch":
        length, ang = 50 * s, rng.uniform(0, np.pi)
        dx, dy = np.cos(ang) * length / 2, np.sin(ang) * length / 2
        cv2.line(mask, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1, max(2, int(round(2 * s))))
        m = mask.astype(bool)
        out[m] = np.clip(out[m] + sign * 90, 0, 255) if sign > 0 else out[m] * 0.3
    elif kind == "spot":
        cv2.circle(mask, (cx, cy), max(3, int(7 * s)), 1, -1)
        m = mask.astype(bool)
        out[m] = np.clip(mean + sign * 80, 0, 255)
    elif kind == "hole":
        cv2.circle(mask, (cx, cy), max(4, int(10 * s)), 1, -1)
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)[..., None]
        out = out * (1 - soft) + 15 * soft
    elif kind == "stain":
        axes = (max(5, int(16 * s)), max(4, int(10 * s)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 3)[..., None] * 0.6
        tint = np.array([150, 90, 40], np.float32) if sign > 0 else np.array([60, 70, 140], np.float32)
        out = out * (1 - soft) + tint * soft
    elif kind == "missing":
        hw, hh = max(5, int(14 * s)), max(4, int(10 * s))
        mask[cy - hh : cy + hh, cx - hw : cx + hw] = 1
        m = mask.astype(bool)
        out[m] = mean
    else:
        raise ValueError(f"unknown defect {kind!r}; known: {', '.join(DEFECTS)}")
    return np.clip(out, 0, 255).astype(np.uint8), mask.astype(bool)


def write_mvtec(root: str | Path, textures: Iterable[str] = TEXTURES, *, n_train: int = 50, n_test_good: int = 20,
                n_per_defect: int = 6, size: int = 256, seed: int = 0, defects: Iterable[str] = DEFECTS) -> Path:
    """Write a benchmark in the MVTec AD layout under ``root``; returns ``root``.

    Per texture: ``train/good/NNN.png``, ``test/good/NNN.png``, ``test/<defect>/NNN.png`` and
    ``ground_truth/<defect>/NNN_mask.png``; the defect images cycle through the sizes, and
    ``test/<defect>/sizes.txt`` lists each file's size.
    """
    from PIL import Image

    root = Path(root)
    for ti, name in enumerate(textures):
        rng = np.random.default_rng(seed * 1000 + ti)
        tex = texture(name, seed=ti)
        cat = root / name
        for sub, n in (("train/good", n_train), ("test/good", n_test_good)):
            (cat / sub).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(crop(tex, size, rng)).save(cat / sub / f"{i:03d}.png")
        for d in defects:
            (cat / "test" / d).mkdir(parents=True, exist_ok=True)
            (cat / "ground_truth" / d).mkdir(parents=True, exist_ok=True)
            lines = []
            for i in range(n_per_defect):
                sz = list(SIZES)[i % len(SIZES)]
                img, mask = add_defect(crop(tex, size, rng), d, sz, rng)
                Image.fromarray(img).save(cat / "test" / d / f"{i:03d}.png")
                Image.fromarray(mask.astype(np.uint8) * 255).save(cat / "ground_truth" / d / f"{i:03d}_mask.png")
                lines.append(f"{i:03d}.png {sz}")
            (cat / "test" / d / "sizes.txt").write_text("\n".join(lines) + "\n")
    return root
