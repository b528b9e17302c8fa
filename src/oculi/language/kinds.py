"""Words as categories: which perceived labels are kinds of what a question or query names.

Built on WordNet's hypernyms (``oculi.core.taxonomy``): "building" names the synset
*building, edifice*, and a *palace* label is a kind of it. A word that also names a COCO
class keeps only the senses that class is (or is a kind of): "ball" is the game ball, not
the globe-shaped bubble; "plant" is the potted plant and plant life, not a factory.

Also the kinds a person's crop is read for: what they wear (clothing, footwear, jewellery,
glasses, masks, armour), hold (devices, implements, instruments, containers, toys) or eat
(food and drink).
"""

from __future__ import annotations

import functools
from typing import Iterable

from oculi.core.labels import imagenet_to_coco
from oculi.core.taxonomy import taxonomy
from oculi.core.types import DetectedObject, Label

WEARABLE_WORDS = ("clothing", "footwear", "jewelry", "spectacles", "mask", "body armor", "hairpiece")
HANDHELD_WORDS = ("device", "implement", "container", "musical instrument", "plaything", "equipment", "weapon")
EDIBLE_WORDS = ("food", "beverage")
FINE_MIN = 0.1  # a crop label weaker than this does not name an object's kind


@functools.lru_cache(maxsize=4096)
def kinds_for_word(word: str, coco: str | None = None) -> tuple[str, ...]:
    """The WordNet categories (synset ids) a noun names, or ``()``.

    Args:
        word: A noun or noun phrase, singular or plural ("buildings", "drink").
        coco: The COCO class the word also names, if any: then only the senses that class is,
            or is a kind of, are kept.

    Example:
        >>> [taxonomy().name(s) for s in kinds_for_word("drinks")]
        ['beverage']
    """
    tax = taxonomy()
    senses = tax.senses(word)
    if coco is None:
        return senses
    anc = tax.label_ancestors(coco, coco=True)
    return tuple(s for s in senses if s in anc)


def kind_of(label: str, kinds: Iterable[str], *, coco: bool = False) -> str | None:
    """The category name ``label`` falls under, or ``None``.

    Args:
        label: An ImageNet class name, or with ``coco=True`` a detector's COCO class name.
        kinds: Synset ids (``kinds_for_word``).
    """
    kinds = tuple(kinds)
    return taxonomy().kind_of(label, kinds, coco=coco) if kinds else None


@functools.lru_cache(maxsize=1)
def _groups() -> dict[str, tuple[str, ...]]:
    def senses(words: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for w in words for s in taxonomy().senses(w)))

    return {"wear": senses(WEARABLE_WORDS), "hold": senses(HANDHELD_WORDS), "eat": senses(EDIBLE_WORDS)}


def wearable_kinds() -> tuple[str, ...]:
    return _groups()["wear"]


def handheld_kinds() -> tuple[str, ...]:
    return _groups()["hold"]


def edible_kinds() -> tuple[str, ...]:
    return _groups()["eat"]


def labels_of_kind(labels: Iterable[Label], kinds: Iterable[str], min_score: float = FINE_MIN) -> list[Label]:
    """The labels (best first) that are kinds of any of ``kinds`` and score at least ``min_score``."""
    kinds = tuple(kinds)
    return sorted((lab for lab in labels if lab.score >= min_score and kind_of(lab.name, kinds)), key=lambda lab: -lab.score)


def fine_name(obj: DetectedObject, min_score: float = FINE_MIN) -> Label | None:
    """The object's most likely finer class: its best crop label that is a kind of its own
    class (``cat`` → ``Egyptian cat``), or ``None``.

    Example:
        >>> from oculi.core.types import Box
        >>> cat = DetectedObject("cat", 0.8, Box(0, 0, 9, 9), labels=(Label("window screen", 0.3), Label("tabby", 0.2)))
        >>> fine_name(cat)
        Label(name='tabby', score=0.2)
    """
    if obj.label in ("person", "face"):
        return None
    fine = [lab for lab in obj.labels if lab.score >= min_score and lab.name != obj.label and imagenet_to_coco(lab.name) == obj.label]
    return max(fine, key=lambda lab: lab.score) if fine else None


# Everyday categories a caption may add to an unfamiliar class name ("a daisy, a kind of
# flower"), most specific first.
BASIC_CATEGORIES = (
    "dog", "cat", "bird", "fish", "snake", "lizard", "turtle", "frog", "insect", "spider", "monkey",
    "flower", "fungus", "fruit", "vegetable", "dish", "beverage", "bread", "dessert",
    "building", "bridge", "aircraft", "boat", "car", "truck", "bicycle", "train", "vehicle",
    "musical instrument", "footwear", "headdress", "clothing", "furniture", "tool", "weapon",
    "computer", "toy", "sports equipment", "animal",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def _basic() -> tuple[tuple[str, str], ...]:
    tax = taxonomy()
    return tuple((w, s) for w in BASIC_CATEGORIES for s in tax.senses(w)[:1])


def basic_category(label: str) -> str | None:
    """The everyday category of an ImageNet class ("daisy" → "flower", "palace" →
    "building"), or ``None`` when none fits or the name already says it ("tiger cat")."""
    anc = taxonomy().label_ancestors(label)
    for word, syn in _basic():
        if syn in anc:
            return None if word in label.lower() else word
    return None
