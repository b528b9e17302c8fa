"""Classify: zero-shot over the caller's own labels.

There is no image-text contrastive model among the assets, so a user label is scored
against what perception found: each fact (classifier labels, detected objects, faces, text
read) is a short phrase with a weight (its score); a user label's score is the best
sentence-encoder similarity to any fact, weighted by that fact's confidence — or, when the
user's label names a WordNet category the fact's class belongs to ("building" and a *palace*
label, "animal" and a detected cat, "drink" and the espresso in a cup's own crop), a full
match, so categories match their members however unlike their words are. Scores are then
normalised with a softmax. Labels that match nothing perceived stay near uniform: the result
is honest about not knowing.
"""

from __future__ import annotations

import numpy as np

from oculi.backends.base import Perceiver, TextEmbedder
from oculi.core.errors import InputError
from oculi.core.types import ClassScore, Classification, Observation
from oculi.imageio import LoadedImage
from oculi.language.kinds import FINE_MIN, kind_of, kinds_for_word
from oculi.language.vocab import coco_for_word, gloss

TEMPERATURE = 0.05
MAX_LABELS = 100


def parse_labels(labels: str | list[str]) -> list[str]:
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    out: list[str] = []
    for x in items:
        x = x.strip()
        if x and x not in out:
            out.append(x)
    if len(out) < 2:
        raise InputError("give at least two distinct labels, e.g. --labels \"cat,dog,car\"")
    if len(out) > MAX_LABELS:
        raise InputError(f"{len(out)} labels given; the limit is {MAX_LABELS}")
    return out


def _facts(obs: Observation) -> list[tuple[str, float, str | None, bool]]:
    """``(phrase, confidence, class name, is a COCO name)`` for each thing perceived."""
    facts: list[tuple[str, float, str | None, bool]] = [
        (f"a photo of {gloss(lab.name)}", lab.score, lab.name, False) for lab in obs.labels
    ]
    for o in obs.objects:
        facts.append((f"a photo of {'a ' + o.colour + ' ' if o.colour else 'a '}{o.label}", o.score, o.label, True))
        facts += [(f"a photo of {gloss(lab.name)}", lab.score, lab.name, False) for lab in o.labels if lab.score >= FINE_MIN]
    if obs.text:
        facts.append((f"text: {obs.full_text[:200]}", 0.8, None, False))
        facts.append(("a document with printed text", min(1.0, 0.3 + 0.1 * len(obs.text)), None, False))
    return facts


def observation_facts(obs: Observation) -> list[tuple[str, float]]:
    """Short phrases for what was perceived, with their confidence."""
    return [(phrase, score) for phrase, score, _, _ in _facts(obs)]


def classify_observation(obs: Observation, labels: list[str], text_embedder: TextEmbedder) -> Classification:
    facts = _facts(obs)
    if not facts:
        u = 1.0 / len(labels)
        return Classification(tuple(ClassScore(lab, u) for lab in labels))
    vecs = text_embedder.embed_texts([f for f, *_ in facts] + [f"a photo of {lab}" for lab in labels])
    fv, lv = vecs[: len(facts)], vecs[len(facts):]  # [F, D], [L, D]
    w = np.array([s for _, s, _, _ in facts], dtype=np.float32)  # [F]
    sims = lv @ fv.T  # [L, F]
    for i, lab in enumerate(labels):  # a category matches its members fully
        kinds = kinds_for_word(lab, coco_for_word(lab))
        for j, (_, _, name, is_coco) in enumerate(facts):
            if kinds and name and kind_of(name, kinds, coco=is_coco):
                sims[i, j] = 1.0
    raw = (sims * np.sqrt(w)[None, :]).max(axis=1)  # [L]
    z = np.exp((raw - raw.max()) / TEMPERATURE)
    p = z / z.sum()
    order = np.argsort(-p)
    return Classification(tuple(ClassScore(labels[i], float(p[i])) for i in order))


def classify(loaded: LoadedImage, labels: str | list[str], perceiver: Perceiver, text_embedder: TextEmbedder) -> Classification:
    labs = parse_labels(labels)
    obs = perceiver.observe(loaded.image, loaded.info)
    return classify_observation(obs, labs, text_embedder)
