"""What the classes the built-in models name are kinds of: WordNet 3.0's noun hierarchy.

The 1000 ImageNet classes are WordNet 3.0 noun synsets (their ids are WordNet offsets), so
WordNet knows that a palace is a building, a daisy a flower, a tabby a cat and an animal, a
military uniform a garment and espresso a drink. ``scripts/derive_wordnet.py`` derived, once,
the part of WordNet these classes need from Debian's ``wordnet-base`` package: every ImageNet
class, every COCO class (each pinned to one sense), all their hypernyms with their lemmas, and
which kept senses each word can mean. The table ships as ``oculi/data/wordnet_nouns.json``
(about 1,900 synsets, 235 KiB) under WordNet's licence (``oculi/data/WORDNET_LICENSE``); it is
checked against its SHA-256 and read lazily, once per process, on first use.

Words too general to be a useful category ("entity", "object", "artifact", "organism") name
no category here: "Is there an object?" should not be answered yes by a palace.

Example:
    >>> tax = taxonomy()
    >>> tax.kind_of("palace", tax.senses("building"))
    'building'
    >>> tax.kind_of("tabby", tax.senses("animals"))
    'animal'
    >>> tax.coco_of("tabby")
    'cat'
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from typing import Iterable

from oculi.core.errors import ModelAssetError

TABLE_FILE = "wordnet_nouns.json"
TABLE_SHA256 = "04a51c85f24b9ddaa1dd287533bcf7acb3fc269c3d5c2c37ad12222f0ddd27b6"
TABLE_FORMAT_VERSION = 1

MIN_CATEGORY_DEPTH = 4  # synsets nearer the root ("entity", "object", "whole") name no category
TOO_GENERAL = frozenset({"artifact", "living thing", "organism", "instrumentality", "natural object", "piece"})


class Taxonomy:
    """The hypernym table, with lookups by word, by ImageNet class name and by COCO class.

    Labels are named as oculi names them: an ImageNet class by its first lemma (``"tabby"``,
    ``"espresso"``), a COCO class by its COCO name (``"cat"``, ``"tv"``). Two ImageNet classes
    share a first lemma ("crane" the bird and the machine, "maillot" twice): such a name is
    only said to be a kind of what *both* classes are.
    """

    def __init__(self, table: dict) -> None:
        if table.get("format") != "oculi-wordnet-nouns" or table.get("format_version") != TABLE_FORMAT_VERSION:
            raise ModelAssetError(f"oculi/data/{TABLE_FILE} is not a version {TABLE_FORMAT_VERSION} WordNet table")
        self._synsets: dict[str, dict] = table["synsets"]
        self._words: dict[str, list[str]] = table["words"]
        self._plurals: dict[str, str] = table["plurals"]
        self.imagenet: tuple[str, ...] = tuple(table["imagenet"])  # class index → synset
        self.coco: dict[str, str] = dict(table["coco"])  # COCO name → synset
        self._coco_by_synset = {s: c for c, s in self.coco.items()}
        by_name: dict[str, list[str]] = {}
        for off in self.imagenet:
            by_name.setdefault(self.name(off), []).append(off)
        self._imagenet_by_name = {k: tuple(v) for k, v in by_name.items()}
        lower: dict[str, list[str]] = {}
        for k, v in by_name.items():
            lower.setdefault(k.lower(), []).extend(v)
        self._imagenet_by_lower = {k: tuple(v) for k, v in lower.items()}

    # --- synsets ------------------------------------------------------------------------------
    def name(self, synset: str) -> str:
        """A synset's first lemma ("building", "tabby")."""
        return self._synsets[synset]["lemmas"][0]

    def lemmas(self, synset: str) -> tuple[str, ...]:
        return tuple(self._synsets[synset]["lemmas"])

    @functools.lru_cache(maxsize=4096)
    def ancestors(self, synset: str) -> frozenset[str]:
        """The synset and all its hypernyms (transitively)."""
        out = {synset}
        for h in self._synsets[synset]["hypernyms"]:
            out |= self.ancestors(h)
        return frozenset(out)

    @functools.lru_cache(maxsize=4096)
    def depth(self, synset: str) -> int:
        """Shortest hypernym path to the root ("entity" is 0, "animal" 6)."""
        hypers = self._synsets[synset]["hypernyms"]
        return 0 if not hypers else 1 + min(self.depth(h) for h in hypers)

    def is_category(self, synset: str) -> bool:
        return self.depth(synset) >= MIN_CATEGORY_DEPTH and self.name(synset) not in TOO_GENERAL

    # --- words --------------------------------------------------------------------------------
    def senses(self, word: str) -> tuple[str, ...]:
        """The kept synsets a noun (singular or plural) can mean, most frequent sense first.

        Only senses that are categories (not too general) are returned; an unknown word gives ``()``.
        """
        w = " ".join(word.strip().lower().split())
        for cand in self._base_forms(w):
            if cand in self._words:
                return tuple(s for s in self._words[cand] if self.is_category(s))
        return ()

    def _base_forms(self, w: str) -> Iterable[str]:
        yield w
        if w in self._plurals:
            yield self._plurals[w]
        head, _, last = w.rpartition(" ")
        pre = head + " " if head else ""
        if last.endswith("ies") and len(last) > 4:
            yield pre + last[:-3] + "y"
        if last.endswith("es") and len(last) > 3:
            yield pre + last[:-2]
        if last.endswith("s") and len(last) > 2:
            yield pre + last[:-1]
        if last.endswith("men"):
            yield pre + last[:-3] + "man"

    # --- labels -------------------------------------------------------------------------------
    def label_synsets(self, label: str) -> tuple[str, ...]:
        """The synsets a label names: an ImageNet first lemma (case first matters: "Cardigan"
        is the corgi, "cardigan" the sweater), else a COCO class name."""
        lab = label.strip()
        if lab in self._imagenet_by_name:
            return self._imagenet_by_name[lab]
        low = lab.lower()
        if low in self.coco:
            return (self.coco[low],)
        return self._imagenet_by_lower.get(low, ())

    def label_ancestors(self, label: str, *, coco: bool = False) -> frozenset[str]:
        """What a label certainly is: the ancestors shared by every class it may name.

        With ``coco=True`` the label is a COCO class name (a detector's label): "kite" is then
        the toy, not ImageNet's bird of prey, and "cup" the container, not the drink."""
        syns = ((self.coco[label],) if label in self.coco else ()) if coco else self.label_synsets(label)
        if not syns:
            return frozenset()
        return frozenset.intersection(*(self.ancestors(s) for s in syns))

    def kind_of(self, label: str, categories: Iterable[str], *, coco: bool = False) -> str | None:
        """The name of the first of ``categories`` (synsets) that ``label`` is, or is a kind of
        (``coco=True``: ``label`` is a COCO class name, see ``label_ancestors``).

        Example:
            >>> tax = taxonomy()
            >>> tax.kind_of("espresso", tax.senses("drink")), tax.kind_of("espresso", tax.senses("animal"))
            ('beverage', None)
        """
        anc = self.label_ancestors(label, coco=coco)
        for c in categories:
            if c in anc:
                return self.name(c)
        return None

    def coco_of(self, label: str) -> str | None:
        """The COCO class an ImageNet class is a kind of (the most specific one), if any.

        ``"tabby"`` → ``"cat"``, ``"sports car"`` → ``"car"``, ``"palace"`` → ``None``.
        """
        anc = self.label_ancestors(label)
        found = [s for s in anc if s in self._coco_by_synset]
        if not found:
            return None
        return self._coco_by_synset[max(found, key=self.depth)]


def parse_table(raw: bytes) -> Taxonomy:
    """Check the table's bytes against ``TABLE_SHA256`` and build the ``Taxonomy``.

    Raises:
        ModelAssetError: the bytes are not the shipped table.
    """
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TABLE_SHA256:
        raise ModelAssetError(
            f"oculi/data/{TABLE_FILE} is damaged (SHA-256 {digest[:12]}…, expected {TABLE_SHA256[:12]}…); "
            "reinstall oculi or re-run scripts/derive_wordnet.py"
        )
    return Taxonomy(json.loads(raw))


@functools.lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The process-wide taxonomy, read on first use (about 20 ms).

    Raises:
        ModelAssetError: the packaged table is missing, damaged or of another format version.
    """
    try:
        return parse_table(resources.files("oculi.data").joinpath(TABLE_FILE).read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise ModelAssetError(f"cannot read oculi/data/{TABLE_FILE}: {exc}") from exc
