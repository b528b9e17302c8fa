"""What the built-in model can name, and how words map onto it.

The built-in model only knows the 80 COCO object classes (detector), the 1000 ImageNet
classes (classifier), faces, colours and OCR text. Questions and captions are grounded in
that vocabulary: a noun in a question is mapped to a COCO class, an ImageNet class or a
coarse category here, or the model says it cannot tell.
"""

from __future__ import annotations

import functools
from importlib import resources

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

# Words people use for a COCO class (singular and plural). The class name itself and a
# regular plural are added automatically.
_COCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("people", "persons", "human", "humans", "man", "men", "woman", "women", "child",
               "children", "kid", "kids", "boy", "boys", "girl", "girls", "someone", "somebody",
               "anyone", "anybody", "pedestrian", "pedestrians", "astronaut", "astronauts", "worker",
               "workers", "individual", "individuals", "guy", "guys", "lady", "ladies"),
    "bicycle": ("bike", "bikes", "cycle"),
    "car": ("cars", "automobile", "automobiles", "vehicle", "vehicles", "taxi", "taxis"),
    "motorcycle": ("motorbike", "motorbikes", "motorcycles", "scooter", "scooters", "moped"),
    "airplane": ("plane", "planes", "aeroplane", "aeroplanes", "aircraft", "jet", "jets", "airliner"),
    "boat": ("ship", "ships", "boats", "vessel"),
    "tv": ("television", "televisions", "tvs", "monitor", "screen"),
    "cell phone": ("phone", "phones", "mobile", "smartphone", "smartphones", "cellphone"),
    "couch": ("sofa", "sofas"),
    "dining table": ("table", "tables", "desk"),
    "cup": ("mug", "mugs", "cups", "coffee cup", "teacup"),
    "sports ball": ("ball", "balls", "football", "soccer ball"),
    "potted plant": ("plant", "plants", "houseplant"),
    "cat": ("kitten", "kittens", "kitty", "cats"),
    "dog": ("puppy", "puppies", "dogs", "hound"),
    "bird": ("birds",),
    "remote": ("remote control",),
    "mouse": ("computer mouse",),
    "teddy bear": ("teddy", "stuffed animal", "soft toy"),
    "hair drier": ("hair dryer", "hairdryer"),
    "hot dog": ("hotdog", "hot dogs"),
    "donut": ("doughnut", "doughnuts"),
    "handbag": ("purse", "bag", "bags"),
    "skis": ("ski",),
    "wine glass": ("glass", "glasses"),
    "knife": ("knives",),
    "bus": ("buses", "busses", "coach"),
    "sheep": ("lamb", "lambs"),
    "cow": ("cows", "cattle", "ox", "bull"),
    "clock": ("clocks", "watch"),
    "book": ("books",),
    "face": ("faces",),
}

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

# Plain words for ImageNet classes whose names mislead or are too narrow to say alone.
IMAGENET_GLOSS: dict[str, str] = {
    "space shuttle": "space shuttle or rocket",
    "missile": "rocket or missile",
    "projectile": "rocket or missile",
    "espresso": "espresso coffee",
    "web site": "screenshot or web page",
    "book jacket": "book cover",
    "comic book": "comic or illustrated page",
    "crossword puzzle": "printed grid or puzzle",
    "envelope": "envelope or paper",
    "menu": "printed menu or page",
    "packet": "packet or package",
}

# Coarse categories for "what animal/vehicle is this?" questions.
CATEGORY_MEMBERS: dict[str, frozenset[str]] = {
    "animal": frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"}),
    "vehicle": frozenset({"bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"}),
    "food": frozenset({"banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake"}),
    "furniture": frozenset({"chair", "couch", "bed", "dining table", "toilet", "bench"}),
    "electronics": frozenset({"tv", "laptop", "mouse", "remote", "keyboard", "cell phone"}),
}
CATEGORY_WORDS: dict[str, str] = {
    "animal": "animal", "animals": "animal", "pet": "animal", "pets": "animal", "creature": "animal",
    "vehicle": "vehicle", "vehicles": "vehicle", "transport": "vehicle",
    "food": "food", "fruit": "food", "dish": "food", "meal": "food",
    "furniture": "furniture", "device": "electronics", "electronics": "electronics", "gadget": "electronics",
}


def plural(word: str, n: int = 2) -> str:
    """English plural of a class name ("person" → "people", "bus" → "buses")."""
    if n == 1:
        return word
    irregular = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep",
                 "skis": "skis", "face": "faces", "wine glass": "wine glasses", "bus": "buses",
                 "tv": "TVs", "hair drier": "hair driers", "sports ball": "balls"}
    if word in irregular:
        return irregular[word]
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


@functools.lru_cache(maxsize=1)
def imagenet_lemmas() -> tuple[tuple[str, ...], ...]:
    """All lemmas of the 1000 ImageNet classes, in class-index order."""
    text = resources.files("oculi.data").joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        if line.strip():
            _, lemmas = line.split("\t", 1)
            out.append(tuple(x.strip() for x in lemmas.split(",")))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def imagenet_index() -> dict[str, int]:
    """First lemma → class index."""
    return {lemmas[0]: i for i, lemmas in enumerate(imagenet_lemmas())}


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


@functools.lru_cache(maxsize=1)
def _word_to_coco() -> dict[str, str]:
    table: dict[str, str] = {}
    for c in COCO_CLASSES:
        table[c] = c
        table[plural(c)] = c
        table[plural(c).lower()] = c
    table["face"] = "face"
    table["faces"] = "face"
    for c, words in _COCO_SYNONYMS.items():
        for w in words:
            table.setdefault(w, c)
    return table


def coco_for_word(word: str) -> str | None:
    """Map a noun phrase to a COCO class (or ``"face"``) by name, plural or synonym."""
    w = word.strip().lower()
    table = _word_to_coco()
    if w in table:
        return table[w]
    # last word of a longer phrase: "red car" → car, "coffee cups" → cup
    parts = w.split()
    for n in range(len(parts) - 1, 0, -1):
        tail = " ".join(parts[-n:])
        if tail in table:
            return table[tail]
    return None


@functools.lru_cache(maxsize=1)
def _lemma_to_imagenet() -> dict[str, str]:
    out: dict[str, str] = {}
    for lemmas in imagenet_lemmas():
        for lem in lemmas:
            out.setdefault(lem.lower(), lemmas[0])
    return out


def imagenet_for_word(word: str) -> str | None:
    """Map a noun to an ImageNet class (first lemma) when it names one exactly."""
    w = word.strip().lower()
    table = _lemma_to_imagenet()
    if w in table:
        return table[w]
    if w.endswith("s") and w[:-1] in table:
        return table[w[:-1]]
    return None


def gloss(imagenet_name: str) -> str:
    """Plain words for an ImageNet class name."""
    return IMAGENET_GLOSS.get(imagenet_name, imagenet_name)
