"""Near-duplicate images (visual cosine similarity) and identical files."""

from __future__ import annotations

import numpy as np

from oculi.core.errors import InputError
from oculi.store.base import Collection
from oculi.tasks.search.results import DuplicateGroup, DuplicatesReport

DUPLICATE_THRESHOLD = 0.95  # resized/recompressed/mirrored copies score >= 0.95 (docs/SEARCH.md)
DUPLICATE_EXACT_LIMIT = 40_000  # up to this many items duplicates are found by exact all-pairs


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def validate_threshold(threshold: float) -> float:
    """``threshold`` if it lies in (0, 1], else ``InputError``."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"--threshold must be in (0, 1], got {threshold}")
    return threshold


def find_duplicates(coll: Collection, *, threshold: float = DUPLICATE_THRESHOLD) -> DuplicatesReport:
    """Groups of near-duplicate images (visual cosine similarity ≥ ``threshold``) and of identical
    files. Exact all-pairs up to ``DUPLICATE_EXACT_LIMIT`` items, the ANN index above that."""
    validate_threshold(threshold)
    large = coll.count() > DUPLICATE_EXACT_LIMIT
    ids: list[str] = []
    mats: list[np.ndarray] = []
    for bid, mat in coll.iter_vectors("image_vec"):
        ids.extend(bid)
        mat = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        mats.append(mat.astype(np.float16) if large else mat)
    n = len(ids)
    uf = _UnionFind()
    best: dict[tuple[int, int], float] = {}
    if n:
        X = np.concatenate(mats)
        del mats
        if not large:
            step = 2048
            for s in range(0, n, step):
                sims = X[s : s + step] @ X.T  # [b, n]
                rows, cols = np.nonzero(sims >= threshold)
                for r, c in zip(rows.tolist(), cols.tolist()):
                    a = s + r
                    if c > a:
                        uf.union(a, c)
                        best[(a, c)] = float(sims[r, c])
        else:  # ANN candidates in batches of queries, confirmed by exact similarity
            index = {iid: i for i, iid in enumerate(ids)}
            step = 256
            for s in range(0, n, step):
                qs = X[s : s + step].astype(np.float32)
                for row in coll.neighbours(qs, column="image_vec", k=8):
                    a, c = s + row[0], index.get(row[1])
                    if c is None or c == a:
                        continue
                    sim = float(X[a].astype(np.float32) @ X[c].astype(np.float32))
                    if sim >= threshold:
                        uf.union(a, c)
                        best[(min(a, c), max(a, c))] = sim
    groups_idx: dict[int, list[int]] = {}
    for a in uf.parent:
        groups_idx.setdefault(uf.find(a), []).append(a)
    member_ids = sorted({ids[i] for g in groups_idx.values() if len(g) > 1 for i in g})
    files = coll.files_of(list(dict.fromkeys(member_ids + ids))) if n else {}
    info = {r["id"]: r for r in coll.get_items(member_ids, columns=["id", "path", "width", "height"])}
    groups: list[DuplicateGroup] = []
    for members in groups_idx.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: -(info.get(ids[i], {}).get("width") or 0) * (info.get(ids[i], {}).get("height") or 0))
        rep = members[0]
        items = []
        for i in members:
            sim = 1.0 if i == rep else float(np.asarray(X[rep], dtype=np.float32) @ np.asarray(X[i], dtype=np.float32))
            r = info.get(ids[i], {})
            items.append({"id": ids[i], "path": r.get("path"), "similarity": round(sim, 4),
                          "width": r.get("width"), "height": r.get("height"), "paths": files.get(ids[i], [])})
        groups.append(DuplicateGroup(items))
    for iid, paths in files.items():
        if len(paths) > 1:
            groups.append(DuplicateGroup([{"id": iid, "path": p, "similarity": 1.0} for p in paths], exact=True))
    groups.sort(key=lambda g: (not g.exact, -len(g.items), g.items[0]["path"] or ""))
    return DuplicatesReport(coll.name, threshold, groups, n)
