"""Understanding a question: what kind it is and what it is about.

Rules cover the question forms people ask of photos (counting, presence, colour, position,
text, category, "what kind of …", what a person is wearing, holding or eating). The noun a question is about is resolved against what the built-in model
can recognise (``vocab``); an optional ``resolve`` callback (the sentence encoder) maps words
that the tables miss ("automobile" → car) to the nearest known class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from oculi.core.labels import COLOUR_WORDS
from oculi.core.types import AnswerKind
from oculi.language.kinds import kinds_for_word
from oculi.language.vocab import CATEGORY_WORDS, coco_for_word, imagenet_for_word


# Things the classifier (not the detector) knows, by everyday word → ImageNet first lemmas.
IMAGENET_CONCEPTS: dict[str, tuple[str, ...]] = {
    "rocket": ("space shuttle", "missile", "projectile"),
    "rockets": ("space shuttle", "missile", "projectile"),
    "coffee": ("espresso", "cup", "coffee mug"),
    "espresso": ("espresso",),
    "helmet": ("football helmet", "crash helmet"),
    "coin": ("coin",),
    "coins": ("coin",),
    "flag": ("flagpole",),
    "guitar": ("acoustic guitar", "electric guitar"),
}

_SCENE_WORDS = {"image", "picture", "photo", "photograph", "scene", "background", "it", "this", "everything"}
_STRIP = re.compile(
    r"^(the|a|an|any|some|more than one|several|many|of the|of)\s+|\s+(in|on|at|inside|within)\s+(the|this|that)?\s*(image|picture|photo|photograph|scene|frame|shot)\s*$"
)

Resolver = Callable[[str], str | None]


@dataclass(frozen=True)
class Target:
    """What a question is about, resolved against the model's vocabulary."""

    phrase: str  # the words as asked ("red cars")
    coco: str | None = None  # detector class or "face"
    imagenet: tuple[str, ...] = ()  # classifier classes
    category: str | None = None  # "animal", "vehicle", ...
    colour: str | None = None  # a colour word inside the phrase ("red car")
    scene: bool = False  # the whole image
    kinds: tuple[str, ...] = ()  # WordNet categories the phrase names ("building", "drink")

    @property
    def known(self) -> bool:
        return bool(self.coco or self.imagenet or self.category or self.scene or self.kinds)

    @property
    def name(self) -> str:
        """The noun to answer with: the class, category or the words as asked."""
        return self.coco or self.category or clean_phrase(self.phrase).removeprefix(f"{self.colour} ").strip()


@dataclass(frozen=True)
class ParsedQuestion:
    kind: AnswerKind
    target: Target | None
    colour_asked: str | None = None  # "is the car red?" → "red"
    identity: bool = False  # "is this a cat?" (the whole image *is* X) vs "is there a cat?"
    asked: Target | None = None  # "is the person wearing a uniform?" → uniform


def clean_phrase(phrase: str) -> str:
    p = phrase.strip().strip("?.!").strip().lower()
    for _ in range(3):
        p2 = _STRIP.sub("", p).strip()
        if p2 == p:
            break
        p = p2
    return p


def resolve_target(phrase: str, resolve: Resolver | None = None) -> Target:
    """Map a noun phrase onto the classes the built-in model knows."""
    p = clean_phrase(phrase)
    phrase = p
    colour = None
    words = p.split()
    if words and words[0] in COLOUR_WORDS:
        colour = COLOUR_WORDS[words[0]]
        p = " ".join(words[1:])
    if p in _SCENE_WORDS or not p:
        return Target(phrase, scene=True, colour=colour)
    if p in CATEGORY_WORDS:
        return Target(phrase, category=CATEGORY_WORDS[p], colour=colour, kinds=kinds_for_word(p))
    coco = coco_for_word(p)
    concepts = IMAGENET_CONCEPTS.get(p, ())
    if not concepts:
        inet = imagenet_for_word(p)
        concepts = (inet,) if inet else ()
    kinds = kinds_for_word(p, coco)
    if coco is None and not concepts and not kinds and resolve is not None:
        coco = resolve(p)
    return Target(phrase, coco=coco, imagenet=concepts, colour=colour, kinds=kinds)


_COUNT = re.compile(r"^how many (?P<x>.+?)(?:\s+(?:are|is|can|do|does|were|there)\b.*)?$")
_COLOUR = re.compile(r"^what colou?rs? (?:is|are|was|were|does|do) (?:the |this |that |these |those )?(?P<x>.+?)(?: have)?$")
_COLOUR2 = re.compile(r"^what is the colou?r of (?:the |this |that )?(?P<x>.+)$")
_IS_COLOUR = re.compile(r"^(?:is|are) (?:the |this |that )?(?P<x>.+?) (?P<c>" + "|".join(COLOUR_WORDS) + r")$")
_WHERE = re.compile(r"^where (?:is|are|was|were) (?:the |a |an |my )?(?P<x>.+?)$")
_THERE = re.compile(r"^(?:is|are) there (?P<x>.+?)$")
_SEE = re.compile(r"^(?:do|can) (?:you|i|we) see (?P<x>.+?)$")
_CONTAIN = re.compile(r"^(?:does|do) (?:it|this|the (?:image|picture|photo|photograph|scene)) (?:contain|show|have|include|depict) (?P<x>.+?)$")
_IS_THIS = re.compile(r"^(?:is|are) (?:this|that|it|these|those) (?:a |an |some )?(?P<x>.+?)$")
_ANY = re.compile(r"^any (?P<x>.+?)$")
_TEXT = re.compile(
    r"(what (?:does|do) (?:the |this |that )?(?:\w+ ){0,3}(?:say|read)|what(?:'s| is) written|what text|which text|what words|read (?:the |this )?(?:text|sign|label|writing)|what is the text|transcribe|what does it say|what(?:'s| is) on the (?:sign|label|screen|page|board))"
)
_WHAT_KIND = re.compile(
    r"^(?:what|which) (?:(?:kind|type|sort|breed|species|variety|make|model)s? of )?(?P<x>[a-z][a-z' -]*?) "
    r"(?:is|are) (?:this|that|it|these|those|there|shown|visible|in (?:the|this) (?:image|picture|photo|photograph))$"
)
_GENERIC_THINGS = {"object", "objects", "thing", "things", "item", "items"}
# "what is the man wearing?", "what does she hold?", "is the person wearing a uniform?"
_RELATION_VERBS = {
    "wearing": AnswerKind.WEARING, "wear": AnswerKind.WEARING, "dressed in": AnswerKind.WEARING,
    "have on": AnswerKind.WEARING, "holding": AnswerKind.HOLDING, "hold": AnswerKind.HOLDING,
    "carrying": AnswerKind.HOLDING, "carry": AnswerKind.HOLDING, "eating": AnswerKind.EATING,
    "eat": AnswerKind.EATING, "drinking": AnswerKind.EATING, "drink": AnswerKind.EATING,
}  # fmt: skip
_DET = r"(?:the |this |that |these |those |a |an )?"
_WHAT_REL = re.compile(r"^what (?:is|are|was|were) " + _DET + r"(?P<x>.+?) (?P<v>wearing|dressed in|holding|carrying|eating|drinking)$")
_WHAT_REL2 = re.compile(r"^what (?:does|do|did) " + _DET + r"(?P<x>.+?) (?P<v>wear|have on|hold|carry|eat|drink)$")
_IS_REL = re.compile(r"^(?:is|are) " + _DET + r"(?P<x>.+?) (?P<v>wearing|dressed in|holding|carrying|eating|drinking) (?P<y>.+)$")
_WHAT_IS = re.compile(
    r"^(what (?:is|are) (?:this|that|it|these|those|shown|in (?:the|this) (?:image|picture|photo|photograph))|what do you see|what can you see|what(?:'s| is) (?:in|on) (?:the|this) (?:image|picture|photo)|describe|what is the (?:image|picture|photo) (?:of|about|showing)|what does (?:the|this) (?:image|picture|photo) show)"
)


def parse_question(question: str, resolve: Resolver | None = None) -> ParsedQuestion:
    """Classify a question and resolve what it is about.

    Example:
        >>> pq = parse_question("How many people are in the photo?")
        >>> pq.kind.value, pq.target.coco
        ('count', 'person')
    """
    q = " ".join(question.strip().lower().replace("’", "'").split()).rstrip("?!. ")
    if _TEXT.search(q):
        return ParsedQuestion(AnswerKind.TEXT, None)
    if m := _COUNT.match(q):
        return ParsedQuestion(AnswerKind.COUNT, resolve_target(m["x"], resolve))
    if m := (_COLOUR.match(q) or _COLOUR2.match(q)):
        return ParsedQuestion(AnswerKind.COLOUR, resolve_target(m["x"], resolve))
    if m := _IS_COLOUR.match(q):
        if not m["x"].startswith("there "):
            return ParsedQuestion(AnswerKind.COLOUR, resolve_target(m["x"], resolve), colour_asked=COLOUR_WORDS[m["c"]])
    if m := _WHERE.match(q):
        return ParsedQuestion(AnswerKind.POSITION, resolve_target(m["x"], resolve))
    for rx in (_WHAT_REL, _WHAT_REL2, _IS_REL):
        if m := rx.match(q):
            y = m.groupdict().get("y")
            return ParsedQuestion(
                _RELATION_VERBS[m["v"]], resolve_target(m["x"], resolve), asked=resolve_target(y, resolve) if y else None
            )
    if m := _WHAT_KIND.match(q):
        if m["x"] in _GENERIC_THINGS:
            return ParsedQuestion(AnswerKind.CATEGORY, Target(m["x"], scene=True))
        t = resolve_target(m["x"], resolve)
        return ParsedQuestion(AnswerKind.CATEGORY, t if t.known and not t.scene else Target(m["x"]))
    if _WHAT_IS.match(q):
        return ParsedQuestion(AnswerKind.CATEGORY, Target("image", scene=True))
    for rx in (_THERE, _SEE, _CONTAIN, _ANY):
        if m := rx.match(q):
            return ParsedQuestion(AnswerKind.PRESENCE, resolve_target(m["x"], resolve))
    if m := _IS_THIS.match(q):
        return ParsedQuestion(AnswerKind.PRESENCE, resolve_target(m["x"], resolve), identity=True)
    return ParsedQuestion(AnswerKind.UNKNOWN, None)
