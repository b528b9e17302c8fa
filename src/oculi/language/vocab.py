"""What the built-in model can name, and how words map onto it.

The built-in model only knows the 80 COCO object classes (detector), the 1000 ImageNet
classes (classifier), faces, colours and OCR text. Questions and captions are grounded in
that vocabulary: a noun in a question is mapped to a COCO class, an ImageNet class or a
coarse category here, or the model says it cannot tell.
"""

from __future__ import annotations

import functools

from oculi.core.labels import (  # noqa: F401 - the label sets live in core; re-exported for language users
    CATEGORY_MEMBERS,
    COCO_CLASSES,
    imagenet_index,
    imagenet_lemmas,
    imagenet_to_coco,
)
from oculi.language.kinds import basic_category

# Words people use for a COCO class (singular and plural). The class name itself and a
# regular plural are added automatically.
_COCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("people", "persons", "human", "humans", "man", "men", "woman", "women", "child",
               "children", "kid", "kids", "boy", "boys", "girl", "girls", "someone", "somebody",
               "anyone", "anybody", "pedestrian", "pedestrians", "astronaut", "astronauts", "worker",
               "workers", "individual", "individuals", "guy", "guys", "lady", "ladies", "he", "she",
               "they", "him", "her", "them"),
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

# Words for the coarse categories (``CATEGORY_MEMBERS``) in "what animal/vehicle is this?" questions.
CATEGORY_WORDS: dict[str, str] = {
    "animal": "animal", "animals": "animal", "pet": "animal", "pets": "animal", "creature": "animal",
    "vehicle": "vehicle", "vehicles": "vehicle", "transport": "vehicle",
    "food": "food", "meal": "food",  # "fruit", "dish": WordNet's categories are more precise
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


def label_words(name: str) -> list[str]:
    """An ImageNet label's plain gloss, all its lemmas, the COCO class it is a kind of and its
    everyday WordNet category.

    Example:
        >>> label_words("tabby"), label_words("palace")
        (['tabby', 'tabby cat', 'cat'], ['palace', 'building'])
    """
    idx = imagenet_index().get(name)
    lemmas = list(imagenet_lemmas()[idx]) if idx is not None else [name]
    coco = imagenet_to_coco(name)
    category = basic_category(name) if idx is not None else None
    words = [gloss(name), *lemmas] + ([coco] if coco else []) + ([category] if category else [])
    return list(dict.fromkeys(w for w in words if w))
