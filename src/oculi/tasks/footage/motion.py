"""Motion gating: run the detector only when the picture changed since it last ran.

A sampled frame is reduced to a grey grid of ``CELL``-pixel block means; it "moved" when more
than ``min_area`` of the cells differ by more than ``cell_threshold`` grey levels from the grid
of the last frame the detector saw. Comparing with the last *detected* frame (not the previous
one) means slow changes add up until they count, and a person standing still keeps the
detections the detector last made of them — the tracker carries them forward, so a loiterer
standing still is still there. The detector also runs at least every ``keepalive`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CELL = 8  # pixels per grid cell side (at analysis size)


def grid(image: np.ndarray, cell: int = CELL) -> np.ndarray:
    """Block means of the green channel (most of luminance) sampled every other pixel,
    ``[H/cell, W/cell]`` float32: 1/8 of the work of a full grey image, the same decisions."""
    g = image[::2, ::2, 1] if image.ndim == 3 else image[::2, ::2]
    c = max(1, cell // 2)
    h, w = (g.shape[0] // c) * c, (g.shape[1] // c) * c
    return g[:h, :w].reshape(h // c, c, w // c, c).mean(axis=(1, 3), dtype=np.float32)


@dataclass
class MotionGate:
    """Decides, frame by frame, whether the detector must run.

    Attributes:
        cell_threshold: Grey levels a cell's mean must change by to count.
        min_area: Fraction of cells that must change (0.002: a person 1/10 of the frame high).
        keepalive: Seconds after which the detector runs even on a still picture.
    """

    cell_threshold: float = 10.0
    min_area: float = 0.002
    keepalive: float = 10.0
    _ref: np.ndarray | None = field(default=None, repr=False)
    _ref_t: float = -1e18
    _last: np.ndarray | None = field(default=None, repr=False)

    def changed(self, image: np.ndarray, t: float) -> tuple[bool, float]:
        """``(run the detector?, fraction of cells changed)``. Call ``accept`` when it ran."""
        g = self._last = grid(image)
        if self._ref is None or self._ref.shape != g.shape:
            return True, 1.0
        frac = float(np.mean(np.abs(g - self._ref) > self.cell_threshold))
        return (frac >= self.min_area or t - self._ref_t >= self.keepalive), frac

    def accept(self, image: np.ndarray, t: float) -> None:
        """The detector ran on this frame: it is the new reference (the grid ``changed`` just
        made of it is reused)."""
        self._ref = self._last if self._last is not None else grid(image)
        self._ref_t = t
        self._last = None
