"""Retrieval evaluation: Recall@K and MRR of ``search`` over a labelled query file.

Query file format (JSON Lines, UTF-8; blank lines and lines starting with ``#`` are ignored)::

    {"id": "q1", "query": "a cat", "relevant": ["chelsea.png"]}
    {"query": "text reading LIMITED EDITION", "relevant": ["label_limited.png"]}
    {"image": "queries/rocket_crop.jpg", "relevant": ["rocket.png"]}

- ``query`` (text) or ``image`` (a path, relative to the query file) — one of them is required;
  both may be given.
- ``relevant``: the items that should be found. Each entry is an item id, an absolute path, a
  path relative to the indexed folder (matched as a path suffix), or a file name.
- Optional: ``id`` (shown in the per-query table), ``where``/``after``/``before``/``path_glob``
  (filters, as for ``search``).

Metrics, averaged over queries (the usual IR definitions):

- ``Recall@K`` = |relevant ∩ top K| / |relevant|;
- ``MRR`` = 1 / rank of the first relevant result (0 if none is in the top ``max(K)``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.store.base import Collection
from oculi.tasks.search import SearchQuery, search
from oculi.tasks.train.data import iter_json_lines
from oculi.tasks.vision import Embedder

KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalQuery:
    id: str
    relevant: tuple[str, ...]
    query: str | None = None
    image: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)


def load_queries(path: str | Path) -> list[RetrievalQuery]:
    """Read a JSONL query file. Raises ``InputError`` naming the bad line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such query file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot be read ({e})") from None
    out: list[RetrievalQuery] = []
    for n, d in iter_json_lines("\n".join(lines), str(path)):
        q, img, rel = d.get("query"), d.get("image"), d.get("relevant")
        if q is None and img is None:
            raise InputError(f"{path}:{n}: needs \"query\" (text) or \"image\"")
        if q is not None and (not isinstance(q, str) or not q.strip()):
            raise InputError(f"{path}:{n}: \"query\" must be a non-empty string")
        if isinstance(rel, str):
            rel = [rel]
        if not isinstance(rel, list) or not rel or not all(isinstance(r, str) and r for r in rel):
            raise InputError(f"{path}:{n}: \"relevant\" must be a non-empty list of ids or paths")
        if img is not None:
            img = str(img)
            if not os.path.isabs(img):
                img = str((p.parent / img).resolve())
        filters = {k: d[k] for k in ("where", "after", "before", "path_glob") if k in d}
        out.append(RetrievalQuery(str(d.get("id", f"q{n}")), tuple(rel), q, img, filters))
    if not out:
        raise InputError(f"{path}: no queries in the file")
    return out


class _Resolver:
    """Map the ``relevant`` entries onto item ids of a collection."""

    def __init__(self, coll: Any) -> None:
        self.ids: set[str] = set()
        self.by_path: dict[str, str] = {}
        for rows in coll.iter_items(["id"]):
            self.ids.update(r["id"] for r in rows)
        for rec in coll.file_states().values():
            self.by_path[rec.path] = rec.id

    def resolve(self, ref: str) -> set[str]:
        if ref in self.ids:
            return {ref}
        if ref in self.by_path:
            return {self.by_path[ref]}
        r = ref.replace("\\", "/").lstrip("./")
        suffix = "/" + r
        return {iid for p, iid in self.by_path.items() if p.endswith(suffix) or p == r}


@dataclass
class QueryResult:
    id: str
    query: str | None
    image: str | None
    relevant: list[str]
    ranks: list[int]  # 1-based ranks of the relevant items found in the top max(K)
    recall: dict[int, float]
    rr: float
    top: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "query": self.query, "image": self.image, "relevant": self.relevant,
            "ranks": self.ranks, "recall": {f"@{k}": round(v, 4) for k, v in self.recall.items()},
            "rr": round(self.rr, 4), "top": self.top,
        }


@dataclass
class RetrievalReport:
    collection: str
    queries: list[QueryResult]
    ks: tuple[int, ...]
    unresolved: list[dict[str, str]]

    @property
    def recall(self) -> dict[int, float]:
        n = len(self.queries)
        return {k: (sum(q.recall[k] for q in self.queries) / n if n else 0.0) for k in self.ks}

    @property
    def mrr(self) -> float:
        n = len(self.queries)
        return sum(q.rr for q in self.queries) / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "n_queries": len(self.queries),
            "recall": {f"@{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr": round(self.mrr, 4),
            "queries": [q.to_dict() for q in self.queries],
            "unresolved": self.unresolved,
        }


def evaluate_retrieval(
    embedder: Embedder,
    coll: Collection,
    queries: Sequence[RetrievalQuery] | str | Path = (),
    *,
    ks: Sequence[int] = KS,
    adapter: Callable[[str], Any] | None = None,
) -> RetrievalReport:
    """Run every query through ``search`` and score the rankings.

    ``adapter`` maps a text query to its image-space vector (a trained retrieval adapter).

    Queries whose relevant entries match no item of the collection are listed in
    ``unresolved`` and left out of the averages.
    """
    qs = load_queries(queries) if isinstance(queries, (str, Path)) else list(queries)
    ks_t = tuple(sorted({int(k) for k in ks if int(k) > 0}))
    if not ks_t:
        raise InputError("give at least one K > 0")
    resolver = _Resolver(coll)
    depth = max(ks_t)
    out: list[QueryResult] = []
    unresolved: list[dict[str, str]] = []
    for q in qs:
        rel: set[str] = set()
        for ref in q.relevant:
            got = resolver.resolve(ref)
            if not got:
                unresolved.append({"query": q.id, "relevant": ref})
            rel |= got
        if not rel:
            continue
        res = search(embedder, coll, SearchQuery.build(text=q.query, image=q.image, top_k=depth, **q.filters),
                     adapter_vec=adapter(q.query) if adapter is not None and q.query else None)
        ranked = [r.id for r in res.results]
        ranks = [i + 1 for i, iid in enumerate(ranked) if iid in rel]
        recall = {k: len([r for r in ranks if r <= k]) / len(rel) for k in ks_t}
        rr = 1.0 / ranks[0] if ranks else 0.0
        out.append(QueryResult(q.id, q.query, q.image, sorted(q.relevant), ranks, recall, rr,
                               [r.path for r in res.results[:3]]))
    return RetrievalReport(coll.name, out, ks_t, unresolved)


# --- the shipped evaluation set --------------------------------------------------------------------

#: Generated images: name → (kind, spec). Colours are RGB; texts are rendered for OCR.
GENERATED: dict[str, tuple[str, Any]] = {
    "swatch_red.png": ("shape", {"bg": (200, 30, 35), "fg": (150, 20, 25), "shape": "circle"}),
    "swatch_blue.png": ("shape", {"bg": (30, 70, 200), "fg": (20, 45, 150), "shape": "square"}),
    "swatch_green.png": ("shape", {"bg": (40, 160, 60), "fg": (25, 110, 40), "shape": "triangle"}),
    "swatch_yellow.png": ("shape", {"bg": (240, 215, 40), "fg": (200, 170, 20), "shape": "circle"}),
    "swatch_purple.png": ("shape", {"bg": (120, 45, 160), "fg": (90, 30, 120), "shape": "square"}),
    "sign_limited_edition.png": ("text", {"lines": ["LIMITED EDITION"], "bg": (255, 255, 255), "fg": (0, 0, 0)}),
    "sign_invoice.png": ("text", {"lines": ["INVOICE 2024", "Total due: 42.00 EUR"], "bg": (250, 250, 245), "fg": (20, 20, 20)}),
    "sign_bakery.png": ("text", {"lines": ["FRESH BREAD", "Corner Bakery"], "bg": (255, 240, 200), "fg": (90, 40, 10)}),
    "sign_welcome.png": ("text", {"lines": ["WELCOME TO", "OCULI HARBOUR"], "bg": (20, 40, 90), "fg": (255, 255, 255)}),
    "product_cola.png": ("product", {"body": (200, 20, 30), "label": "OCULI COLA", "shape": "bottle"}),
    "product_tea.png": ("product", {"body": (40, 120, 60), "label": "GREEN TEA", "shape": "box"}),
}

#: Query images made from the indexed photos (not indexed themselves).
QUERY_IMAGES: dict[str, tuple[str, str]] = {
    "coffee_crop.jpg": ("coffee.png", "crop"),
    "chelsea_small.jpg": ("chelsea.png", "resize"),
    "rocket_crop.jpg": ("rocket.png", "crop"),
    "astronaut_small.jpg": ("astronaut.png", "resize"),
    "motorcycle_crop.jpg": ("motorcycle.png", "crop"),
}


def _font(size: int) -> Any:
    from PIL import ImageFont

    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _render(kind: str, spec: dict[str, Any], size: tuple[int, int] = (640, 480)) -> Any:
    from PIL import Image, ImageDraw

    w, h = size
    if kind == "shape":
        img = Image.new("RGB", size, spec["bg"])
        d = ImageDraw.Draw(img)
        box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        if spec["shape"] == "circle":
            d.ellipse(box, fill=spec["fg"])
        elif spec["shape"] == "square":
            d.rectangle(box, fill=spec["fg"])
        else:
            d.polygon([(w // 2, h // 5), (4 * w // 5, 4 * h // 5), (w // 5, 4 * h // 5)], fill=spec["fg"])
        return img
    if kind == "text":
        img = Image.new("RGB", size, spec["bg"])
        d = ImageDraw.Draw(img)
        font = _font(54)
        n = len(spec["lines"])
        for i, line in enumerate(spec["lines"]):
            tw = d.textlength(line, font=font)
            d.text(((w - tw) / 2, h / 2 - 40 * n + 80 * i), line, fill=spec["fg"], font=font)
        return img
    # a product shot: a coloured bottle or box with a printed label, on a light backdrop
    img = Image.new("RGB", size, (235, 235, 235))
    d = ImageDraw.Draw(img)
    d.ellipse((w // 2 - 170, h - 90, w // 2 + 170, h - 50), fill=(200, 200, 200))  # shadow
    if spec["shape"] == "bottle":
        d.rounded_rectangle((w // 2 - 70, 120, w // 2 + 70, h - 70), radius=40, fill=spec["body"])
        d.rectangle((w // 2 - 25, 50, w // 2 + 25, 130), fill=spec["body"])
    else:
        d.rectangle((w // 2 - 150, 110, w // 2 + 150, h - 70), fill=spec["body"])
    font = _font(34)
    tw = d.textlength(spec["label"], font=font)
    d.rectangle((w // 2 - tw / 2 - 12, 230, w // 2 + tw / 2 + 12, 290), fill=(250, 250, 250))
    d.text(((w - tw) / 2, 238), spec["label"], fill=(20, 20, 20), font=font)
    return img


def write_eval_set(out_dir: str | Path) -> tuple[Path, Path]:
    """Write the evaluation images: the scikit-image photos (``oculi.demo.sample_images``) and
    the generated ones into ``out_dir/images``, and the query images into ``out_dir/queries``.

    Returns ``(images_dir, queries_dir)``. The labelled queries are in
    ``tests/data/retrieval/queries.jsonl`` (image queries name ``queries/<file>``).
    Needs scikit-image (a dev dependency).
    """
    from PIL import Image

    from oculi.demo import sample_images

    out = Path(out_dir)
    images, queries = out / "images", out / "queries"
    sample_images(images)
    for name, (kind, spec) in GENERATED.items():
        p = images / name
        if not p.exists():
            _render(kind, spec).save(p)
    queries.mkdir(parents=True, exist_ok=True)
    for name, (src, how) in QUERY_IMAGES.items():
        p = queries / name
        if p.exists():
            continue
        img = Image.open(images / src).convert("RGB")
        w, h = img.size
        if how == "crop":
            img = img.crop((int(w * 0.08), int(h * 0.06), int(w * 0.94), int(h * 0.95)))
        else:
            img = img.resize((w * 3 // 5, h * 3 // 5), Image.Resampling.LANCZOS)
        img.save(p, quality=85)
    return images, queries
