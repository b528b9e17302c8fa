"""The label sets the built-in models speak, and the colour words: one copy for every layer.

Perception (the detector's 80 COCO classes, the classifier's 1000 ImageNet classes, the colour
namer's eleven colours) and language/search (mapping words onto those labels) both read these
tables from here, below both of them, so neither imports the other for a list of names.
"""

from __future__ import annotations

import functools
from importlib import resources

from oculi.core.errors import ModelAssetError
from oculi.core.taxonomy import taxonomy

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: ImageNet classes in class-index order; a WordNet 3.0 noun synset id and its lemmas per line.
IMAGENET_CLASSES_FILE = "imagenet_classes.tsv"


@functools.lru_cache(maxsize=1)
def imagenet_lemmas() -> tuple[tuple[str, ...], ...]:
    """All lemmas (synonyms) of the 1000 ImageNet classes, in class-index order.

    Returns:
        ``lemmas[i]`` holds the names of class ``i``, the common name first, e.g.
        ``("tabby", "tabby cat")`` or ``("espresso",)``.

    Raises:
        ModelAssetError: the packaged class list is damaged (not 1000 classes).
    """
    text = resources.files("oculi.data").joinpath(IMAGENET_CLASSES_FILE).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        if line.strip():
            _synset, lemmas = line.split("\t", 1)
            out.append(tuple(s.strip() for s in lemmas.split(",") if s.strip()))
    if len(out) != 1000:
        raise ModelAssetError(f"oculi/data/{IMAGENET_CLASSES_FILE} lists {len(out)} ImageNet classes, expected 1000")
    return tuple(out)


@functools.lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """The display name of each ImageNet class: its first lemma ("Egyptian cat", "espresso")."""
    return tuple(lemmas[0] for lemmas in imagenet_lemmas())


@functools.lru_cache(maxsize=1)
def imagenet_index() -> dict[str, int]:
    """First lemma → class index."""
    return {name: i for i, name in enumerate(imagenet_names())}


# ImageNet classes that the detector would call by a COCO name WordNet does not give them: a
# coffee mug is not a WordNet cup, nor a liner a (small) boat, nor a minivan a car (WordNet:
# a truck), but COCO's detector calls them so.
_LOOKS_LIKE_COCO: dict[str, str] = {
    "water buffalo": "cow", "beer glass": "wine glass", "minivan": "car", "motor scooter": "motorcycle",
    "notebook": "laptop", "purse": "handbag", "racket": "tennis racket", "toilet seat": "toilet",
    "warplane": "airplane", "comic book": "book", "book jacket": "book",
    "coffee mug": "cup", "espresso": "cup", "cup": "cup",
    "monitor": "tv", "screen": "tv", "television": "tv",
    "catamaran": "boat", "container ship": "boat", "liner": "boat", "schooner": "boat", "trimaran": "boat",
    "electric locomotive": "train", "steam locomotive": "train", "freight car": "train",
    "passenger car": "train", "streetcar": "train",
}  # fmt: skip
# ... and ImageNet classes WordNet files under a COCO class that the detector would not call so.
_NOT_COCO = frozenset({"Dutch oven", "punching bag"})  # a cast-iron pot; a heavy bag, not a ball


@functools.lru_cache(maxsize=None)
def imagenet_to_coco(name: str) -> str | None:
    """The COCO class an ImageNet class (by first lemma) is a kind of, if any.

    WordNet decides (``tabby`` → cat, ``sports car`` → car, ``kite`` → bird: ImageNet's kite
    is the bird of prey), with ``_LOOKS_LIKE_COCO`` for what the detector calls by another name.
    """
    if name in _LOOKS_LIKE_COCO:
        return _LOOKS_LIKE_COCO[name]
    if name in _NOT_COCO or name not in imagenet_index():
        return None
    return taxonomy().coco_of(name)


# Coarse categories for "what animal/vehicle is this?" questions.
CATEGORY_MEMBERS: dict[str, frozenset[str]] = {
    "animal": frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"}),
    "vehicle": frozenset({"bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"}),
    "food": frozenset({"banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake"}),
    "furniture": frozenset({"chair", "couch", "bed", "dining table", "toilet", "bench"}),
    "electronics": frozenset({"tv", "laptop", "mouse", "remote", "keyboard", "cell phone"}),
}

#: The eleven basic colour names perception reports, in its index order.
COLOUR_NAMES: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
)  # fmt: skip

#: Every colour word a user may write → the colour name perception reports.
COLOUR_WORDS: dict[str, str] = {
    **{c: c for c in COLOUR_NAMES},
    "gray": "grey", "violet": "purple", "silver": "grey", "gold": "yellow",
}
