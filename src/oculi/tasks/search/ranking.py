"""Scoring candidates against a text query: the exact-concept strength ``E`` with its ``why``
lines, and the semantic score ``S`` from a cosine."""

from __future__ import annotations

import json
import re
from typing import Any

from oculi.language.kinds import FINE_MIN, kind_of
from oculi.language.vocab import gloss, imagenet_to_coco, label_words
from oculi.tasks.search.query import QueryConcepts

HYBRID_WEIGHTS = {"semantic": 0.45, "keyword": 0.20, "exact": 0.35}
SEM_LO, SEM_HI = 0.10, 0.65  # cosine → [0, 1]
VISUAL_LO = 0.5  # image queries: cosine below this shows as 0 in the combined score
COLOUR_WEIGHT = 0.5  # a colour counts half as much as an object, label or word in E


def _word_in(word: str, text: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(word) + r"(?![\w])", text, flags=re.I) is not None


def _stem(w: str) -> str:
    for suf in ("ies", "es", "s"):
        if w.endswith(suf) and len(w) > len(suf) + 2:
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


COLOUR_SATURATES = 0.5  # a colour-only query is fully met by an image this much of that colour
COLOUR_ON_OBJECT = 0.5  # ... and half met by an object of that colour


def _colour_strength(
    colour: str, has_objects: bool, matched: list[dict[str, Any]], objects: list[dict[str, Any]], shares: dict[str, float]
) -> tuple[float, str]:
    """How well an image meets a query colour, and where it was seen.

    With objects in the query the colour qualifies them ("red car"): on one of them 1.0;
    otherwise among the image's colours 0.5, unless it is on a detected object of another
    class (a red cup is no red bottle). Alone it describes the image: the image's share of the
    colour (full at ``COLOUR_SATURATES``), or ``COLOUR_ON_OBJECT`` for an object of it.
    """
    if has_objects:
        if any(o.get("colour") == colour for o in matched):
            return 1.0, "object"
        elsewhere = any(o.get("colour") == colour for o in objects if o not in matched)
        top = sorted(shares, key=lambda n: -shares[n])[:3]
        if colour in top and not elsewhere:
            return (0.5 if colour in top[:2] else 0.35), "image"
        return 0.0, ""
    share = min(1.0, shares.get(colour, 0.0) / COLOUR_SATURATES)
    on_object = COLOUR_ON_OBJECT if any(o.get("colour") == colour for o in objects) else 0.0
    return max(share, on_object), "image" if share >= on_object else "object"


CONTRADICTED = 0.85  # score factor for an image whose query colour is on an object the query does not name


def contradiction(concepts: QueryConcepts, fields: dict[str, Any]) -> str | None:
    """A ``why`` line when the image contradicts the query: it names objects and a colour, none
    of those objects was found, and the colour is on a detected object of another class — a
    red cup is no red bottle. ``None`` otherwise."""
    named = set(concepts.objects)
    if not named or not concepts.colours:
        return None
    try:
        objects = json.loads(fields.get("observation") or "{}").get("objects", [])
    except (ValueError, AttributeError):
        return None
    if any(o.get("label") in named for o in objects):
        return None
    for colour in concepts.colours:
        other = next((o for o in objects if o.get("colour") == colour), None)
        if other is not None:
            return f"colour: {colour} is on a {other.get('label')} here, not on a {' or '.join(sorted(named))}"
    return None


def explain(concepts: QueryConcepts, fields: dict[str, Any], query: str) -> tuple[float, dict[str, list[str]], list[str]]:
    """Exact-concept strength ``E`` in [0, 1], the matched things by kind, and ``why`` lines.

    Each concept is satisfied by its strongest route: a detected object (its score; one of the
    query's colours preferred), a classifier label that is the concept or a kind of it (1.5 ×
    its score, at most 1), for a WordNet category ("building", "drink") an object, an object's
    own crop label or an image label of its kinds (the same scores), a colour (``_colour_strength``),
    or the word in the OCR text (1.0). ``E`` is the weighted mean over the concepts
    (colours weigh ``COLOUR_WEIGHT``).
    """
    try:
        obs = json.loads(fields.get("observation") or "{}")
    except ValueError:
        obs = {}
    objects = obs.get("objects", [])
    labels = obs.get("labels", [])
    shares = {c.get("name"): float(c.get("fraction", 0)) for c in obs.get("colours", [])}
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
            s, where = _colour_strength(c.colour, has_objects, matched_objs, objects, shares)
            if s > 0:
                add("colours", c.colour, f"colour: {c.colour} ({where})")
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
        if c.kinds:  # a category: other classes of its kinds; for a word alone also crop and image labels
            for o in objects:
                osc = float(o.get("score", 0))
                if o.get("label") != c.object and (k := kind_of(o.get("label", ""), c.kinds, coco=True)):
                    s = max(s, osc)
                    add("objects", o["label"], f"object: {o['label']}, a kind of {k} ({osc:.2f})")
                for ol in o.get("labels", []) if not (c.object or c.label) else ():
                    sc = float(ol.get("score", 0))
                    if sc >= FINE_MIN and (k := kind_of(ol.get("name", ""), c.kinds)):
                        s = max(s, min(1.0, 1.5 * sc))
                        g = gloss(ol["name"])
                        add("labels", g, f"label: {g} (the {o.get('label')}), a kind of {k} ({sc:.2f})")
            for lab in labels if not (c.object or c.label) else ():
                sc = float(lab.get("score", 0))
                if sc >= 0.05 and (k := kind_of(lab.get("name", ""), c.kinds)):
                    s = max(s, min(1.0, 1.5 * sc))
                    g = gloss(lab["name"])
                    add("labels", g, f"label: {g}, a kind of {k} ({sc:.2f})")
        if not (c.object or c.label):  # a plain word: the classifier's label words
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
    return label_words(name) if name else []


def _snippet(text: str, words: list[str], width: int = 60) -> str:
    flat = " ".join(text.split())
    pos = min((flat.lower().find(w.lower()) for w in words if flat.lower().find(w.lower()) >= 0), default=0)
    start = max(0, pos - width // 3)
    s = flat[start : start + width]
    return ("…" if start > 0 else "") + s + ("…" if start + width < len(flat) else "")


def semantic_score(cos: float) -> float:
    """``S``: a sentence-encoder cosine mapped onto [0, 1]."""
    return float(min(1.0, max(0.0, (cos - SEM_LO) / (SEM_HI - SEM_LO))))
