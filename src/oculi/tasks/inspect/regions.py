"""Defect regions from an anomaly map, described only by what is measured in the image.

A region is a connected component of the map at or above the threshold. Its words:

* tone: the region's pixels whose grey level differs from the ring around the region by more
  than ``max(2.5 x the ring's standard deviation, 10)`` are its *deviating* pixels; when there
  are enough of them, ``dark`` or ``bright`` by the sign of their mean difference (``contrast``),
  or ``light-and-dark`` when neither sign has 65 %. Otherwise ``discoloured`` when its colour is
  off the ring's by more than 3 standard deviations, else ``smooth`` / ``rough`` when its
  texture (grey-level standard deviation) is under 0.6 / over 1.6 times the ring's;
* shape, from the second moments of the deviating pixels (or of the region when too few
  deviate): ``linear`` when the elongation is 3 or more, ``elongated`` from 1.8, else ``compact``;
* position: the third of the image (rows: upper / middle / lower; columns: left / centre /
  right) its centre of mass falls in.
"""

from __future__ import annotations

import numpy as np

from oculi.tasks.inspect.results import DefectRegion

MIN_AREA_FRACTION = 0.0005  # smaller components are noise of the thresholding
_ROWS = ("upper", "middle", "lower")
_COLS = ("left", "centre", "right")


def position_words(cy: float, cx: float, height: int, width: int) -> str:
    r = _ROWS[min(2, int(3 * cy / max(height, 1)))]
    c = _COLS[min(2, int(3 * cx / max(width, 1)))]
    if r == "middle":
        return "centre" if c == "centre" else f"middle {c}"
    return f"{r} {c}"


def _elongation(ys: np.ndarray, xs: np.ndarray) -> float:
    if len(ys) < 3:
        return 1.0
    cov = np.cov(np.stack([xs.astype(np.float64), ys.astype(np.float64)]))
    ev = np.sort(np.linalg.eigvalsh(cov + np.eye(2) * 1e-6))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-6)))


def _describe(rgb: np.ndarray, grey: np.ndarray, comp: np.ndarray, above: np.ndarray) -> tuple[str, float, float]:
    from scipy import ndimage

    h, w = grey.shape
    grow = max(3, int(0.03 * min(h, w)))
    ring = ndimage.binary_dilation(comp, iterations=grow) & ~above
    if ring.sum() < 20:
        ring = ~above
    if ring.sum() < 20:  # the whole image is anomalous: nothing to compare with
        ys, xs = np.nonzero(comp)
        return "anomaly", 0.0, _elongation(ys, xs)
    ring_mean, ring_std = float(grey[ring].mean()), float(grey[ring].std())
    diff = grey - ring_mean
    dev = comp & (np.abs(diff) > max(2.5 * ring_std, 10.0))
    n_comp, n_dev = int(comp.sum()), int(dev.sum())
    tone = ""
    contrast = 0.0
    if n_dev >= max(8, 0.02 * n_comp):
        contrast = float(diff[dev].mean())
        dark = float((diff[dev] < 0).mean())
        tone = "dark" if dark >= 0.65 else "bright" if dark <= 0.35 else "light-and-dark"
        ys, xs = np.nonzero(dev)
    else:
        ys, xs = np.nonzero(comp)
        mean_rgb, ring_rgb = rgb[comp].mean(axis=0), rgb[ring].mean(axis=0)
        ring_rgb_std = float(np.linalg.norm(rgb[ring].std(axis=0))) + 1e-6
        inside_std = float(grey[comp].std())
        if float(np.linalg.norm(mean_rgb - ring_rgb)) > 3 * ring_rgb_std / np.sqrt(3):
            tone = "discoloured"
        elif inside_std < 0.6 * ring_std:
            tone = "smooth"
        elif inside_std > 1.6 * ring_std:
            tone = "rough"
        contrast = float(diff[comp].mean())
    elong = _elongation(ys, xs)
    shape = "linear" if elong >= 3 else "elongated" if elong >= 1.8 else "compact"
    return " ".join(w for w in (tone, shape, "anomaly") if w), contrast, elong


def find_regions(image_rgb: np.ndarray, heatmap: np.ndarray, threshold: float, *, max_regions: int = 10) -> list[DefectRegion]:
    """Regions of ``heatmap >= threshold`` in an ``[H, W, 3]`` uint8 image, highest peak first."""
    from scipy import ndimage

    h, w = heatmap.shape
    above = heatmap >= threshold
    labels, n = ndimage.label(above)
    if n == 0:
        return []
    rgb = image_rgb.astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    sizes = ndimage.sum_labels(above, labels, index=np.arange(1, n + 1))
    peaks = ndimage.maximum(heatmap, labels, index=np.arange(1, n + 1))
    keep = [i for i in np.argsort(-np.asarray(peaks)) if sizes[i] >= MIN_AREA_FRACTION * h * w]
    if not keep:  # the score is above the threshold: show where, however small
        keep = [int(np.argmax(peaks))]
    out = []
    for i in keep[:max_regions]:
        comp = labels == (i + 1)
        ys, xs = np.nonzero(comp)
        desc, contrast, elong = _describe(rgb, grey, comp, above)
        out.append(DefectRegion(
            box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
            area_fraction=float(sizes[i]) / (h * w), peak=float(peaks[i]),
            position=position_words(float(ys.mean()), float(xs.mean()), h, w),
            description=desc, contrast=contrast, elongation=elong))
    return out


def finding_line(regions: list[DefectRegion], score: float, threshold: float, passed: bool) -> str:
    """The one-line finding: the strongest region's words, where, how big; then score vs threshold."""
    tail = f"score {score:.2f} vs threshold {threshold:.2f}"
    if passed or not regions:
        return f"no anomaly above the threshold; {tail}"
    r = regions[0]
    pct = 100 * r.area_fraction
    area = f"{pct:.1f} % of the area" if pct >= 0.1 else "under 0.1 % of the area"
    more = f" (+{len(regions) - 1} more region{'s' if len(regions) > 2 else ''})" if len(regions) > 1 else ""
    return f"{r.description}, {r.position}, {area}{more}; {tail}"
