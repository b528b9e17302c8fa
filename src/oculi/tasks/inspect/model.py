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

ROUTE_STEP = 4  # an inspector of several types picks the type from every 4th patch each way (Inspector)
SIGMA_PX = 1.0  # smoothing of the anomaly map at the 224-pixel input grid (module doc)
BANK_FILE = "bank.npy"
CARD_FILE = "card.md"


class PatchFeatures(Protocol):
    """What inspection needs of a backend: ``patch_features(images) -> [N, h, w, C]``."""

    def patch_features(self, images: Sequence[Any]) -> np.ndarray: ...


def smooth_map(dist: np.ndarray, size: int) -> np.ndarray:
    """A ``[h, w]`` patch-distance map upsampled to ``size x size`` and smoothed: ``[size, size]``."""
    import cv2

    up = cv2.resize(dist.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(up, (0, 0), SIGMA_PX)


def resize_map(m: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(m.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def route_sample(feats: np.ndarray) -> np.ndarray:
    """Every ``ROUTE_STEP``-th patch each way (1/16 of them): ``[N, h, w, C]`` → ``[N, h/4, w/4, C]``."""
    return np.ascontiguousarray(feats[:, ::ROUTE_STEP, ::ROUTE_STEP])


def patch_distances(feats: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Nearest-bank-patch distance of every patch: ``[N, h, w, C]`` → ``[N, h, w]``."""
    n, h, w, c = feats.shape
    d = min_sq_distances(np.ascontiguousarray(feats.reshape(-1, c), dtype=np.float32), bank)
    return np.sqrt(d).reshape(n, h, w)


@dataclass
class Inspector:
    """A memory bank and the numbers that turn distances into scores.

    An inspector of several product types (``fit_inspector(classes=True)``) holds one inspector
    per type in ``members`` (each its own bank, whitening, score scale and threshold) and no bank
    of its own: an image is measured against every type, taken for the type whose good patches
    explain it best (the lowest median patch distance, in units of that type's held-out good
    images' ``patch_ref``), and scored as that type. The type is picked from a 1/16 sample of the
    patches (every ``ROUTE_STEP``-th each way) searched in every type's bank; then all patches
    are searched in the chosen type's bank only.
    """

    bank: np.ndarray  # [b, C] float32 (empty for an inspector of several types)
    score_ref: float
    threshold_raw: float
    input_size: int
    card: InspectorCard | None = None
    whitening: Whitening | None = None  # maps new patches into the bank's space (None: raw features)
    members: list["Inspector"] | None = None  # several product types: one inspector each
    type_names: list[str] | None = None
    patch_ref: float = 1.0  # median over held-out good images of their median patch distance (routing scale)

    @property
    def feature_dim(self) -> int:
        return int(self.members[0].bank.shape[1] if self.members else self.bank.shape[1])

    def distances(self, feats: np.ndarray) -> np.ndarray:
        """``[N, h, w, C]`` patch features → nearest-bank-patch distances ``[N, h, w]``."""
        return self.distances_and_types(feats)[0]

    def distances_and_types(self, feats: np.ndarray) -> tuple[np.ndarray, list[int | None]]:
        """Distances ``[N, h, w]`` and each image's product type (index into ``members``; None
        for an inspector of one type)."""
        if not self.members:
            q = self.whitening(feats) if self.whitening is not None else feats
            return patch_distances(q, self.bank), [None] * len(feats)
        kinds = self.route(route_sample(feats))
        dist = np.zeros(feats.shape[:3], np.float32)
        for k in set(kinds):  # then every patch against its type only
            rows = [i for i, kk in enumerate(kinds) if kk == k]
            dist[rows] = self.members[k].distances(feats[rows])
        return dist, kinds

    def route(self, samples: np.ndarray) -> list[int]:
        """Each image's product type from a sample of its patches (``route_sample``): the type
        whose bank explains them best, by median patch distance in that type's ``patch_ref`` units."""
        assert self.members
        fit = np.stack([np.median(m.distances(samples).reshape(len(samples), -1), axis=1) / m.patch_ref for m in self.members])  # [K, N]
        return [int(k) for k in fit.argmin(axis=0)]

    def raw_maps(self, feats: np.ndarray) -> np.ndarray:
        """``[N, h, w, C]`` patch features → smoothed raw maps ``[N, input, input]``."""
        return self.maps_and_types(feats)[0]

    def maps_and_types(self, feats: np.ndarray) -> tuple[np.ndarray, list[int | None]]:
        """Smoothed raw maps ``[N, input, input]`` and each image's product type (``distances_and_types``)."""
        dist, kinds = self.distances_and_types(feats)
        maps = np.stack([smooth_map(d, self.input_size) for d in dist]) if len(dist) else np.zeros((0, self.input_size, self.input_size), np.float32)
        return maps, kinds

    def scale(self, k: int | None) -> "Inspector":
        """The inspector whose score scale and threshold apply to product type ``k`` (itself when None)."""
        return self if k is None or not self.members else self.members[k]

    def type_name(self, k: int | None) -> str | None:
        return None if k is None or not self.type_names else self.type_names[k]

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
    card = InspectorCard.from_dict(t.manifest["card"], name=t.name, version=t.version, path=str(t.path))

    def one(suffix: str, score_ref: float, threshold_raw: float, whitened: bool, patch_ref: float) -> Inspector:
        bank = np.load(t.file(type_file(BANK_FILE, suffix)), allow_pickle=False).astype(np.float32)
        whitening = Whitening.load(t.file(type_file(WHITEN_FILE, suffix))) if whitened else None
        return Inspector(bank, score_ref, threshold_raw, card.input_size, card, whitening, patch_ref=patch_ref)

    if card.classes:
        members = [one(str(i), c["score_ref"], c["threshold_raw"], c.get("whitening") is not None, c.get("patch_ref", 1.0))
                   for i, c in enumerate(card.classes)]
        insp = Inspector(np.zeros((0, card.feature_dim), np.float32), card.score_ref, card.threshold_raw, card.input_size, card,
                         members=members, type_names=[c["name"] for c in card.classes])
    else:
        insp = one("", card.score_ref, card.threshold_raw, card.whitening is not None, 1.0)
    while len(_CACHE) >= 4:  # a bank can be tens of MB: keep the last few
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = insp
    return insp


def type_file(name: str, suffix: str) -> str:
    """``bank.npy`` → ``bank-0.npy``: a product type's own file in an inspector of several types."""
    if not suffix:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}-{suffix}{dot}{ext}"


def card_path(card: InspectorCard) -> Path:
    return Path(card.path) / CARD_FILE
