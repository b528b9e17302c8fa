"""Search a collection: text → image (hybrid), image → image (visual), and near-duplicates.

Text queries (there is no CLIP: text meets images through what perception wrote down):

1. **Semantic**: the query is embedded with the sentence encoder and compared (cosine) with
   each item's embedded summary (caption, classifier labels with their synonyms, colours,
   text read) — ``S = clip((cos - 0.10) / 0.55, 0, 1)``.
2. **Keyword**: BM25 over each item's document (stemmed, stop words removed), normalised by the
   best BM25 among the candidates — ``K = bm25 / max bm25``.
3. **Exact concepts**: the query is parsed into concepts — COCO objects (with synonyms:
   "people" → person), ImageNet classes ("espresso"), colour words, and other words — and each
   concept is looked up in what perception found: a detected object (its score), a classifier
   label or a label that is a kind of the object (its score), an image or object colour, a word
   in the OCR text. ``E`` is the mean strength over the query's concepts.

``score = 0.45·S + 0.20·K + 0.35·E`` (``HYBRID_WEIGHTS``). Candidates are the union of the top
``CANDIDATES`` of the vector search and of the keyword search, both with the filters applied
inside the store (pre-filtering). ``why`` lists the matched objects, labels, colours and text.

Image queries rank by cosine similarity of the visual embedding (EfficientNet, 1280-d).
``find_duplicates`` groups items whose visual embeddings are at least ``threshold`` similar,
plus identical files (one item indexed from several paths).
"""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.language.vocab import coco_for_word, gloss, imagenet_for_word, imagenet_to_coco
from oculi.store.base import DEFAULT_COLLECTION, SEARCH_COLUMNS, Condition, Filter, Op

MAX_QUERY_CHARS = 1000
MAX_TOP_K = 1000
CANDIDATES = 50  # per retriever, before fusion
HYBRID_WEIGHTS = {"semantic": 0.45, "keyword": 0.20, "exact": 0.35}
SEM_LO, SEM_HI = 0.10, 0.65  # cosine → [0, 1]
VISUAL_LO = 0.5  # image queries: cosine below this shows as 0 in the combined score
COLOUR_WEIGHT = 0.5  # a colour counts half as much as an object, label or word in E
DUPLICATE_THRESHOLD = 0.95  # resized/recompressed/mirrored copies score >= 0.95 (docs/SEARCH.md)
DUPLICATE_EXACT_LIMIT = 40_000  # up to this many items duplicates are found by exact all-pairs

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="oculi-search")

COLOUR_WORDS = {
    "red": "red", "orange": "orange", "yellow": "yellow", "green": "green", "blue": "blue",
    "purple": "purple", "violet": "purple", "pink": "pink", "brown": "brown", "black": "black",
    "white": "white", "grey": "grey", "gray": "grey", "silver": "grey", "gold": "yellow",
}
STOP_WORDS = frozenset("""
a an the of in on at to for with and or is are was were be been being this that these those it its
there here some any photo photos picture pictures image images photograph shot showing show shows
me my our your their his her find search look looking like containing contains with without from by
as into onto over under near all one""".split())

# ``--where`` keys → (store field, operator for "=")
_WHERE_KEYS: dict[str, tuple[str, Op]] = {
    "object": ("object_terms", Op.HAS), "objects": ("object_terms", Op.HAS),
    "label": ("labels", Op.HAS), "labels": ("labels", Op.HAS),
    "colour": ("colours", Op.HAS), "color": ("colours", Op.HAS), "colours": ("colours", Op.HAS),
    "colors": ("colours", Op.HAS),
    "text": ("text", Op.CONTAINS), "caption": ("caption", Op.CONTAINS),
    "path": ("path", Op.EQ), "name": ("name", Op.EQ), "format": ("format", Op.EQ),
    "camera": ("camera", Op.CONTAINS), "kind": ("kind", Op.EQ), "id": ("id", Op.EQ), "sha256": ("sha256", Op.EQ),
    "source": ("source_id", Op.EQ), "source_id": ("source_id", Op.EQ),
    "frame": ("frame_index", Op.EQ), "frame_index": ("frame_index", Op.EQ),
    "timestamp": ("timestamp", Op.EQ), "width": ("width", Op.EQ), "height": ("height", Op.EQ),
    "size": ("file_size", Op.EQ), "file_size": ("file_size", Op.EQ),
    "time": ("time", Op.EQ), "date": ("time", Op.EQ), "taken": ("taken_at", Op.EQ), "taken_at": ("taken_at", Op.EQ),
    "lat": ("gps_lat", Op.EQ), "lon": ("gps_lon", Op.EQ), "track": ("track_ids", Op.HAS),
}
_WHERE_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|!=|=|>|<|~)\s*(.*?)\s*$", re.S)


# --- query parsing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Concept:
    """One thing a query names: a COCO object and/or an ImageNet class, a colour, or a word."""

    word: str
    object: str | None = None
    label: str | None = None
    colour: str | None = None


@dataclass(frozen=True)
class QueryConcepts:
    """The concepts of a text query, in order, and all its content words."""

    concepts: tuple[Concept, ...] = ()
    terms: tuple[str, ...] = ()

    @property
    def objects(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.object for c in self.concepts if c.object))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.label for c in self.concepts if c.label))

    @property
    def colours(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.colour for c in self.concepts if c.colour))

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(c.word for c in self.concepts if not (c.object or c.label or c.colour))


NUMBER_TOKENS = frozenset({"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "many", "several", "few"})


def _tokens(text: str) -> list[str]:
    return re.findall(r"[\w][\w'&.-]*[\w]|[\w]", text.lower())


def parse_query(text: str) -> QueryConcepts:
    """Split a text query into the concepts perception can have found.

    Multi-word names are matched first ("teddy bear", "space shuttle"); a word that names a
    COCO class (or a synonym: "people" → person) becomes an object concept, one that names an
    ImageNet class a label concept (with the COCO class it is a kind of), a colour word a colour.

    Example:
        >>> c = parse_query("two red cars and a cat")
        >>> c.objects, c.colours, c.words
        (('car', 'cat'), ('red',), ())
        >>> parse_query("espresso").labels, parse_query("coffee").words
        (('espresso',), ('coffee',))
    """
    toks = [t for t in _tokens(text) if t not in STOP_WORDS and t not in NUMBER_TOKENS]
    out: list[Concept] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in COLOUR_WORDS:
            out.append(Concept(t, colour=COLOUR_WORDS[t]))
            i += 1
            continue
        for n in (3, 2, 1):
            if i + n > len(toks):
                continue
            phrase = " ".join(toks[i : i + n])
            coco = coco_for_word(phrase)
            if n > 1 and coco is not None and coco == coco_for_word(toks[i + n - 1]):
                coco = None  # only the last word names it ("coffee cup" → coffee + cup)
            inet = imagenet_for_word(phrase)
            if coco or inet:
                out.append(Concept(phrase, object=coco or (imagenet_to_coco(inet) if inet else None), label=inet))
                i += n
                break
        else:
            out.append(Concept(t))
            i += 1
    seen: set[Concept] = set()
    uniq = [c for c in out if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]
    return QueryConcepts(tuple(uniq), tuple(dict.fromkeys(toks)))


def validate_query(text: str) -> str:
    q = (text or "").strip()
    if not q:
        raise InputError('the search query is empty; try e.g. oculi search "a red car"')
    if len(q) > MAX_QUERY_CHARS:
        raise InputError(f"the query is {len(q)} characters; the limit is {MAX_QUERY_CHARS}")
    return q


# --- filters -------------------------------------------------------------------------------------

def parse_time(value: Any, *, name: str = "time", end: bool = False) -> float:
    """Epoch seconds from a date/datetime/number/ISO string (``2021``, ``2021-06``, ``2021-06-01``,
    ``2021-06-01T12:00``); naive values are UTC. ``end`` moves a bare date to the end of its span
    (used for ``before``... it is not: ``before`` is exclusive at the start of the date)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise InputError(f"{name}: not a finite time")
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    s = str(value).strip()
    if not s:
        raise InputError(f"{name}: empty date")
    try:
        if re.fullmatch(r"\d{4}", s):
            dt = datetime(int(s), 1, 1)
        elif re.fullmatch(r"\d{4}-\d{2}", s):
            y, m = s.split("-")
            dt = datetime(int(y), int(m), 1)
        else:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise InputError(f"{name}: cannot read {s!r} as a date; use e.g. 2021-06-01 or 2021-06-01T14:30") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _norm_object(v: str) -> str:
    v = v.strip().lower()
    parts = v.split()
    colour = None
    if len(parts) > 1 and parts[0] in COLOUR_WORDS:
        colour, v = COLOUR_WORDS[parts[0]], " ".join(parts[1:])
    coco = coco_for_word(v) or v
    return f"{colour} {coco}" if colour else coco


def parse_where(exprs: str | Sequence[str] | None) -> list[Condition]:
    """Parse ``--where`` expressions: ``key OP value`` joined by ``,`` or `` and ``.

    Keys: object, label, colour, text, caption, path, name, format, camera, kind, id, source,
    frame, timestamp, width, height, size, time/date, taken, lat, lon, track. Operators: ``=``,
    ``!=``, ``<``, ``<=``, ``>``, ``>=``, and ``~`` (contains; a glob for path/name).

    Example:
        >>> [(c.field, c.op.value, c.value) for c in parse_where("object=people, width>=640")]
        [('object_terms', 'has', 'person'), ('width', '>=', 640.0)]
    """
    if exprs is None:
        return []
    items = [exprs] if isinstance(exprs, str) else list(exprs)
    parts: list[str] = []
    for e in items:
        parts.extend(p for p in re.split(r"\s*,\s*|\s+and\s+", e.strip(), flags=re.I) if p.strip())
    out: list[Condition] = []
    for p in parts:
        m = _WHERE_RE.match(p)
        if not m:
            raise InputError(f"cannot read --where {p!r}; use key=value, e.g. object=person or width>=640")
        key, op, raw = m.group(1).lower(), m.group(2), m.group(3).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        if key not in _WHERE_KEYS:
            raise InputError(f"unknown --where key {key!r}; known: {', '.join(sorted(_WHERE_KEYS))}")
        if raw == "":
            raise InputError(f"--where {key}: the value is empty")
        fld, eq_op = _WHERE_KEYS[key]
        value: Any = raw
        if fld == "object_terms":
            value = _norm_object(raw)
        elif fld == "labels":
            value = imagenet_for_word(raw) or raw.strip().lower()
        elif fld == "colours":
            value = COLOUR_WORDS.get(raw.lower(), raw.lower())
        elif fld in ("time", "taken_at"):
            value = parse_time(raw, name=key)
        if op == "=":
            cop = eq_op
        elif op == "~":
            cop = Op.GLOB if fld in ("path", "name") else Op.CONTAINS
        else:
            cop = Op(op)
        if fld in ("object_terms", "labels", "colours", "track_ids") and cop is not Op.HAS:
            raise InputError(f"--where {key} supports only '=' (the item has it)")
        out.append(Condition(fld, cop, value))
    return out


def build_filter(
    where: str | Sequence[str] | Filter | None = None,
    *,
    after: Any = None,
    before: Any = None,
    path_glob: str | None = None,
) -> Filter:
    """One ``Filter`` from ``--where``, ``--after`` (inclusive), ``--before`` (exclusive) and
    ``--path-glob`` (a relative glob matches anywhere: ``holiday/*.jpg`` → ``*/holiday/*.jpg``)."""
    conds: list[Condition] = list(where.conditions) if isinstance(where, Filter) else parse_where(where)
    if after is not None:
        conds.append(Condition("time", Op.GE, parse_time(after, name="--after")))
    if before is not None:
        conds.append(Condition("time", Op.LT, parse_time(before, name="--before")))
    if after is not None and before is not None and conds[-2].value >= conds[-1].value:  # type: ignore[operator]
        raise InputError("--after must be earlier than --before")
    if path_glob is not None:
        g = path_glob.strip()
        if not g:
            raise InputError("--path-glob is empty")
        if not g.startswith(("/", "*")):
            g = "*/" + g
        conds.append(Condition("path", Op.GLOB, g))
    return Filter(tuple(conds))


# --- results ---------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    id: str
    path: str
    score: float
    why: list[str]
    caption: str = ""
    name: str = ""
    matched: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        f = self.fields
        t = f.get("time")
        return {
            "id": self.id,
            "path": self.path,
            "name": self.name,
            "score": round(float(self.score), 4),
            "why": self.why,
            "matched": self.matched,
            "scores": {k: round(float(v), 4) for k, v in self.scores.items()},
            "caption": self.caption,
            "labels": list(f.get("labels") or []),
            "objects": list(f.get("objects") or []),
            "colours": list(f.get("colours") or []),
            "text": f.get("text") or "",
            "width": f.get("width"),
            "height": f.get("height"),
            "time": datetime.fromtimestamp(t, timezone.utc).isoformat() if isinstance(t, (int, float)) else None,
            "taken_at": f.get("taken_at"),
            "camera": f.get("camera"),
            "gps": [f["gps_lat"], f["gps_lon"]] if f.get("gps_lat") is not None and f.get("gps_lon") is not None else None,
            "kind": f.get("kind") or "image",
            "source_id": f.get("source_id"),
            "frame_index": f.get("frame_index"),
            "timestamp": f.get("timestamp"),
        }


@dataclass
class SearchResults:
    collection: str
    query: dict[str, Any]
    results: list[SearchResult]
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "query": self.query,
            "results": [r.to_dict() for r in self.results],
            "elapsed_ms": round(self.elapsed_ms, 1),
        }

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


# --- matching what perception found against the query ------------------------------------------------

def _word_in(word: str, text: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(word) + r"(?![\w])", text, flags=re.I) is not None


def _stem(w: str) -> str:
    for suf in ("ies", "es", "s"):
        if w.endswith(suf) and len(w) > len(suf) + 2:
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


def explain(concepts: QueryConcepts, fields: dict[str, Any], query: str) -> tuple[float, dict[str, list[str]], list[str]]:
    """Exact-concept strength ``E`` in [0, 1], the matched things by kind, and ``why`` lines.

    Each concept is satisfied by its strongest route: a detected object (its score; one of the
    query's colours preferred), a classifier label that is the concept or a kind of it (1.5 ×
    its score, at most 1), a colour on a matched object (1.0) or among the image's top three
    colours (1.0, 0.7 for the third; halved when the query names objects the colour should
    qualify), or the word in the OCR text (1.0). ``E`` is the weighted mean over the concepts
    (colours weigh ``COLOUR_WEIGHT``).
    """
    try:
        obs = json.loads(fields.get("observation") or "{}")
    except ValueError:
        obs = {}
    objects = obs.get("objects", [])
    labels = obs.get("labels", [])
    colours = [c.get("name") for c in obs.get("colours", [])]
    text = fields.get("text") or ""
    matched: dict[str, list[str]] = {"objects": [], "labels": [], "colours": [], "text": []}
    why: list[str] = []
    strengths: list[float] = []
    qcolours = concepts.colours

    def add(kind: str, desc: str, line: str) -> None:
        if desc not in matched[kind]:
            matched[kind].append(desc)
            why.append(line)

    has_objects = any(c.object for c in concepts.concepts)
    matched_objs: list[dict[str, Any]] = []
    for c in concepts.concepts:
        if c.object:
            matched_objs += [o for o in objects if o.get("label") == c.object]
    weights: list[float] = []
    for c in concepts.concepts:
        s = 0.0
        if c.colour:
            # a colour qualifies the objects named with it ("red car"); alone it describes the image
            on_object = any(o.get("colour") == c.colour for o in (matched_objs if has_objects else objects))
            in_image = c.colour in colours[:3]
            if on_object or in_image:
                s = 1.0 if on_object or c.colour in colours[:2] else 0.7
                if has_objects and not on_object:
                    s *= 0.5
                add("colours", c.colour, f"colour: {c.colour} ({'object' if on_object else 'image'})")
            strengths.append(s)
            weights.append(COLOUR_WEIGHT)
            continue
        weights.append(1.0)
        if c.object:
            objs = [o for o in objects if o.get("label") == c.object]
            coloured = [o for o in objs if o.get("colour") in qcolours] if qcolours else []
            use = coloured or objs
            if use:
                best_o = max(float(o.get("score", 0)) for o in use)
                s = max(s, best_o)
                col = use[0].get("colour") if coloured else None
                desc = f"{col + ' ' if col else ''}{c.object}" + (f" ×{len(use)}" if len(use) > 1 else "")
                add("objects", desc, f"object: {desc} ({best_o:.2f})")
        if c.object or c.label:
            labs = [lab for lab in labels
                    if lab.get("name") == c.label or (c.object and imagenet_to_coco(lab.get("name", "")) == c.object)]
            if labs:
                best = max(labs, key=lambda lab: float(lab.get("score", 0)))
                sc = float(best.get("score", 0))
                if sc >= 0.05:
                    s = max(s, min(1.0, 1.5 * sc))
                    g = gloss(best["name"])
                    add("labels", g, f"label: {g} ({sc:.2f})")
        else:  # a plain word: the classifier's label words
            for lab in labels:
                sc = float(lab.get("score", 0))
                if sc < 0.05:
                    continue
                words = " ".join(_label_text(lab.get("name", "")))
                if _word_in(c.word, words) or _word_in(_stem(c.word), words):
                    s = max(s, min(1.0, 1.5 * sc))
                    g = gloss(lab["name"])
                    add("labels", g, f"label: {g} ({sc:.2f})")
                    break
        if text and (_word_in(c.word, text) or _word_in(_stem(c.word), text)):
            s = 1.0
            if c.word not in matched["text"]:
                matched["text"].append(c.word)
        strengths.append(s)
    if text:
        q = query.strip()
        if len(q) >= 3 and q.lower() in " ".join(text.split()).lower():
            matched["text"] = [q]
        if matched["text"]:
            why.append(f'text: "{_snippet(text, matched["text"])}"')
    e = sum(w * x for w, x in zip(weights, strengths)) / sum(weights) if strengths else 0.0
    return e, {k: v for k, v in matched.items() if v}, why


def _label_text(name: str) -> list[str]:
    from oculi.tasks.index import label_words

    return label_words(name) if name else []


def _snippet(text: str, words: list[str], width: int = 60) -> str:
    flat = " ".join(text.split())
    pos = min((flat.lower().find(w.lower()) for w in words if flat.lower().find(w.lower()) >= 0), default=0)
    start = max(0, pos - width // 3)
    s = flat[start : start + width]
    return ("…" if start > 0 else "") + s + ("…" if start + width < len(flat) else "")


# --- search ----------------------------------------------------------------------------------------

def _sem(cos: float) -> float:
    return float(min(1.0, max(0.0, (cos - SEM_LO) / (SEM_HI - SEM_LO))))


def search(
    engine: Any,
    store: Any,
    collection: str = DEFAULT_COLLECTION,
    *,
    text: str | None = None,
    image: Any = None,
    top_k: int = 10,
    where: str | Sequence[str] | Filter | None = None,
    after: Any = None,
    before: Any = None,
    path_glob: str | None = None,
) -> SearchResults:
    """Search a collection by text (hybrid), by image (visual similarity), or both.

    Args:
        engine: An ``oculi.Engine`` (the sentence encoder for text, the classifier for images).
        store: A ``Store``.
        collection: Collection name.
        text: Query text, e.g. ``"a red car"`` or words printed in the image.
        image: Query image: a path, bytes, PIL image or ``LoadedImage``.
        top_k: How many results (1–1000).
        where: ``--where`` expressions (``"object=person, colour=red"``) or a ``Filter``.
        after / before: Capture time bounds (``after`` inclusive, ``before`` exclusive).
        path_glob: Only paths matching this glob.

    Raises:
        InputError: no query, an empty query, a query image that is not an image, a bad filter.
        NotFoundError: the collection does not exist.
    """
    t0 = time.perf_counter()
    if text is None and image is None:
        raise InputError("give a query text, or an image with --image")
    q = validate_query(text) if text is not None else None
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"--top-k must be between 1 and {MAX_TOP_K}, got {top_k}")
    flt = build_filter(where, after=after, before=before, path_glob=path_glob)
    coll = store.open_collection(collection)
    k = max(CANDIDATES, 3 * top_k)

    scores: dict[str, dict[str, float]] = {}
    hits: dict[str, Any] = {}
    img_vec = None
    if image is not None:
        img_vec = np.asarray(engine.embed_images([image]), dtype=np.float32)[0]
    if q is not None:
        # ids and scores first (cheap); the keyword search needs no embedding, so it runs while
        # the query is embedded; then one read of the candidates' fields
        kw_future = _POOL.submit(coll.keyword_search, _keyword_query(q), k=k, filter=flt, columns=["id"])
        qvec = np.asarray(engine.embed_texts([q]), dtype=np.float32)[0]
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
    # the ANN index scores with quantised vectors (errors up to ~0.3 measured on 1280-d vectors):
    # every candidate is re-scored exactly from its stored vectors, read with its fields
    extra = (["text_vec"] if q is not None else []) + (["image_vec"] if img_vec is not None else [])
    cands = coll.fetch(list(hits.values()), columns=_with(extra))
    for iid, fields in cands.items():
        tv = fields.pop("text_vec", None)
        iv = fields.pop("image_vec", None)
        sc = scores[iid]
        if q is not None and tv is not None:
            sc["cos"] = float(np.dot(np.asarray(tv, dtype=np.float32), qvec))
        if img_vec is not None and iv is not None:
            sc["visual"] = float(np.dot(np.asarray(iv, dtype=np.float32), img_vec))

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
            s = _sem(sc.get("cos", 0.0))
            kw = sc.get("keyword", 0.0)
            parts = {"semantic": s, "keyword": kw, "exact": e}
            total = sum(HYBRID_WEIGHTS[n] * v for n, v in parts.items())
            if not why and s >= 0.3:
                why.append(f"similar description: {fields.get('caption', '')}")
            elif s >= 0.5:
                why.append(f"semantic similarity {sc.get('cos', 0.0):.2f}")
            if kw > 0 and not matched:
                why.append("keyword match in the description")
        if img_vec is not None:
            v = sc.get("visual", 0.0)
            parts["visual"] = v
            why.insert(0, f"looks similar (visual similarity {v:.2f})")
            vis = v if q is None else max(0.0, (v - VISUAL_LO) / (1 - VISUAL_LO))
            total = vis if q is None else 0.5 * total + 0.5 * vis
        results.append(SearchResult(
            id=iid, path=fields.get("path") or "", name=fields.get("name") or "", score=total, why=why,
            caption=fields.get("caption") or "", matched=matched, scores=parts,
            fields={k2: v2 for k2, v2 in fields.items() if k2 != "observation"},
        ))
    results.sort(key=lambda r: (-r.score, r.path))
    query: dict[str, Any] = {"text": q, "image": _image_name(image), "top_k": top_k, "filter": flt.to_dict()}
    return SearchResults(coll.name, query, results[:top_k], (time.perf_counter() - t0) * 1000)


def _with(extra: Iterable[str]) -> list[str]:
    return [*SEARCH_COLUMNS, *extra]


def _keyword_query(q: str) -> str:
    """The keyword query: the words of the query plus the canonical names of what it names
    ("people" also searches "person")."""
    c = parse_query(q)
    extra = [w for w in (*c.objects, *c.labels, *c.colours) if w not in q.lower()]
    return " ".join([q, *extra])


def _image_name(image: Any) -> str | None:
    if image is None:
        return None
    if isinstance(image, (str, Path)):
        return str(image)
    return type(image).__name__


# --- duplicates -----------------------------------------------------------------------------------

@dataclass
class DuplicateGroup:
    """Items that look the same. ``exact``: identical bytes found at several paths."""

    items: list[dict[str, Any]]
    exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"exact": self.exact, "items": self.items}


@dataclass
class DuplicatesReport:
    collection: str
    threshold: float
    groups: list[DuplicateGroup]
    items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "threshold": self.threshold,
            "items": self.items,
            "groups": [g.to_dict() for g in self.groups],
        }


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


def find_duplicates(store: Any, collection: str = DEFAULT_COLLECTION, *, threshold: float = DUPLICATE_THRESHOLD) -> DuplicatesReport:
    """Groups of near-duplicate images (visual cosine similarity ≥ ``threshold``) and of identical
    files. Exact all-pairs up to ``DUPLICATE_EXACT_LIMIT`` items, the ANN index above that."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"--threshold must be in (0, 1], got {threshold}")
    coll = store.open_collection(collection)
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
