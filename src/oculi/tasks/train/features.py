"""Features for training: visual embeddings (cached by content), colour histograms, text vectors.

Extracting the visual features is the slow part of training on a CPU (about 20 ms an image for
the built-in EfficientNet-Lite0), so each image's features are cached under
``OCULI_HOME/cache/features/<space>/`` keyed by the SHA-256 of the file's bytes: an interrupted
run, a second run with other settings, and training on an overlapping data set reuse them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from oculi.core.errors import Interrupted, OculiError
from oculi.imageio import read_regular_file
from oculi.tasks.train.progress import ProgressFn, StopFn, TrainProgress

log = logging.getLogger(__name__)

COLOUR_BINS = 4  # per RGB channel: a 64-bin joint histogram
COLOUR_SPACE = {"model": "colour-hist-rgb4", "dim": COLOUR_BINS ** 3}


def image_space(engine: Any) -> dict[str, Any]:
    """``{"model", "dim"}`` of the engine's image embedder (what a trained model records)."""
    from oculi.backends.base import vector_space

    return vector_space(engine.backend("embed_image"), "image").to_dict()


def text_space(engine: Any) -> dict[str, Any]:
    """``{"model", "dim"}`` of the engine's text embedder."""
    from oculi.backends.base import vector_space

    return vector_space(engine.backend("embed_text"), "text").to_dict()


def colour_histogram(images: Sequence[Any]) -> np.ndarray:
    """A joint RGB histogram (4 bins a channel, 64-d, sums to 1) per image: what colour the
    pixels are, which pooled CNN features blur. ``[N, 64]`` float32.

    Example:
        >>> from PIL import Image
        >>> h = colour_histogram([Image.new("RGB", (8, 8), (255, 0, 0))])
        >>> h.shape, float(h[0].max())
        ((1, 64), 1.0)
    """
    out = np.zeros((len(images), COLOUR_BINS ** 3), dtype=np.float32)
    for i, im in enumerate(images):
        small = im.convert("RGB")
        if max(small.size) > 128:
            small.thumbnail((128, 128))
        a = np.asarray(small, dtype=np.uint16) * COLOUR_BINS // 256  # [H, W, 3] in 0..3
        idx = (a[..., 0] * COLOUR_BINS + a[..., 1]) * COLOUR_BINS + a[..., 2]
        out[i] = np.bincount(idx.ravel(), minlength=COLOUR_BINS ** 3) / idx.size
    return out


@dataclass
class Features:
    """Per-image features for the images that could be read (``ok`` indexes the input list)."""

    arrays: dict[str, np.ndarray]  # extractor name → [N_ok, D]
    ok: list[int]
    problems: list[str] = field(default_factory=list)


Extractor = Callable[[Sequence[Any]], np.ndarray]


class FeatureCache:
    """Features by (space, content hash) under ``root``; one ``.npy`` per image and space."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, space: str, sha: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", space)
        return self.root / safe / sha[:2] / f"{sha}.npy"

    def get(self, space: str, sha: str) -> np.ndarray | None:
        p = self._path(space, sha)
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, space: str, sha: str, vec: np.ndarray) -> None:
        p = self._path(space, sha)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp.npy")
        np.save(tmp, np.asarray(vec, dtype=np.float32), allow_pickle=False)
        tmp.replace(p)


def extract_image_features(
    engine: Any,
    paths: Sequence[str],
    extractors: dict[str, tuple[str, Extractor]],
    *,
    cache: FeatureCache | None = None,
    batch_size: int = 16,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> Features:
    """Features of each image for each extractor (``name → (space id, fn(images) → [N, D])``).

    Unreadable, corrupt or oversized images are skipped with a problem line each.

    Raises:
        Interrupted: ``should_stop`` said so; the features done so far are cached.
    """
    s = engine.settings
    per: dict[str, list[np.ndarray | None]] = {n: [None] * len(paths) for n in extractors}
    problems: list[str] = []
    bad: set[int] = set()
    todo: list[tuple[int, str]] = []
    for i, p in enumerate(paths):  # hash every file; take what the cache has
        try:
            data, _ = read_regular_file(p, max_bytes=s.max_image_bytes, name=p)
        except OculiError as e:
            problems.append(f"{e}; skipped")
            bad.add(i)
            continue
        sha = hashlib.sha256(data).hexdigest()
        missing = False
        for name, (space, _) in extractors.items():
            v = cache.get(space, sha) if cache else None
            per[name][i] = v
            missing |= v is None
        if missing:
            todo.append((i, sha))
    total = len(todo)
    if progress:
        progress(TrainProgress("features", 0, total, f"{len(paths) - total - len(bad)} cached"))
    for start in range(0, total, batch_size):
        if should_stop and should_stop():
            raise Interrupted(f"interrupted while reading images ({start}/{total} done and cached); run the same command again to go on")
        chunk = todo[start : start + batch_size]
        imgs, keep = [], []
        for i, sha in chunk:
            try:
                imgs.append(engine.load_image(paths[i]).image)
                keep.append((i, sha))
            except OculiError as e:
                problems.append(f"{e}; skipped")
                bad.add(i)
        if imgs:
            for name, (space, fn) in extractors.items():
                vecs = np.asarray(fn(imgs), dtype=np.float32)  # [B, D]
                for (i, sha), v in zip(keep, vecs):
                    per[name][i] = v
                    if cache:
                        cache.put(space, sha, v)
        if progress:
            progress(TrainProgress("features", min(start + batch_size, total), total))
    ok = [i for i in range(len(paths)) if i not in bad]
    arrays = {n: np.stack([v[i] for i in ok]) if ok else np.zeros((0, 0), np.float32) for n, v in per.items()}  # type: ignore[misc]
    return Features(arrays, ok, problems)


def default_extractors(engine: Any, *, colour: bool = False) -> dict[str, tuple[str, Extractor]]:
    """The visual embedding of the engine's image embedder, and optionally the colour histogram."""
    space = image_space(engine)
    out: dict[str, tuple[str, Extractor]] = {"image": (space["model"], lambda ims: engine.embed_images(ims))}
    if colour:
        out["colour"] = (COLOUR_SPACE["model"], colour_histogram)
    return out


def embed_texts_unique(engine: Any, texts: Sequence[str], *, batch_size: int = 256,
                       progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> np.ndarray:
    """Text vectors ``[N, D]``, each distinct text embedded once."""
    uniq = list(dict.fromkeys(texts))
    vecs: list[np.ndarray] = []
    for start in range(0, len(uniq), batch_size):
        if should_stop and should_stop():
            raise Interrupted("interrupted while embedding the texts; run the same command again")
        vecs.append(np.asarray(engine.embed_texts(uniq[start : start + batch_size]), dtype=np.float32))
        if progress:
            progress(TrainProgress("texts", min(start + batch_size, len(uniq)), len(uniq)))
    table = np.concatenate(vecs) if vecs else np.zeros((0, 0), np.float32)
    index = {t: i for i, t in enumerate(uniq)}
    return table[[index[t] for t in texts]] if texts else table
