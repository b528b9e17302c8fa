"""The fitted inspector in memory: its memory bank, its calibration, and scoring.

Scoring a patch is its Euclidean distance to the nearest patch in the bank (PatchCore), both
whitened with the good patches' covariance (``oculi.tasks.inspect.whiten``; inspectors fitted
before it was added have no whitening and keep their plain distances). The
``[28, 28]`` patch map is upsampled to the 224-pixel input grid and smoothed lightly (Gaussian,
sigma 1 px; PatchCore uses 4 px, which on the benchmark flattened the peaks of defects a few
pixels wide: image AUROC 0.925 at 1 px vs 0.897 at 4 px, see ``oculi.perception.patches``);
the image's raw score is that map's maximum. Scores are reported as
``raw / (raw + ref)`` with ``ref`` the median raw score of the held-out good images, so a typical
good part scores about 0.5 on every model and the threshold is comparable across models.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from oculi.tasks.inspect.coreset import min_sq_distances
from oculi.tasks.inspect.results import InspectorCard
from oculi.tasks.inspect.whiten import WHITEN_FILE, Whitening

log = logging.getLogger(__name__)

SIGMA_PX = 1.0  # smoothing of the anomaly map at the 224-pixel input grid (module doc)
BANK_FILE = "bank.npy"
CARD_FILE = "card.md"


class PatchFeatures(Protocol):
    """What inspection needs of a backend: ``patch_features(images) -> [N, h, w, C]``."""

    def patch_features(self, images: Sequence[Any]) -> np.ndarray: ...


def patch_distances(feats: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Nearest-bank-patch distance of every patch: ``[N, h, w, C]`` → ``[N, h, w]``."""
    n, h, w, c = feats.shape
    d = min_sq_distances(feats.reshape(-1, c), bank)
    return np.sqrt(d).reshape(n, h, w)


def smooth_map(dist: np.ndarray, size: int) -> np.ndarray:
    """A ``[h, w]`` patch-distance map upsampled to ``size x size`` and smoothed: ``[size, size]``."""
    import cv2

    up = cv2.resize(dist.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(up, (0, 0), SIGMA_PX)


def resize_map(m: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(m.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass
class Inspector:
    """A memory bank and the numbers that turn distances into scores."""

    bank: np.ndarray  # [b, C] float32
    score_ref: float
    threshold_raw: float
    input_size: int
    card: InspectorCard | None = None
    whitening: Whitening | None = None  # maps new patches into the bank's space (None: raw features)

    def distances(self, feats: np.ndarray) -> np.ndarray:
        """``[N, h, w, C]`` patch features → nearest-bank-patch distances ``[N, h, w]``."""
        return patch_distances(self.whitening(feats) if self.whitening is not None else feats, self.bank)

    def raw_maps(self, feats: np.ndarray) -> np.ndarray:
        """``[N, h, w, C]`` patch features → smoothed raw maps ``[N, input, input]``."""
        dist = self.distances(feats)
        return np.stack([smooth_map(d, self.input_size) for d in dist]) if len(dist) else np.zeros((0, self.input_size, self.input_size), np.float32)

    def normalise(self, raw: np.ndarray | float) -> Any:
        return raw / (raw + self.score_ref)

    @property
    def threshold(self) -> float:
        return float(self.normalise(self.threshold_raw))


def bank_bytes(bank: np.ndarray) -> bytes:
    """The bank as an ``.npy`` file in float16 (half the size; distances change < 1e-3)."""
    buf = io.BytesIO()
    np.save(buf, bank.astype(np.float16), allow_pickle=False)
    return buf.getvalue()


_CACHE: dict[tuple[str, int], Inspector] = {}


def load_inspector(name: str, settings: Any) -> Inspector:
    """The newest version of inspector ``name`` under ``settings.home/models``, verified.

    Raises:
        NotFoundError: no such model (lists the trained ones).
        InputError: the model is not an inspector.
        ModelAssetError: damaged (names how to fit it again).
    """
    from oculi.core.errors import InputError
    from oculi.store.trained import TrainedKind, TrainedStore

    t = TrainedStore.for_home(settings.home).load(name)
    if t.kind != TrainedKind.INSPECTOR:
        raise InputError(f"model {name!r} is a {t.kind}, not an inspector; fit one with `oculi inspect fit --good DIR --name NAME`")
    key = (str(t.path), t.version)
    if key in _CACHE:
        return _CACHE[key]
    bank = np.load(t.file(BANK_FILE), allow_pickle=False).astype(np.float32)
    card = InspectorCard.from_dict(t.manifest["card"], name=t.name, version=t.version, path=str(t.path))
    whitening = Whitening.load(t.file(WHITEN_FILE)) if card.whitening is not None else None
    insp = Inspector(bank, card.score_ref, card.threshold_raw, card.input_size, card, whitening)
    while len(_CACHE) >= 4:  # a bank can be tens of MB: keep the last few
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = insp
    return insp


def card_path(card: InspectorCard) -> Path:
    return Path(card.path) / CARD_FILE
