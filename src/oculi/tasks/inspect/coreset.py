"""A bounded PatchCore memory bank: random projection + greedy k-center, fed as a stream.

PatchCore keeps a coreset of the good images' patch features, chosen by greedy k-center
(farthest-point) selection so that every patch seen lies within a small radius of a kept one.
Run over every patch at once (anomalib's ``KCenterGreedy``) its cost is ``k * n * d`` and its
memory ``n * d``: with a few thousand images, ``n`` is millions and the selection takes hours,
and the bank grows in proportion to the images. Here:

1. Distances are measured in a fixed Gaussian random projection to 128 dimensions
   (Johnson-Lindenstrauss; PatchCore does the same), so one greedy step reads ``n x 128``
   floats.
2. The first ``seed_patches`` patches are reduced to ``ratio`` of themselves by greedy k-center;
   the distance at which it stopped is the bank's covering radius ``r``.
3. Every later batch of patches is compared with the bank; only patches farther than ``r`` from
   every kept patch are candidates, and greedy k-center adds candidates until every one of them
   is again within ``r`` (plus 5 %, so that noise on a patch seen before adds nothing). Images that look like the ones already seen add (almost) nothing, so
   the bank grows with the variety of the good images, not with their number, and never past
   ``max_bank``; memory is bounded by the seed pool.
4. With ``whiten`` set, the seed pool also fixes a whitening of the features
   (``oculi.tasks.inspect.whiten``): the pool, every later batch and ``features()`` are in the
   whitened space, and ``whitening`` is kept to map new images' patches into it.

The result is a k-center cover of the whole stream at radius ``r`` (up to the projection), the
same guarantee the one-shot greedy gives at the seed's ratio, in time linear in the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    from oculi.tasks.inspect.whiten import Whitening

PROJ_DIM = 128
SLACK_SQ = 1.05**2  # a later patch is new when 5 % farther than the seed's covering radius


def greedy_k_center(x: np.ndarray, k: int, *, min_sq: np.ndarray | None = None, stop_sq: float = -1.0,
                    first: int = 0) -> tuple[np.ndarray, float]:
    """Farthest-point selection.

    Args:
        x: ``[n, d]`` float32 points.
        k: At most this many to pick.
        min_sq: ``[n]`` squared distance of each point to centres chosen before (None: none yet;
            then ``first`` is the first centre).
        stop_sq: Stop once every point is within this squared distance of a centre.
        first: The first centre when there are none yet.

    Returns:
        ``(indices into x, squared covering radius after the selection)``.
    """
    n = x.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), float(min_sq.max()) if min_sq is not None and len(min_sq) else 0.0
    norms = np.einsum("ij,ij->i", x, x)  # [n]
    chosen: list[int] = []
    if min_sq is None:
        min_sq = np.full(n, np.inf, dtype=np.float32)
        i = int(first)
    else:
        min_sq = min_sq.astype(np.float32, copy=True)
        i = int(np.argmax(min_sq))
    for _ in range(min(k, n)):
        if min_sq[i] <= stop_sq:
            break
        chosen.append(i)
        d = norms - 2.0 * (x @ x[i]) + norms[i]  # [n]
        np.minimum(min_sq, d, out=min_sq)
        min_sq[i] = 0.0
        i = int(np.argmax(min_sq))
    return np.asarray(chosen, dtype=np.int64), float(max(min_sq[i], 0.0))


def min_sq_distances(q: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Squared distance from each row of ``q [m, d]`` to its nearest row of ``bank [b, d]``: ``[m]``."""
    if bank.shape[0] == 0:
        return np.full(q.shape[0], np.inf, dtype=np.float32)
    bn = np.einsum("ij,ij->i", bank, bank)  # [b]
    out = np.empty(q.shape[0], dtype=np.float32)
    for s in range(0, q.shape[0], chunk):
        part = q[s : s + chunk]
        d = np.einsum("ij,ij->i", part, part)[:, None] - 2.0 * (part @ bank.T) + bn[None, :]  # [c, b]
        out[s : s + chunk] = np.maximum(d.min(axis=1), 0.0)
    return out


@dataclass
class MemoryBank:
    """Builds the bank from a stream of patch-feature batches (``add``), then ``features``.

    Args:
        dim: Feature dimension.
        ratio: Share of the seed patches kept (PatchCore's coreset ratio; 0.1 here).
        seed_patches: Patches pooled before the first greedy selection (bounds memory).
        max_bank: Hard cap on kept patches.
        seed: Random seed of the projection and the first centre.
    """

    dim: int
    ratio: float = 0.1
    seed_patches: int = 30_000
    max_bank: int = 20_000
    seed: int = 0
    patches_seen: int = 0
    radius_sq: float | None = None  # set once the seed pool is reduced
    full: bool = False  # max_bank was reached: later patches may lie outside the radius
    whiten: float | None = None  # whitening regularisation (None: the bank is in the raw feature space)
    whitening: "Whitening | None" = None  # fitted on the seed pool when ``whiten`` is set
    _pool: list[np.ndarray] = field(default_factory=list)
    _bank: list[np.ndarray] = field(default_factory=list)
    _bank_proj: np.ndarray | None = None

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.projection = (rng.standard_normal((self.dim, PROJ_DIM)) / np.sqrt(PROJ_DIM)).astype(np.float32)

    def add(self, patches: np.ndarray) -> None:
        """Feed ``[m, dim]`` patch features (several images' worth at a time is fastest)."""
        patches = np.ascontiguousarray(patches, dtype=np.float32).reshape(-1, self.dim)
        self.patches_seen += patches.shape[0]
        if self.radius_sq is None:
            self._pool.append(patches)
            if sum(p.shape[0] for p in self._pool) >= self.seed_patches:
                self._reduce_seed()
            return
        self._extend(patches)

    def _reduce_seed(self) -> None:
        pool = np.concatenate(self._pool)
        self._pool = []
        if self.whiten is not None:
            from oculi.tasks.inspect.whiten import Whitening

            self.whitening = Whitening.fit(pool, self.whiten)
            if self.whitening is not None:
                pool = self.whitening(pool)
        proj = pool @ self.projection  # [n, 128]
        k = min(self.max_bank, max(1, int(np.ceil(self.ratio * pool.shape[0]))))
        idx, r_sq = greedy_k_center(proj, k)
        self.radius_sq = r_sq
        self.full = len(idx) >= self.max_bank
        self._bank = [pool[idx]]
        self._bank_proj = proj[idx]

    def _extend(self, patches: np.ndarray) -> None:
        assert self._bank_proj is not None and self.radius_sq is not None
        room = self.max_bank - self._bank_proj.shape[0]
        if self.whitening is not None:
            patches = self.whitening(patches)
        proj = patches @ self.projection
        d = min_sq_distances(proj, self._bank_proj)
        limit = self.radius_sq * SLACK_SQ
        far = np.nonzero(d > limit)[0]
        if far.size == 0:
            return
        if room <= 0:
            self.full = True
            return
        idx, _ = greedy_k_center(proj[far], room, min_sq=d[far], stop_sq=limit)
        if len(idx) >= room:
            self.full = True
        pick = far[idx]
        self._bank.append(patches[pick])
        self._bank_proj = np.concatenate([self._bank_proj, proj[pick]])

    def features(self) -> np.ndarray:
        """The kept patch features ``[b, dim]`` float32, whitened when ``whitening`` is set
        (reduces a seed pool still open)."""
        if self.radius_sq is None:
            if not self._pool:
                return np.zeros((0, self.dim), dtype=np.float32)
            self._reduce_seed()
        return np.concatenate(self._bank)

    @property
    def radius(self) -> float:
        """The covering radius in the projected space (0 before the seed is reduced)."""
        return float(np.sqrt(self.radius_sq or 0.0))


def build_bank(batches: Iterable[np.ndarray], dim: int, **kw: float) -> MemoryBank:
    """A ``MemoryBank`` fed with every batch."""
    bank = MemoryBank(dim, **kw)  # type: ignore[arg-type]
    for b in batches:
        bank.add(b)
    return bank
