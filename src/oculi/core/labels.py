"""The label sets the built-in models speak, and the colour words: one copy for every layer.

Perception (the detector's 80 COCO classes, the classifier's 1000 ImageNet classes, the colour
namer's eleven colours) and language/search (mapping words onto those labels) both read these
tables from here, below both of them, so neither imports the other for a list of names.
"""

from __future__ import annotations

import functools
from importlib import resources

from oculi.core.errors import ModelAssetError

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


# ImageNet class index → COCO class, where the ImageNet class is a kind of that COCO object.
_IMAGENET_TO_COCO_RANGES: tuple[tuple[range, str], ...] = (
    (range(7, 25), "bird"), (range(80, 101), "bird"), (range(127, 147), "bird"),
    (range(151, 269), "dog"), (range(281, 286), "cat"), (range(294, 298), "bear"),
)
_IMAGENET_TO_COCO: dict[int, str] = {
    339: "horse", 340: "zebra", 345: "cow", 346: "cow", 348: "sheep", 385: "elephant",
    386: "elephant", 404: "airplane", 895: "airplane", 414: "backpack", 444: "bicycle",
    671: "bicycle", 468: "car", 511: "car", 609: "car", 627: "car", 656: "car", 717: "truck",
    751: "car", 817: "car", 436: "car", 555: "truck", 569: "truck", 675: "truck", 734: "truck",
    864: "truck", 867: "truck", 779: "bus", 874: "bus", 654: "bus", 665: "motorcycle",
    670: "motorcycle", 466: "train", 547: "train", 820: "train", 705: "train", 565: "train",
    829: "train", 472: "boat", 484: "boat", 554: "boat", 576: "boat", 625: "boat", 628: "boat",
    780: "boat", 814: "boat", 871: "boat", 914: "boat", 510: "boat", 504: "cup", 968: "cup",
    967: "cup", 409: "clock", 530: "clock", 892: "clock", 620: "laptop", 681: "laptop",
    664: "tv", 782: "tv", 851: "tv", 487: "cell phone", 673: "mouse", 508: "keyboard",
    761: "remote", 651: "microwave", 760: "refrigerator", 859: "toaster", 703: "bench",
    879: "umbrella", 748: "handbag", 795: "skis", 805: "sports ball", 852: "sports ball",
    890: "sports ball", 768: "sports ball", 429: "sports ball", 430: "sports ball",
    574: "sports ball", 752: "tennis racket", 440: "bottle", 737: "bottle", 898: "bottle",
    907: "bottle", 441: "wine glass", 910: "spoon", 659: "bowl", 809: "bowl", 948: "apple",
    950: "orange", 954: "banana", 937: "broccoli", 934: "hot dog", 963: "pizza", 532: "dining table",
    831: "couch", 765: "chair", 559: "chair", 423: "chair", 564: "bed", 861: "toilet", 883: "vase",
    850: "teddy bear", 920: "traffic light", 704: "parking meter", 21: "kite", 917: "book",
    921: "book",
}



def imagenet_to_coco(name: str) -> str | None:
    """The COCO class an ImageNet class (by first lemma) is a kind of, if any."""
    idx = imagenet_index().get(name)
    if idx is None:
        return None
    if idx in _IMAGENET_TO_COCO:
        return _IMAGENET_TO_COCO[idx]
    for rng, coco in _IMAGENET_TO_COCO_RANGES:
        if idx in rng:
            return coco
    return None


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
