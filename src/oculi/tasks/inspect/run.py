"""``inspect_images``: score images against a fitted inspector; regions, heat-maps, findings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oculi.core.errors import InputError, OculiError
from oculi.tasks.inspect.fit import BATCH, ProgressFn, aspect_problem, default_backend
from oculi.tasks.inspect.model import Inspector, PatchFeatures, load_inspector, resize_map
from oculi.tasks.inspect.regions import find_regions, finding_line
from oculi.tasks.inspect.results import InspectResult
from oculi.tasks.train.progress import TrainProgress

log = logging.getLogger(__name__)



def _size_warning(size: tuple[int, int], expected: tuple[int, int]) -> str | None:
    if size != expected:
        return (f"image is {size[0]}x{size[1]} but the good images were {expected[0]}x{expected[1]}; "
                "it was resized to compare, so a different framing or scale shows up as anomalies")
    return None


def score_images(insp: Inspector, images: Sequence[Any], names: Sequence[str], backend: PatchFeatures,
                 heatmaps_dir: Path | None = None, written: set[str] | None = None) -> list[InspectResult]:
    """Score decoded RGB images (already checked) with an inspector: one ``InspectResult`` each.

    ``written``: heat-map paths already written by this run (a later image with the same file
    stem gets ``stem-2.heatmap.png``)."""
    from oculi.draw import heatmap_overlay

    made_with, now = (insp.card.backbone if insp.card else None), getattr(backend, "name", None)
    if made_with and now and made_with != now:
        from oculi.core.errors import ModelAssetError

        who = insp.card.name if insp.card else "the inspector"
        raise ModelAssetError(f"{who} was fitted with other patch features ({made_with}) than this version of oculi "
                              f"computes ({now}); fit it again: `oculi inspect fit --good DIR --name {who}`")
    feats = backend.patch_features(list(images))  # [N, h, w, C]
    if feats.shape[-1] != insp.feature_dim:
        from oculi.core.errors import ModelAssetError

        who = insp.card.name if insp.card else "the inspector"
        raise ModelAssetError(f"{who} was fitted with other patch features ({insp.feature_dim}-d, "
                              f"{insp.card.backbone if insp.card else '?'}) than this backend gives ({feats.shape[-1]}-d); "
                              f"fit it again: `oculi inspect fit --good DIR --name {who}`")
    raw, kinds = insp.maps_and_types(feats)  # [N, S, S], each image's product type (None: one type)
    written = written if written is not None else set()
    out = []
    for im, name, m, k in zip(images, names, raw, kinds):
        scale = insp.scale(k)  # the type's own score scale and threshold
        thr = scale.threshold
        raw_score = float(m.max())
        score = float(scale.normalise(raw_score))
        passed = score < thr
        w, h = im.size
        heat = np.clip(scale.normalise(resize_map(m, w, h)), 0.0, 1.0).astype(np.float32)  # [H, W]
        regions = [] if passed else find_regions(np.asarray(im.convert("RGB")), heat, min(thr, float(heat.max())))
        res = InspectResult(path=name, score=score, threshold=thr, passed=passed, regions=regions, heatmap=heat,
                            finding=finding_line(regions, score, thr, passed), raw_score=raw_score,
                            model=f"{insp.card.name} v{insp.card.version}" if insp.card else "",
                            part_class=insp.type_name(k))
        if heatmaps_dir is not None:
            heatmaps_dir.mkdir(parents=True, exist_ok=True)
            dest = heatmaps_dir / f"{Path(name).stem}.heatmap.png"
            k = 1
            while str(dest) in written:  # two inputs with one stem (a/part.png, b/part.png): keep both
                k += 1
                dest = heatmaps_dir / f"{Path(name).stem}-{k}.heatmap.png"
            written.add(str(dest))
            heatmap_overlay(im, heat, [r.box for r in regions], floor=thr).save(dest)
            res.heatmap_path = str(dest)
        out.append(res)
    return out


def inspect_images(paths: Sequence[Any], name: str, *, settings: Any, progress: ProgressFn | None = None,
                   heatmaps_dir: str | Path | None = None, errors: list[tuple[str, str]] | None = None,
                   backend: PatchFeatures | None = None) -> list[InspectResult]:
    """Inspect images with the fitted inspector ``name``.

    Args:
        paths: Image paths, or ``(name, PIL.Image)`` pairs (uploads).
        name: The inspector (``oculi inspect fit --name``).
        settings: ``oculi.Settings``.
        progress: Called with ``TrainProgress("inspecting", done, total)``.
        heatmaps_dir: Write a heat-map overlay PNG per image here (``InspectResult.heatmap_path``).
        errors: When given, an unusable image (unreadable, or shaped unlike the good images) is
            recorded here as ``(path, message)`` and the rest are still inspected; when None the
            first one raises.
        backend: Anything with ``patch_features``; default the built-in one.

    Returns:
        One ``InspectResult`` per usable image, in order.

    Raises:
        NotFoundError: no inspector of that name. InputError: a bad image (when ``errors`` is None).

    Example:
        >>> r = inspect_images(["part.png"], "line-1", settings=Settings())[0]  # doctest: +SKIP
        >>> r.passed, r.finding  # doctest: +SKIP
        (False, 'dark linear anomaly, upper left, 2.1 % of the area; score 0.91 vs threshold 0.55')
    """
    from oculi.imageio import load_image

    insp = load_inspector(name, settings)
    card = insp.card
    assert card is not None
    backend = backend or default_backend(settings)
    hdir = Path(heatmaps_dir) if heatmaps_dir is not None else None
    results: list[InspectResult] = []
    pending: list[tuple[str, Any, list[str]]] = []
    written: set[str] = set()

    def flush() -> None:
        if not pending:
            return
        res = score_images(insp, [p[1] for p in pending], [p[0] for p in pending], backend, hdir, written)
        for r, (_, _, warns) in zip(res, pending):
            r.warnings.extend(warns)
        results.extend(res)
        pending.clear()

    def fail(label: str, e: OculiError) -> None:
        if errors is None:
            raise e
        log.info("%s: %s", label, e)
        errors.append((label, str(e)))

    for i, item in enumerate(paths):
        if isinstance(item, tuple):
            label, im = str(item[0]), item[1].convert("RGB")
        else:
            label = str(item)
            try:
                im = load_image(item, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels).image
            except OculiError as e:
                fail(label, e)
                continue
        problem = aspect_problem(im.size, card.image_size)
        if problem:
            fail(label, InputError(f"{label}: cannot be inspected with {card.name!r}: {problem}"))
            continue
        warns = [w for w in (_size_warning(im.size, card.image_size),) if w]
        pending.append((label, im, warns))
        if len(pending) >= BATCH:
            flush()
        if progress:
            progress(TrainProgress("inspecting", i + 1, len(paths), ""))
    flush()
    return results


def inspect_image(path: Any, name: str, *, settings: Any, **kw: Any) -> InspectResult:
    """One image (see ``inspect_images``)."""
    return inspect_images([path], name, settings=settings, **kw)[0]


__all__ = ["inspect_images", "inspect_image", "score_images"]
