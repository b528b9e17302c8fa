"""Reading a text query: the concepts perception can have found (COCO objects with synonyms,
ImageNet classes, WordNet categories such as "building" or "drink", colour words) and its
other content words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from oculi.core.errors import InputError
from oculi.core.labels import COLOUR_WORDS
from oculi.language.kinds import kinds_for_word
from oculi.language.vocab import coco_for_word, imagenet_for_word, imagenet_to_coco

MAX_QUERY_CHARS = 1000
STOP_WORDS = frozenset("""
a an the of in on at to for with and or is are was were be been being this that these those it its
there here some any photo photos picture pictures image images photograph shot showing show shows
me my our your their his her find search look looking like containing contains with without from by
as into onto over under near all one""".split())


@dataclass(frozen=True)
class Concept:
    """One thing a query names: a COCO object and/or an ImageNet class, a colour, or a word;
    ``kinds`` are the WordNet categories it names (synset ids), whose members match it too."""

    word: str
    object: str | None = None
    label: str | None = None
    colour: str | None = None
    kinds: tuple[str, ...] = ()


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
    ImageNet class a label concept (with the COCO class it is a kind of), a colour word a colour;
    any of them, or another word, that names a WordNet category carries its ``kinds``
    ("building": a palace matches it).

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
            kinds = kinds_for_word(phrase, coco)
            if coco or inet or kinds:
                obj = coco or (imagenet_to_coco(inet) if inet else None)
                out.append(Concept(phrase, object=obj, label=inet, kinds=kinds))
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


def keyword_query(q: str) -> str:
    """The keyword query: the words of the query plus the canonical names of what it names
    ("people" also searches "person")."""
    c = parse_query(q)
    extra = [w for w in (*c.objects, *c.labels, *c.colours) if w not in q.lower()]
    return " ".join([q, *extra])
