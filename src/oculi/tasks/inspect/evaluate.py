"""``oculi eval inspect DIR``: image and pixel AUROC on data in the MVTec AD folder layout.

``DIR`` is one category (it has ``train/good`` and ``test``) or a folder of categories. Per
category an inspector is fitted in memory on ``train/good`` (nothing is stored), every
``test/*`` image is scored, and the areas under the ROC curve are computed with scikit-learn's
``roc_auc_score``: image AUROC (good = 0, any defect = 1, by the image score) and pixel AUROC
(every pixel of every test image, by the anomaly map, against ``ground_truth/<defect>/<stem>_mask.png``;
a good image's pixels are all 0). Both are also given per defect type (its images against the
good ones). Maps and masks are compared at the 224 x 224 model grid, as anomalib's defaults do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oculi.core.errors import InputError
from oculi.tasks.inspect.fit import (IMAGE_SUFFIXES, ProgressFn, build_inspector, build_typed_inspector, default_backend, list_images,
                                     split_good)
from oculi.tasks.inspect.model import Inspector, PatchFeatures
from oculi.tasks.train.progress import TrainProgress

EVAL_SCHEMA = "oculi.eval-inspect/1"
GRID = 224


@dataclass
class CategoryEval:
    category: str
    n_train: int
    n_test: int
    image_auroc: float | None
    pixel_auroc: float | None
    by_defect: dict[str, dict[str, Any]]
    fit_seconds: float
    ms_per_image: float
    bank_size: int
    threshold: float
    accuracy: float  # share of test images classified right at the calibrated threshold
    problems: list[str] = field(default_factory=list)
    images: list[tuple[str, str, float]] = field(default_factory=list)  # (defect, file name, raw score)
    type_accuracy: float | None = None  # one model for all categories: share of test images taken for their own

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {"category": self.category, "n_train": self.n_train, "n_test": self.n_test,
                "image_auroc": r(self.image_auroc), "pixel_auroc": r(self.pixel_auroc),
                "by_defect": self.by_defect, "fit_seconds": round(self.fit_seconds, 2),
                "ms_per_image": round(self.ms_per_image, 1), "bank_size": self.bank_size,
                "threshold": round(self.threshold, 4), "accuracy": round(self.accuracy, 4), "problems": self.problems,
                "type_accuracy": r(self.type_accuracy)}


@dataclass
class InspectEvaluation:
    root: str
    categories: list[CategoryEval]
    one_model: bool = False  # one inspector fitted on every category's good images (product types)

    def mean(self, key: str) -> float | None:
        vals = [getattr(c, key) for c in self.categories if getattr(c, key) is not None]
        return float(np.mean(vals)) if vals else None

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {"schema": EVAL_SCHEMA, "root": self.root, "categories": [c.to_dict() for c in self.categories],
                "mean_image_auroc": r(self.mean("image_auroc")), "mean_pixel_auroc": r(self.mean("pixel_auroc")),
                "one_model": self.one_model}


def find_categories(root: Path) -> list[Path]:
    """The MVTec categories under ``root`` (``root`` itself when it is one)."""
    if not root.is_dir():
        raise InputError(f"{str(root)!r} is not a folder")
    if (root / "train" / "good").is_dir():
        return [root]
    cats = sorted(p for p in root.iterdir() if (p / "train" / "good").is_dir() and (p / "test").is_dir())
    if not cats:
        raise InputError(f"{str(root)!r} is not in the MVTec AD layout: expected <category>/train/good, "
                         "<category>/test/<defect>/ and <category>/ground_truth/<defect>/<name>_mask.png")
    return cats


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def _mask_for(cat: Path, defect: str, img: Path, problems: list[str]) -> np.ndarray:
    from PIL import Image

    if defect == "good":
        return np.zeros((GRID, GRID), bool)
    mp = cat / "ground_truth" / defect / f"{img.stem}_mask.png"
    if not mp.is_file():
        problems.append(f"{img}: no mask {mp.name}; its pixels count as defect-free")
        return np.zeros((GRID, GRID), bool)
    with Image.open(mp) as m:
        return np.asarray(m.convert("L").resize((GRID, GRID), Image.Resampling.BILINEAR)) >= 128


def evaluate_category(cat: Path, *, settings: Any, backend: PatchFeatures | None = None, progress: ProgressFn | None = None,
                      percentile: float = 99.0, max_train: int | None = None, inspector: Inspector | None = None,
                      own_type: int | None = None) -> CategoryEval:
    """Fit on ``cat/train/good`` in memory, score ``cat/test/*``; see the module docstring.

    ``inspector`` (fitted on several categories as product types, ``own_type`` this one's index):
    score with it instead of fitting one for this category."""
    from oculi.imageio import load_image
    from oculi.tasks.inspect.model import resize_map

    backend = backend or default_backend(settings)
    train = list_images(cat / "train" / "good", "train/good")
    if max_train:
        train = train[:max_train]
    if inspector is None:
        fit, val = split_good(train, 0.2)
        insp = build_inspector(fit, val, settings=settings, backend=backend, percentile=percentile,
                               val_source="20 % of train/good", progress=progress)
    else:
        insp = inspector
    assert insp.card is not None
    tests = [(d.name, p) for d in sorted((cat / "test").iterdir()) if d.is_dir()
             for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not tests:
        raise InputError(f"no test images under {cat / 'test'}")
    problems = list(insp.card.skipped)
    kinds, scores, maps, masks, names, passed_raw, types = [], [], [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(0, len(tests), 16):
        chunk = tests[i : i + 16]
        ims, kept = [], []
        for d, p in chunk:
            try:
                ims.append(load_image(p).image)
                kept.append((d, p))
            except InputError as e:
                problems.append(f"{p}: {e}")
        if not ims:
            continue
        raw, routed = insp.maps_and_types(backend.patch_features(ims))  # [B, 224, 224], product types
        for (d, p), m, t in zip(kept, raw, routed):
            kinds.append(d)
            names.append(p.name)
            scores.append(float(m.max()))
            passed_raw.append(float(m.max()) < insp.scale(t).threshold_raw)  # the type it was taken for decides
            types.append(t)
            maps.append(resize_map(m, GRID, GRID).astype(np.float16))
            masks.append(_mask_for(cat, d, p, problems))
        if progress:
            progress(TrainProgress("evaluating", min(i + 16, len(tests)), len(tests), cat.name))
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(kinds))
    k = np.array(kinds)
    s = np.array(scores)
    y = (k != "good").astype(int)
    pm = np.stack(maps).astype(np.float32)
    pk = np.stack(masks)
    by_defect: dict[str, dict[str, Any]] = {}
    for d in sorted(set(kinds) - {"good"}):
        sel = (k == d) | (k == "good")
        pa = _auroc(pk[sel].ravel(), pm[sel].ravel())
        by_defect[d] = {"n": int((k == d).sum()), "image_auroc": _round(_auroc(y[sel], s[sel])), "pixel_auroc": _round(pa)}
    acc = float(((~np.array(passed_raw)).astype(int) == y).mean())
    thr = insp.scale(own_type).threshold
    type_acc = float(np.mean([t == own_type for t in types])) if own_type is not None else None
    return CategoryEval(cat.name, len(train), len(kinds), _auroc(y, s), _auroc(pk.ravel(), pm.ravel()), by_defect,
                        insp.card.fit_seconds, ms, insp.card.bank_size, thr, acc, problems,
                        list(zip(kinds, names, scores)), type_acc)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def evaluate_inspect(root: str | Path, *, settings: Any, categories: list[str] | None = None, progress: ProgressFn | None = None,
                     backend: PatchFeatures | None = None, max_train: int | None = None, one_model: bool = False) -> InspectEvaluation:
    """Image and pixel AUROC per category of an MVTec-layout folder (see the module docstring).

    ``one_model``: one inspector for all the categories, each a product type (``fit_inspector(classes=True)``),
    instead of one per category; each category's test images are scored with it (``type_accuracy``:
    how many were taken for their own category).

    Raises:
        InputError: not the MVTec layout, an unknown category, no test images.
    """
    cats = find_categories(Path(root))
    if categories:
        have = {c.name: c for c in cats}
        missing = [c for c in categories if c not in have]
        if missing:
            raise InputError(f"no category {', '.join(missing)} in {root}; categories: {', '.join(have)}")
        cats = [have[c] for c in categories]
    backend = backend or default_backend(settings)
    if not one_model:
        return InspectEvaluation(str(root), [evaluate_category(c, settings=settings, backend=backend, progress=progress, max_train=max_train)
                                             for c in cats])
    if len(cats) < 2:
        raise InputError(f"one model for several categories needs at least two; {root} has {len(cats)}")
    good: list[Path] = []
    val: list[Path] = []
    gk: list[int] = []
    vk: list[int] = []
    for i, c in enumerate(cats):
        train = list_images(c / "train" / "good", f"{c.name}/train/good")[:max_train or None]
        f, v = split_good(train, 0.2)
        good, val, gk, vk = good + f, val + v, gk + [i] * len(f), vk + [i] * len(v)
    insp = build_typed_inspector(good, val, [c.name for c in cats], gk, vk, settings=settings, backend=backend,
                                 val_source="20 % of each category's train/good", progress=progress)
    return InspectEvaluation(str(root), [evaluate_category(c, settings=settings, backend=backend, progress=progress, max_train=max_train,
                                                           inspector=insp, own_type=i) for i, c in enumerate(cats)], one_model=True)
