"""``fit_inspector``: learn what good parts look like from a folder of good images."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from oculi.core.errors import InputError, OculiError
from oculi.tasks.inspect.coreset import MemoryBank
from oculi.tasks.inspect.model import BANK_FILE, CARD_FILE, Inspector, PatchFeatures, bank_bytes
from oculi.tasks.inspect.results import InspectorCard
from oculi.tasks.inspect.whiten import WHITEN_FILE, WHITEN_REG
from oculi.tasks.train.progress import TrainProgress

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MIN_GOOD = 2  # one to fit, one to calibrate: below this nothing can be said
RECOMMENDED_GOOD = 8  # below this the card and the CLI warn
DEFAULT_PERCENTILE = 99.0
DEFAULT_HOLDOUT = 0.2
BATCH = 16  # images per forward pass
ASPECT_TOLERANCE = 0.1  # relative aspect-ratio difference treated as "the same shape"

ProgressFn = Callable[[TrainProgress], None]

def default_backend(settings: Any) -> PatchFeatures:
    """The built-in patch-feature extractor for these settings (shared, loaded once)."""
    from oculi.perception.patches import shared_extractor

    return shared_extractor(settings)


def list_images(folder: str | Path, what: str = "good") -> list[Path]:
    """The image files under a folder (recursively, sorted); ``InputError`` when there are none."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{what} image folder {str(d)!r} does not exist or is not a folder")
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(f"no images in {what} folder {str(d)!r} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_images(paths: Sequence[Path], settings: Any, skipped: list[str]) -> Iterator[tuple[Path, Any]]:
    """Decode each image (RGB); unreadable ones are skipped with a line in ``skipped``."""
    from oculi.imageio import load_image

    for p in paths:
        try:
            yield p, load_image(p, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels).image
        except OculiError as e:
            log.warning("skipping %s: %s", p, e)
            skipped.append(f"{p}: {e}")


def aspect_problem(size: tuple[int, int], expected: tuple[int, int]) -> str | None:
    """Why an image of ``size`` cannot be compared with good images of ``expected`` size (None: it can)."""
    (w, h), (ew, eh) = size, expected
    orient = lambda a, b: "square" if a == b else ("landscape" if a > b else "portrait")  # noqa: E731
    if orient(w, h) != orient(ew, eh) and abs(w / h - ew / eh) / (ew / eh) > ASPECT_TOLERANCE:
        return f"it is {w}x{h} ({orient(w, h)}) but the good images are {ew}x{eh} ({orient(ew, eh)}); rotate or crop it to match"
    if abs(w / h - ew / eh) / (ew / eh) > ASPECT_TOLERANCE:
        return f"its aspect ratio ({w}x{h}) differs from the good images' ({ew}x{eh}); crop it the same way"
    return None


def _features(backend: PatchFeatures, items: list[tuple[Path, Any]]) -> np.ndarray:
    return backend.patch_features([im for _, im in items])  # [B, h, w, C]


def _batches(paths: Sequence[Path], settings: Any, skipped: list[str], sizes: Counter) -> Iterator[list[tuple[Path, Any]]]:
    batch: list[tuple[Path, Any]] = []
    for p, im in load_images(paths, settings, skipped):
        sizes[im.size] += 1
        batch.append((p, im))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build_inspector(good: Sequence[Path], val: Sequence[Path], *, settings: Any, backend: PatchFeatures | None = None,
                    percentile: float = DEFAULT_PERCENTILE, val_source: str = "", progress: ProgressFn | None = None,
                    ratio: float = 0.1, max_bank: int = 20_000, seed_patches: int = 30_000,
                    whiten: float | None = WHITEN_REG) -> Inspector:
    """Fit an inspector in memory (nothing stored): the bank from ``good``, the threshold from ``val``.

    ``whiten`` is the whitening's regularisation (``oculi.tasks.inspect.whiten``); None measures
    plain distances between the raw features.

    Returns:
        An ``Inspector`` whose ``card`` has ``name=""``/``version=0`` (``fit_inspector`` stores it).
    """
    from oculi.perception.patches import INPUT_SIZE
    from oculi.tasks.inspect.model import smooth_map

    if not 0 < percentile <= 100:
        raise InputError(f"percentile must be in (0, 100], got {percentile}")
    backend = backend or default_backend(settings)
    t0 = time.perf_counter()
    skipped: list[str] = []
    sizes: Counter = Counter()
    bank: MemoryBank | None = None
    n_fit = 0
    for batch in _batches(good, settings, skipped, sizes):
        feats = _features(backend, batch)  # [B, h, w, C]
        if bank is None:
            bank = MemoryBank(feats.shape[-1], ratio=ratio, max_bank=max_bank, seed_patches=seed_patches, whiten=whiten)
        bank.add(feats.reshape(-1, feats.shape[-1]))
        n_fit += len(batch)
        if progress:
            progress(TrainProgress("features", n_fit + len(skipped), len(good), f"memory bank {len(bank._bank_proj) if bank._bank_proj is not None else 0} patches"))
    if bank is None or n_fit == 0:
        raise InputError(f"none of the {len(good)} good images could be read: " + "; ".join(skipped[:3]))
    bank_feats = bank.features()  # [b, C], whitened when bank.whitening is set
    insp = Inspector(bank_feats, 0.0, 0.0, INPUT_SIZE, None, bank.whitening)
    val_raw: list[float] = []
    n_val = 0
    for batch in _batches(val, settings, skipped, sizes):
        feats = _features(backend, batch)
        for d in insp.distances(feats):
            val_raw.append(float(smooth_map(d, INPUT_SIZE).max()))
        n_val += len(batch)
        if progress:
            progress(TrainProgress("calibrating", n_val, len(val), ""))
    if not val_raw:
        raise InputError("none of the held-out good images could be read, so no threshold can be calibrated: " + "; ".join(skipped[:3]))
    ref = float(np.median(val_raw))
    thr_raw = calibrated_threshold(val_raw, percentile)
    warnings: list[str] = []
    n_good = n_fit + n_val
    if n_good < RECOMMENDED_GOOD:
        warnings.append(f"fitted on only {n_good} good images (at least {RECOMMENDED_GOOD}, better 50 or more, are recommended): "
                        "the threshold rests on very few scores and good parts may be rejected")
    if n_val < 5:
        warnings.append(f"the threshold was calibrated on {n_val} held-out good image(s): the {percentile:g}th percentile of so few scores is close to their maximum")
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(4))
        warnings.append(f"the good images differ in size ({shown}); each is resized to {INPUT_SIZE}x{INPUT_SIZE}, so defects are measured at different scales")
    if bank.full:
        warnings.append(f"the memory bank reached its cap of {max_bank} patches; later good images may not all be covered")
    mode_size = sizes.most_common(1)[0][0]
    card = InspectorCard(
        name="", version=0, path="", backbone=getattr(backend, "name", type(backend).__name__), input_size=INPUT_SIZE,
        feature_dim=int(bank_feats.shape[1]), n_good=n_good, n_fit=n_fit, n_val=n_val, val_source=val_source,
        bank_size=int(bank_feats.shape[0]), patches_seen=bank.patches_seen, coreset_ratio=ratio,
        coreset_radius=round(bank.radius, 4), bank_full=bank.full, percentile=percentile,
        threshold=round(thr_raw / (thr_raw + ref), 4), threshold_raw=thr_raw, score_ref=ref,
        val_scores=[round(v / (v + ref), 4) for v in val_raw], image_size=(int(mode_size[0]), int(mode_size[1])),
        fit_seconds=round(time.perf_counter() - t0, 2), warnings=warnings, skipped=skipped,
        whitening=whiten if bank.whitening is not None else None)
    insp.score_ref, insp.threshold_raw, insp.card = ref, thr_raw, card
    return insp


def calibrated_threshold(scores: Sequence[float], percentile: float) -> float:
    """The ``percentile`` of good parts' scores, estimated from held-out good scores: the larger
    of their empirical percentile and the normal prediction bound (two or more scores).

    With a few held-out images the empirical 99th percentile is about their maximum, and one
    good part in ``n + 1`` scores above the maximum of ``n``: with 5 held-out images a sixth of
    the good parts would be rejected. The prediction bound ``mean + t(p, n-1) * sd * sqrt(1 + 1/n)``
    is the score a new good part stays under with probability ``p`` when the scores are normal,
    counting the uncertainty of a mean and deviation taken from ``n`` of them; with many held-out
    images it meets the empirical percentile.
    """
    from scipy.stats import t

    v = np.asarray(scores, dtype=np.float64)
    emp = float(np.percentile(v, percentile))
    n = len(v)
    if n < 2 or percentile >= 100:
        return emp
    bound = v.mean() + float(t.ppf(percentile / 100.0, n - 1)) * v.std(ddof=1) * np.sqrt(1.0 + 1.0 / n)
    return max(emp, float(bound))


def split_good(files: list[Path], holdout: float) -> tuple[list[Path], list[Path]]:
    """Evenly spaced images held out for calibration (deterministic), the rest for the bank."""
    if len(files) < MIN_GOOD:
        raise InputError(f"found {len(files)} good image(s); an inspector needs at least {MIN_GOOD} "
                         f"(one to learn from, one to calibrate the threshold) and {RECOMMENDED_GOOD} or more to be useful")
    n_val = min(len(files) - 1, max(1, round(holdout * len(files))))
    val_idx = set(np.linspace(0, len(files) - 1, n_val + 2)[1:-1].round().astype(int).tolist()) if n_val else set()
    while len(val_idx) < n_val:  # rounding collisions on tiny sets
        val_idx.add(next(i for i in range(len(files)) if i not in val_idx))
    return [f for i, f in enumerate(files) if i not in val_idx], [f for i, f in enumerate(files) if i in val_idx]


def fit_inspector(good_dir: str | Path, name: str, *, settings: Any, val_dir: str | Path | None = None,
                  progress: ProgressFn | None = None, percentile: float = DEFAULT_PERCENTILE,
                  holdout: float = DEFAULT_HOLDOUT, backend: PatchFeatures | None = None,
                  whiten: float | None = WHITEN_REG) -> InspectorCard:
    """Fit an inspector on good images and store it as ``OCULI_HOME/models/NAME/vN``.

    Args:
        good_dir: Folder of defect-free images (searched recursively).
        name: The inspector's name (a new version when it exists).
        settings: ``oculi.Settings``.
        val_dir: Held-out good images to calibrate the threshold; default: ``holdout`` of ``good_dir``.
        progress: Called with ``TrainProgress`` (phases ``features``, ``calibrating``).
        percentile: The threshold is this percentile of the held-out good images' scores.
        holdout: Share of ``good_dir`` held out when there is no ``val_dir``.
        backend: Anything with ``patch_features(images) -> [N, h, w, C]``; default the built-in one.
        whiten: Regularisation of the features' whitening (``oculi.tasks.inspect.whiten``); None
            compares raw features.

    Returns:
        The stored model's ``InspectorCard`` (its ``warnings`` say when it was fitted on too few images).

    Raises:
        InputError: no or too few readable good images, a bad name or percentile.

    Example:
        >>> card = fit_inspector("parts/good", "line-1", settings=Settings())  # doctest: +SKIP
        >>> card.threshold, card.bank_size  # doctest: +SKIP
        (0.55, 2841)
    """
    from oculi.store.trained import _VERSION_RE, TrainedKind, TrainedStore, validate_name

    name = validate_name(name)
    files = list_images(good_dir, "good")
    if val_dir is not None:
        good, val = files, list_images(val_dir, "validation")
        if len(good) < 1:
            raise InputError("no good images to fit on")
        source = f"--val {val_dir}"
    else:
        good, val = split_good(files, holdout)
        source = f"{len(val)} of {len(files)} images of the good folder, held out"
    insp = build_inspector(good, val, settings=settings, backend=backend, percentile=percentile, val_source=source, progress=progress,
                           whiten=whiten)
    card = insp.card
    assert card is not None
    store = TrainedStore.for_home(settings.home)
    doc = card.to_dict()
    folder = store.root / name
    taken = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_RE.fullmatch(p.name))] if folder.is_dir() else []
    text = InspectorCard.from_dict(doc, name=name, version=max(taken, default=0) + 1, path="").to_markdown()  # save's numbering
    files = {BANK_FILE: bank_bytes(insp.bank), CARD_FILE: text.encode("utf-8")}
    if insp.whitening is not None:
        files[WHITEN_FILE] = insp.whitening.to_bytes()
    t = store.save(name, TrainedKind.INSPECTOR, files,
                   {"feature_space": f"{card.backbone}/{card.input_size}", "card": doc,
                    "metrics": {"threshold": card.threshold, "bank_size": card.bank_size, "n_good": card.n_good}})
    final = InspectorCard.from_dict(doc, name=t.name, version=t.version, path=str(t.path))
    return final
