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
from oculi.tasks.inspect.model import BANK_FILE, CARD_FILE, Inspector, PatchFeatures, bank_bytes, type_file
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
                    whiten: float | None = WHITEN_REG, val_samples: list[np.ndarray] | None = None) -> Inspector:
    """Fit an inspector in memory (nothing stored): the bank from ``good``, the threshold from ``val``.

    ``whiten`` is the whitening's regularisation (``oculi.tasks.inspect.whiten``); None measures
    plain distances between the raw features. ``val_samples``, when given, receives the held-out
    images' routing samples (``route_sample``), so an inspector of several types can check its
    routing without reading them again.

    Returns:
        An ``Inspector`` whose ``card`` has ``name=""``/``version=0`` (``fit_inspector`` stores it).
    """
    from oculi.perception.patches import INPUT_SIZE
    from oculi.tasks.inspect.model import route_sample, smooth_map

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
    val_mid: list[float] = []
    n_val = 0
    for batch in _batches(val, settings, skipped, sizes):
        feats = _features(backend, batch)
        for d in insp.distances(feats):
            val_raw.append(float(smooth_map(d, INPUT_SIZE).max()))
            val_mid.append(float(np.median(d)))
        if val_samples is not None:
            val_samples.append(route_sample(feats))
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
    insp.patch_ref = max(float(np.median(val_mid)), 1e-6)
    return insp


def build_typed_inspector(good: Sequence[Path], val: Sequence[Path], class_names: Sequence[str], good_class: Sequence[int],
                          val_class: Sequence[int], *, settings: Any, backend: PatchFeatures | None = None,
                          percentile: float = DEFAULT_PERCENTILE, val_source: str = "", progress: ProgressFn | None = None,
                          whiten: float | None = WHITEN_REG) -> Inspector:
    """One inspector for several product types: an inspector per type (``build_inspector`` on its
    own good and held-out images: ``good_class``/``val_class`` index ``class_names``), held as the
    ``members`` of one (see ``Inspector``). The card lists the types with their thresholds and
    warns when held-out images of one type were taken for another (the types look alike)."""
    from oculi.perception.patches import INPUT_SIZE

    backend = backend or default_backend(settings)
    t0 = time.perf_counter()
    members: list[Inspector] = []
    samples: list[list[np.ndarray]] = []  # per type: its held-out images' routing samples
    for i, name in enumerate(class_names):
        g = [p for p, k in zip(good, good_class) if k == i]
        v = [p for p, k in zip(val, val_class) if k == i]
        samples.append([])
        try:
            members.append(build_inspector(g, v, settings=settings, backend=backend, percentile=percentile, val_source=val_source,
                                           progress=progress, whiten=whiten, val_samples=samples[-1]))
        except InputError as e:
            raise InputError(f"type {name!r}: {e}") from None
    cards: list[InspectorCard] = []
    for m in members:
        assert m.card is not None
        cards.append(m.card)
    insp = Inspector(np.zeros((0, members[0].bank.shape[1]), np.float32), 0.0, 0.0, INPUT_SIZE, None,
                     members=members, type_names=list(class_names))
    warnings = [f"type {n!r}: {w}" for n, c in zip(class_names, cards) for w in c.warnings]
    skipped = [s for c in cards for s in c.skipped]
    val_scores: list[float] = []
    for i, name in enumerate(class_names):  # are the held-out images of each type taken for it?
        kinds = insp.route(np.concatenate(samples[i]))
        wrong = Counter(class_names[k] for k in kinds if k != i)
        if wrong:
            warnings.append(f"{sum(wrong.values())} of {len(kinds)} held-out images of type {name!r} were taken for "
                            f"{', '.join(repr(w) for w in wrong)}: the types look alike; fit them as separate inspectors")
    classes = []
    for name, m, c in zip(class_names, members, cards):
        val_scores += c.val_scores
        classes.append({"name": name, "n_fit": c.n_fit, "n_val": c.n_val, "bank_size": c.bank_size, "score_ref": c.score_ref,
                        "threshold_raw": c.threshold_raw, "threshold": c.threshold, "patch_ref": m.patch_ref,
                        "whitening": c.whitening, "val_scores": c.val_scores})
    first = cards[0]
    ref = float(np.median([c.score_ref for c in cards]))
    sizes = Counter(c.image_size for c in cards)
    insp.score_ref, insp.threshold_raw = ref, float(np.median([c.threshold_raw for c in cards]))
    insp.card = InspectorCard(
        name="", version=0, path="", backbone=first.backbone, input_size=INPUT_SIZE, feature_dim=first.feature_dim,
        n_good=sum(c.n_good for c in cards), n_fit=sum(c.n_fit for c in cards), n_val=sum(c.n_val for c in cards),
        val_source=val_source, bank_size=sum(c.bank_size for c in cards), patches_seen=sum(c.patches_seen for c in cards),
        coreset_ratio=first.coreset_ratio, coreset_radius=max(c.coreset_radius for c in cards),
        bank_full=any(c.bank_full for c in cards), percentile=percentile,
        threshold=round(insp.threshold_raw / (insp.threshold_raw + ref), 4), threshold_raw=insp.threshold_raw, score_ref=ref,
        val_scores=val_scores, image_size=sizes.most_common(1)[0][0], fit_seconds=round(time.perf_counter() - t0, 2),
        warnings=warnings, skipped=skipped, whitening=first.whitening, classes=classes)
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


def _split_types(good_dir: Path, val_dir: Path | None, holdout: float) -> dict[str, Any]:
    """``build_inspector``'s arguments for a good folder with one subfolder per product type."""
    if not good_dir.is_dir():
        raise InputError(f"good folder {good_dir} does not exist or is not a folder")
    types = [d for d in sorted(good_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    loose = [p for p in good_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if len(types) < 2:
        raise InputError(f"--classes needs one subfolder of {good_dir} per product type, at least two; found {len(types)}")
    if loose:
        raise InputError(f"with --classes every good image must sit in its type's subfolder; {len(loose)} lie directly in {good_dir} "
                         f"(e.g. {loose[0].name})")
    good: list[Path] = []
    val: list[Path] = []
    gk: list[int] = []
    vk: list[int] = []
    for i, d in enumerate(types):
        files = list_images(d, f"good ({d.name})")
        if val_dir is not None:
            if not (val_dir / d.name).is_dir():
                raise InputError(f"--val {val_dir} has no subfolder {d.name!r}; with --classes it needs one per type")
            g, v = files, list_images(val_dir / d.name, f"validation ({d.name})")
        else:
            try:
                g, v = split_good(files, holdout)
            except InputError as e:
                raise InputError(f"type {d.name!r}: {e}") from None
        good += g
        gk += [i] * len(g)
        val += v
        vk += [i] * len(v)
    source = f"--val {val_dir}, per type" if val_dir is not None else f"{len(val)} of {len(good) + len(val)} images held out, evenly within each type"
    return {"good": good, "val": val, "class_names": [d.name for d in types], "good_class": gk, "val_class": vk,
            "val_source": source}


def fit_inspector(good_dir: str | Path, name: str, *, settings: Any, val_dir: str | Path | None = None,
                  progress: ProgressFn | None = None, percentile: float = DEFAULT_PERCENTILE,
                  holdout: float = DEFAULT_HOLDOUT, backend: PatchFeatures | None = None,
                  whiten: float | None = WHITEN_REG, classes: bool = False) -> InspectorCard:
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
        classes: Each subfolder of ``good_dir`` is one product type (``--classes``): one inspector
            for all of them, each type with its own threshold (``build_inspector``); ``val_dir``,
            when given, has the same subfolders.

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
    if classes:
        kw = _split_types(Path(good_dir), None if val_dir is None else Path(val_dir), holdout)
        insp = build_typed_inspector(kw.pop("good"), kw.pop("val"), kw.pop("class_names"), kw.pop("good_class"), kw.pop("val_class"),
                                     settings=settings, backend=backend, percentile=percentile, progress=progress, whiten=whiten, **kw)
    else:
        files = list_images(good_dir, "good")
        if val_dir is not None:
            good, val = files, list_images(val_dir, "validation")
            if len(good) < 1:
                raise InputError("no good images to fit on")
            source = f"--val {val_dir}"
        else:
            good, val = split_good(files, holdout)
            source = f"{len(val)} of {len(files)} images of the good folder, held out"
        insp = build_inspector(good, val, settings=settings, backend=backend, percentile=percentile, val_source=source,
                               progress=progress, whiten=whiten)
    card = insp.card
    assert card is not None
    store = TrainedStore.for_home(settings.home)
    doc = card.to_dict()
    folder = store.root / name
    taken = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_RE.fullmatch(p.name))] if folder.is_dir() else []
    text = InspectorCard.from_dict(doc, name=name, version=max(taken, default=0) + 1, path="").to_markdown()  # save's numbering
    files: dict[str, bytes] = {CARD_FILE: text.encode("utf-8")}
    for i, m in enumerate(insp.members or [insp]):
        suffix = str(i) if insp.members else ""
        files[type_file(BANK_FILE, suffix)] = bank_bytes(m.bank)
        if m.whitening is not None:
            files[type_file(WHITEN_FILE, suffix)] = m.whitening.to_bytes()
    t = store.save(name, TrainedKind.INSPECTOR, files,
                   {"feature_space": f"{card.backbone}/{card.input_size}", "card": doc,
                    "metrics": {"threshold": card.threshold, "bank_size": card.bank_size, "n_good": card.n_good}})
    final = InspectorCard.from_dict(doc, name=t.name, version=t.version, path=str(t.path))
    return final
