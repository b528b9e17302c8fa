"""Search a collection: text → items (hybrid), image → items (visual), or both."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from oculi.core.errors import InputError
from oculi.imageio import ImageSource
from oculi.store.base import SEARCH_COLUMNS, Collection, Filter
from oculi.tasks.search.filters import build_filter
from oculi.tasks.search.query import QueryConcepts, keyword_query, parse_query, validate_query
from oculi.tasks.search.ranking import CONTRADICTED, HYBRID_WEIGHTS, VISUAL_LO, contradiction, explain, semantic_score
from oculi.tasks.search.results import SearchResult, SearchResults
from oculi.tasks.vision import Embedder

MAX_TOP_K = 1000
CANDIDATES = 50  # per retriever, before fusion
ADAPTER_WEIGHT = 0.6  # share of a trained adapter's text → image similarity in a text query's score

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="oculi-search")


@dataclass(frozen=True)
class SearchQuery:
    """A validated search request: query text and/or image, how many results, the filter.

    Build it with ``SearchQuery.build`` (which raises ``InputError`` for what is unusable)
    before touching the store, so a bad request is refused the same whether or not the
    collection exists.
    """

    text: str | None
    image: ImageSource | None
    top_k: int
    filter: Filter

    @classmethod
    def build(
        cls,
        *,
        text: str | None = None,
        image: ImageSource | None = None,
        top_k: int = 10,
        where: str | Sequence[str] | Filter | None = None,
        after: Any = None,
        before: Any = None,
        path_glob: str | None = None,
    ) -> "SearchQuery":
        """Validate a request.

        Args:
            text: Query text, e.g. ``"a red car"`` or words printed in the image.
            image: Query image: a path, bytes, PIL image or ``LoadedImage``.
            top_k: How many results (1–1000).
            where: ``--where`` expressions (``"object=person, colour=red"``) or a ``Filter``.
            after / before: Capture time bounds (``after`` inclusive, ``before`` exclusive).
            path_glob: Only paths matching this glob.

        Raises:
            InputError: no query, an empty query, a bad ``top_k`` or a bad filter.
        """
        if text is None and image is None:
            raise InputError("give a query text, or an image with --image")
        q = validate_query(text) if text is not None else None
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InputError(f"--top-k must be between 1 and {MAX_TOP_K}, got {top_k}")
        return cls(q, image, top_k, build_filter(where, after=after, before=before, path_glob=path_glob))


def search(embedder: Embedder, coll: Collection, query: SearchQuery, *, adapter_vec: np.ndarray | None = None) -> SearchResults:
    """Search a collection by text (hybrid), by image (visual similarity), or both.

    Args:
        embedder: The sentence encoder for text, the visual embedder for images (an ``Engine``).
        coll: The collection.
        query: What to find (``SearchQuery.build``).
        adapter_vec: The text query projected into the image space by a trained retrieval
            adapter (``oculi train adapter``): the stored image vectors are searched with it and
            its similarity ``A`` joins the text score, ``(1 - w)·hybrid + w·max(A, 0)`` with
            ``w = ADAPTER_WEIGHT``.

    Raises:
        InputError: a query image that is not an image.
    """
    t0 = time.perf_counter()
    q, image, top_k, flt = query.text, query.image, query.top_k, query.filter
    k = max(CANDIDATES, 3 * top_k)

    scores: dict[str, dict[str, float]] = {}
    hits: dict[str, Any] = {}
    img_vec = None
    if image is not None:
        img_vec = np.asarray(embedder.embed_images([image]), dtype=np.float32)[0]
    if q is not None:
        # ids and scores first (cheap); the keyword search needs no embedding, so it runs while
        # the query is embedded; then one read of the candidates' fields
        kw_future = _POOL.submit(coll.keyword_search, keyword_query(q), k=k, filter=flt, columns=["id"])
        qvec = np.asarray(embedder.embed_texts([q]), dtype=np.float32)[0]
        for h in coll.vector_search(qvec, column="text_vec", k=k, filter=flt, columns=["id"]):
            hits[h.id] = h
            scores.setdefault(h.id, {})["cos"] = h.score
        kw_hits = kw_future.result()
        best_bm25 = max((h.score for h in kw_hits), default=0.0)
        for h in kw_hits:
            hits.setdefault(h.id, h)
            scores.setdefault(h.id, {})["keyword"] = h.score / best_bm25 if best_bm25 > 0 else 0.0
    if img_vec is not None:
        for h in coll.vector_search(img_vec, column="image_vec", k=k, filter=flt, columns=["id"]):
            hits.setdefault(h.id, h)
            scores.setdefault(h.id, {})["visual"] = h.score
    if adapter_vec is not None and q is not None:
        for h in coll.vector_search(adapter_vec, column="image_vec", k=k, filter=flt, columns=["id"]):
            hits.setdefault(h.id, h)
            scores.setdefault(h.id, {})["adapter"] = h.score
    # the ANN index scores with quantised vectors (errors up to ~0.3 measured on 1280-d vectors):
    # every candidate is re-scored exactly from its stored vectors, read with its fields
    extra = (["text_vec"] if q is not None else []) + (["image_vec"] if img_vec is not None or adapter_vec is not None else [])
    cands = coll.fetch(list(hits.values()), columns=_with(extra))
    for iid, fields in cands.items():
        tv = fields.pop("text_vec", None)
        iv = fields.pop("image_vec", None)
        sc = scores[iid]
        if q is not None and tv is not None:
            sc["cos"] = float(np.dot(np.asarray(tv, dtype=np.float32), qvec))
        if img_vec is not None and iv is not None:
            sc["visual"] = float(np.dot(np.asarray(iv, dtype=np.float32), img_vec))
        if adapter_vec is not None and q is not None and iv is not None:
            sc["adapter"] = float(np.dot(np.asarray(iv, dtype=np.float32), adapter_vec))

    concepts = parse_query(q) if q is not None else QueryConcepts()
    results: list[SearchResult] = []
    for iid, fields in cands.items():
        sc = scores[iid]
        parts: dict[str, float] = {}
        why: list[str] = []
        matched: dict[str, list[str]] = {}
        total = 0.0
        if q is not None:
            e, matched, why = explain(concepts, fields, q)
            s = semantic_score(sc.get("cos", 0.0))
            kw = sc.get("keyword", 0.0)
            parts = {"semantic": s, "keyword": kw, "exact": e}
            total = sum(HYBRID_WEIGHTS[n] * v for n, v in parts.items())
            if against := contradiction(concepts, fields):
                total *= CONTRADICTED
                why.append(against)
            if not why and s >= 0.3:
                why.append(f"similar description: {fields.get('caption', '')}")
            elif s >= 0.5:
                why.append(f"semantic similarity {sc.get('cos', 0.0):.2f}")
            if kw > 0 and not matched:
                why.append("keyword match in the description")
            if adapter_vec is not None:
                a = max(0.0, sc.get("adapter", 0.0))
                parts["adapter"] = a
                total = (1 - ADAPTER_WEIGHT) * total + ADAPTER_WEIGHT * a
                if a >= 0.3:
                    why.append(f"trained adapter similarity {a:.2f}")
        if img_vec is not None:
            v = sc.get("visual", 0.0)
            parts["visual"] = v
            why.insert(0, f"looks similar (visual similarity {v:.2f})")
            vis = v if q is None else max(0.0, (v - VISUAL_LO) / (1 - VISUAL_LO))
            total = vis if q is None else 0.5 * total + 0.5 * vis
        results.append(SearchResult(
            id=iid, path=fields.get("path") or "", name=fields.get("name") or "", score=total, why=why,
            caption=fields.get("caption") or "", matched=matched, scores=parts,
            fields={**{k2: v2 for k2, v2 in fields.items() if k2 != "observation"},
                    "caption_model": _caption_model(fields.get("observation"))},
        ))
    results.sort(key=lambda r: (-r.score, r.path))
    query: dict[str, Any] = {"text": q, "image": _image_name(image), "top_k": top_k, "filter": flt.to_dict()}
    return SearchResults(coll.name, query, results[:top_k], (time.perf_counter() - t0) * 1000)


def _with(extra: Iterable[str]) -> list[str]:
    return [*SEARCH_COLUMNS, *extra]


def _image_name(image: Any) -> str | None:
    if image is None:
        return None
    if isinstance(image, (str, Path)):
        return str(image)
    return type(image).__name__


def _caption_model(observation: Any) -> str | None:
    """The id of the model that wrote an item's caption, as its stored observation records it
    (``None`` for items indexed before it was recorded)."""
    if not observation:
        return None
    try:
        obs = json.loads(observation) if isinstance(observation, str) else observation
        return (obs.get("models") or {}).get("describer")
    except (ValueError, AttributeError):
        return None
