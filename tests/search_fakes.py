"""Test doubles for the search/index tests: a deterministic backend and image writers.

``FakeBackend`` implements the perceiver and both embedders without any model:

- perception reads what to "see" from PNG text chunks written by ``write_png`` (``fake_labels``,
  ``fake_objects``, ``fake_text`` as JSON), and measures dominant colours from the pixels;
- the visual embedding is the image shrunk to 8×8 RGB (so a resized copy is near-identical);
- the text embedding hashes words into 64 dimensions (texts sharing words are similar).

- frame detection (footage) finds one "person": the box around the saturated red pixels;

``OCULI_FAKE_DELAY`` (seconds per image or frame) slows perception down for interrupt tests;
``OCULI_FAKE_LOG`` (a file) gets one line per image perceived, so a test can count perception work.
Use ``fake_engine(home)`` for an ``Engine`` wired to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, PngImagePlugin

from oculi.backends.registry import CAPABILITIES, register_backend
from oculi.config import Settings
from oculi.core.types import Box, ColourShare, DetectedObject, ImageInfo, Label, Observation, TextLine
from oculi.engine import Engine

PALETTE = {
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 220, 30),
    "white": (250, 250, 250), "black": (10, 10, 10), "grey": (128, 128, 128), "orange": (245, 140, 20),
    "purple": (130, 40, 160), "pink": (240, 140, 190), "brown": (120, 70, 30),
}
TEXT_DIM = 64
IMAGE_DIM = 192


def _nearest_colour(rgb: np.ndarray) -> np.ndarray:
    names = list(PALETTE)
    pal = np.array([PALETTE[n] for n in names], dtype=np.float32)  # [C, 3]
    d = ((rgb[:, None, :] - pal[None, :, :]) ** 2).sum(-1)  # [P, C]
    return np.array(names)[d.argmin(1)]


def _stem(w: str) -> str:
    return w[:-1] if len(w) > 3 and w.endswith("s") else w


class FakeBackend:
    name = "fake"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dim = TEXT_DIM
        self.text_dim = TEXT_DIM
        self.image_dim = IMAGE_DIM
        self.delay = float(os.environ.get("OCULI_FAKE_DELAY", "0") or 0)
        self.log = os.environ.get("OCULI_FAKE_LOG")
        self.perceiver = self

    def load(self) -> None:
        pass

    # Perceiver
    def observe(self, image: Image.Image, info: ImageInfo, *, ocr: bool = True) -> Observation:
        return self.observe_batch([image], [info], ocr=ocr)[0]

    def observe_batch(self, images: Sequence[Image.Image], infos: Sequence[ImageInfo], *, ocr: bool = True) -> list[Observation]:
        out = []
        for img, info in zip(images, infos):
            if self.delay:
                time.sleep(self.delay)
            if self.log:
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(f"{info.path}\n")
            meta = img.info or {}
            if meta.get("fake_crash"):
                raise RuntimeError("fake model crash")
            labels = tuple(Label(n, float(s)) for n, s in json.loads(meta.get("fake_labels", "[]")))
            objs = []
            for o in json.loads(meta.get("fake_objects", "[]")):
                objs.append(DetectedObject(o["label"], float(o.get("score", 0.9)), Box(0, 0, img.width / 2, img.height / 2),
                                           colour=o.get("colour")))
            text = ()
            if ocr and meta.get("fake_text"):
                text = tuple(TextLine(t, 0.95, Box(0, 0, 10, 10)) for t in json.loads(meta["fake_text"]))
            small = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.float32).reshape(-1, 3)
            names, counts = np.unique(_nearest_colour(small), return_counts=True)
            order = np.argsort(-counts)
            colours = tuple(ColourShare(str(names[i]), float(counts[i] / counts.sum())) for i in order[:3])
            out.append(Observation(info, objects=tuple(objs), labels=labels, text=text, colours=colours,
                                   embedding=self._embed_image(img), models={"fake": "1"}))
        return out

    # FrameDetector
    def detect_frames(self, images: Sequence[Image.Image], *, min_score: float) -> list[list[DetectedObject]]:
        out = []
        for img in images:
            if self.delay:
                time.sleep(self.delay)
            a = np.asarray(img.convert("RGB"), dtype=np.int16)  # [H, W, 3]
            ys, xs = np.nonzero((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90))
            if len(xs) < 4:
                out.append([])
                continue
            out.append([DetectedObject("person", 0.9, Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))])
        return out

    # ImageEmbedder
    def _embed_image(self, img: Image.Image) -> np.ndarray:
        v = np.asarray(img.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR), dtype=np.float32).reshape(-1)
        v = v - 100.0
        return (v / (np.linalg.norm(v) + 1e-6)).astype(np.float32)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([self._embed_image(i) for i in images])

    # TextEmbedder
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                h = int(hashlib.md5(_stem(w).encode()).hexdigest(), 16)
                out[i, h % TEXT_DIM] += 1.0 if (h >> 8) & 1 else -1.0
            out[i, TEXT_DIM - 1] += 0.1
            out[i] /= np.linalg.norm(out[i]) + 1e-9
        return out


register_backend("fake", FakeBackend)
FAKE_CAPABILITIES = ("observe", "detect_frames", "embed_image", "embed_text")  # what the fake stands in for
FAKE_BACKENDS = {c: "fake" for c in FAKE_CAPABILITIES if c in CAPABILITIES}


def fake_settings(home: Path, **kw: Any) -> Settings:
    return Settings(home=home, backend=dict(FAKE_BACKENDS), **kw)


def fake_engine(home: Path, **kw: Any) -> Engine:
    return Engine(fake_settings(home, **kw))


def fake_env(home: Path) -> dict[str, str]:
    """Environment for a subprocess running ``tests/run_cli_with_fakes.py``."""
    env = dict(os.environ)
    env["OCULI_HOME"] = str(home)
    env["OCULI_BACKEND"] = json.dumps(FAKE_BACKENDS)
    return env


def write_png(path: Path, colour: str | tuple[int, int, int] = "red", size: tuple[int, int] = (64, 48), *,
              labels: Sequence[tuple[str, float]] = (), objects: Sequence[dict] = (), text: Sequence[str] = (),
              pattern: int = 0, crash: bool = False) -> Path:
    """A PNG whose fake perception is given by its text chunks. ``pattern`` varies the pixels."""
    rgb = PALETTE[colour] if isinstance(colour, str) else colour
    img = Image.new("RGB", size, rgb)
    if pattern:
        rng = np.random.default_rng(pattern)
        arr = np.asarray(img).copy()
        h, w = arr.shape[:2]
        for _ in range(6):
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            arr[y : y + h // 3, x : x + w // 3] = rng.integers(0, 255, 3)
        img = Image.fromarray(arr)
    info = PngImagePlugin.PngInfo()
    info.add_text("fake_labels", json.dumps(list(labels)))
    info.add_text("fake_objects", json.dumps(list(objects)))
    info.add_text("fake_text", json.dumps(list(text)))
    if crash:
        info.add_text("fake_crash", "1")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", pnginfo=info)
    return path


def write_walk_clip(path: Path, seconds: float = 20.0, *, fps: int = 4, size: tuple[int, int] = (160, 96)) -> Path:
    """A small H.264 clip (PyAV): a red figure walking left to right over grey, which the fake
    frame detector sees as one person."""
    import av

    w, h = size
    n = int(seconds * fps)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            a = np.full((h, w, 3), 90, np.uint8)  # [H, W, 3]
            x = int(4 + (w - 24) * i / max(1, n - 1))
            a[h // 3: h // 3 + h // 2, x: x + 16] = (230, 20, 20)
            for pk in st.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(pk)
        for pk in st.encode():
            out.mux(pk)
    return path
