"""Data sets the training tests generate: metal-surface defects (folder per class), captioned
shapes (image-caption pairs), and a slice of the easy-VQA package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFECTS = ("crack", "scratch", "rust", "ok")


def _metal(rng: np.random.Generator, size: int) -> "object":
    from PIL import Image, ImageFilter

    noise = rng.normal(0, 12, (size, size)).astype(np.float32)
    arr = np.clip(int(rng.integers(110, 160)) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr).filter(ImageFilter.GaussianBlur(1.2)).convert("RGB")


def defect_image(kind: str, rng: np.random.Generator, size: int = 160) -> "object":
    """A grey metal texture with a crack (dark jagged line), scratches (thin bright lines), rust
    (orange-brown blotches) or nothing ("ok")."""
    from PIL import ImageDraw

    img = _metal(rng, size)
    d = ImageDraw.Draw(img)
    if kind == "crack":
        x, y = int(rng.integers(10, 40)), int(rng.integers(20, size - 20))
        pts = [(x, y)]
        while x < size - 10:
            x += int(rng.integers(8, 20))
            y = int(np.clip(y + rng.integers(-15, 16), 5, size - 5))
            pts.append((x, y))
        d.line(pts, fill=(20, 15, 10), width=int(rng.integers(3, 6)))
    elif kind == "scratch":
        for _ in range(int(rng.integers(3, 7))):
            x0, y0 = (int(v) for v in rng.integers(0, size, 2))
            ang, length = rng.uniform(-0.3, 0.3) + 0.7, int(rng.integers(40, 120))
            d.line([(x0, y0), (x0 + length * np.cos(ang), y0 + length * np.sin(ang))], fill=(235, 235, 240), width=1)
    elif kind == "rust":
        for _ in range(int(rng.integers(4, 9))):
            cx, cy = (int(v) for v in rng.integers(10, size - 10, 2))
            r = int(rng.integers(6, 22))
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(int(rng.integers(140, 190)), int(rng.integers(60, 90)), 20))
    return img


def write_defects(root: Path, per_class: int = 8, kinds: tuple[str, ...] = DEFECTS, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in kinds:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            defect_image(kind, rng).save(root / kind / f"{kind}_{i}.png")
    return root


COLOURS = {"red": (210, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (235, 210, 40), "purple": (130, 50, 170)}
SHAPES = ("circle", "square", "triangle")


def shape_image(colour: str, shape: str, rng: np.random.Generator, size: int = 96) -> "object":
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 256, 3)))
    d = ImageDraw.Draw(img)
    s = int(rng.integers(size // 3, size // 2))
    x, y = (int(v) for v in rng.integers(4, size - s - 4, 2))
    fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[colour])
    if shape == "circle":
        d.ellipse((x, y, x + s, y + s), fill=fill)
    elif shape == "square":
        d.rectangle((x, y, x + s, y + s), fill=fill)
    else:
        d.polygon([(x + s // 2, y), (x + s, y + s), (x, y + s)], fill=fill)
    return img


def write_caption_pairs(root: Path, per_combo: int = 2, seed: int = 0) -> Path:
    """``root/pairs.csv`` (``image,caption``) over ``root/images``: coloured shapes, two wordings each."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["image,caption"]
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(per_combo):
                name = f"images/{colour}_{shape}_{i}.png"
                shape_image(colour, shape, rng).save(root / name)
                rows.append(f"{name},a {colour} {shape}")
                rows.append(f'{name},"a {shape} drawn in {colour} on a light background"')
    (root / "pairs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "pairs.csv"


def write_easy_vqa_slice(root: Path, n_train: int = 60, n_test: int = 20) -> Path:
    """The first images of the easy-VQA package's train and test splits with their questions, in
    its own layout (``root/{train,test}/questions.json``, ``images/``; ``root/answers.txt``)."""
    import json
    import shutil

    easy_vqa = __import__("pytest").importorskip("easy_vqa")
    src = Path(easy_vqa.__file__).parent / "data"
    shutil.copy(src / "answers.txt", root / "answers.txt") if root.exists() else None
    for split, n in (("train", n_train), ("test", n_test)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        qs = [q for q in json.loads((src / split / "questions.json").read_text()) if q[2] < n]
        for i in range(n):
            shutil.copy(src / split / "images" / f"{i}.png", root / split / "images" / f"{i}.png")
        (root / split / "questions.json").write_text(json.dumps(qs))
    shutil.copy(src / "answers.txt", root / "answers.txt")
    return root
