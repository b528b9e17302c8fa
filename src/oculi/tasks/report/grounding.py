"""Grounding: report prose may only state what the observations and records carry.

Every sentence of a report's prose (summary, findings, cross-checks, recommendations, and the
text of a configured narrator model, when one rewrites the summary) passes ``ground_text``:

- **numbers** (``4711``, ``0.91``, ``2.1 %``, ``18:40``, and number words up to twelve) must
  occur in the evidence: the observations, the inspection results, the footage events or the
  records, in any of the roundings the report prints;
- **labels** (the detector's 80 object classes and their everyday synonyms: ``dog``, ``sofa``,
  ``people``) must have been *seen* in an image; a label that only a record mentions may
  appear only in a sentence that attributes it to the record (``the record says ...``);
- **names and quotations** (a capitalised word inside a sentence, text in quotes) must occur in
  the evidence's words (OCR text, records, file names, the inspector, model and camera names).

A sentence that breaks a rule is dropped and listed in the report's ``grounding.rejected``
with the reason; nothing invented reaches the page. A narrator model's sentences also pass the
claim check (``claims.py``): a claim with nothing here to check ("the patient appears healthy")
must still be supported by the evidence's words.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from oculi.language.vocab import NUMBER_WORDS, _word_to_coco

# words the label table maps to a class but that, in report prose, are not claims about one
_NOT_LABELS = frozenset({
    "he", "she", "they", "him", "her", "them", "someone", "somebody", "anyone", "anybody", "individual",
    "individuals", "watch", "glass", "glasses", "table", "tables", "desk", "screen", "monitor", "bag", "bags", "coach",
    "plant", "plants", "ball", "balls", "remote", "mouse", "vehicle", "vehicles", "mobile", "phone", "phones", "cycle",
    "vessel", "tie", "bow", "bench", "book", "books", "face", "faces", "worker", "workers", "kid", "kids",
})
_ATTRIBUTION = re.compile(r"\b(record|records|log|logs|says|said|states|stated|according to|reported|mentions|mentioned|claims|claimed)\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,:]\d+)*)(?:\s?%)?")
_QUOTED = re.compile(r"“([^“”]+)”|\"([^\"]+)\"")
_NAME = re.compile(r"(?<=[a-z,;:(]\s)([A-Z][\w-]*[A-Za-z0-9])")
_ALLOWED_NAMES = frozenset({"I", "OCR", "JSON", "PDF", "HTML", "AUROC", "UTC", "ImageNet", "COCO"})


def _norm_number(s: str) -> str:
    s = s.replace(",", ".") if s.count(",") == 1 and s.count(".") == 0 and len(s.split(",")[1]) != 3 else s.replace(",", "")
    if ":" in s:
        return ":".join(f"{int(p):02d}" if p.isdigit() else p for p in s.split(":"))
    if "." in s:
        s = s.rstrip("0").rstrip(".") if re.fullmatch(r"\d+\.\d+", s) else s
    return s.lstrip("0") or "0"


@functools.lru_cache(maxsize=1)
def label_table() -> dict[str, str]:
    """Word (or two-word phrase) → detector class, for the words report prose may use for one."""
    return {w: c for w, c in _word_to_coco().items() if w not in _NOT_LABELS}


def labels_in(text: str) -> set[str]:
    """The detector classes a text names (``"a dog on the sofa"`` → ``{"dog", "couch"}``)."""
    words = re.findall(r"[a-z]+", text.lower())
    table = label_table()
    found = set()
    skip = -1
    for i, w in enumerate(words):
        if i <= skip:
            continue
        two = f"{w} {words[i + 1]}" if i + 1 < len(words) else None
        if two and two in table:
            found.add(table[two])
            skip = i + 1
        elif w in table:
            found.add(table[w])
    return found


@dataclass
class Vocabulary:
    """What the evidence contains: numbers, labels seen, labels said, and words."""

    numbers: set[str] = field(default_factory=set)
    counts: set[int] = field(default_factory=set)
    seen_labels: set[str] = field(default_factory=set)
    said_labels: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    text: list[str] = field(default_factory=list)

    def add_number(self, v: Any) -> None:
        """A number and the roundings prose may print it in (``0.9134`` → 0.9134, 0.913, 0.91, 0.9, 1;
        fractions also as percentages)."""
        if isinstance(v, bool):
            return
        if isinstance(v, int):
            self.numbers.add(str(v))
            return
        if isinstance(v, float):
            for nd in (0, 1, 2, 3, 4):
                self.numbers.add(_norm_number(f"{v:.{nd}f}"))
            if 0.0 <= v <= 1.0:
                for nd in (0, 1, 2):
                    self.numbers.add(_norm_number(f"{v * 100:.{nd}f}"))

    def add_count(self, n: int) -> None:
        """A count prose may state, in digits or words (objects of a label, images, records)."""
        self.counts.add(int(n))
        self.numbers.add(str(int(n)))

    def add_text(self, s: str, *, seen: bool) -> None:
        """Free text from the evidence: its numbers, words and (when ``seen``) the labels it names."""
        if not s:
            return
        self.text.append(" ".join(s.lower().split()))
        for m in _NUMBER.finditer(s):
            self.numbers.add(_norm_number(m.group(1)))
        self.words |= set(re.findall(r"[\w-]+", s.lower()))
        (self.seen_labels if seen else self.said_labels).update(labels_in(s))

    def add_structure(self, doc: Any) -> None:
        """Every number and string inside a JSON-like document (an observation or inspection dict)."""
        if isinstance(doc, dict):
            for k, v in doc.items():
                if k not in ("box", "region"):  # coordinates are evidence to point at, not facts to state
                    self.add_structure(v)
        elif isinstance(doc, (list, tuple)):
            for v in doc:
                self.add_structure(v)
        elif isinstance(doc, (int, float)):
            self.add_number(doc)
        elif isinstance(doc, str):
            self.add_text(doc, seen=False)


@dataclass(frozen=True)
class Rejection:
    sentence: str
    reasons: tuple[str, ...]
    where: str

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "reasons": list(self.reasons), "where": self.where}


def sentence_problems(sentence: str, vocab: Vocabulary) -> list[str]:
    """Why ``sentence`` is not grounded in ``vocab`` (empty when it is)."""
    problems = []
    attributed = bool(_ATTRIBUTION.search(sentence))
    for m in _NUMBER.finditer(sentence):
        n = _norm_number(m.group(1))
        if n not in vocab.numbers:
            problems.append(f"number {m.group(0).strip()} is not in the evidence")
    low = re.findall(r"[a-z]+", _QUOTED.sub("", sentence).lower())  # a quotation is checked whole, below
    for w in low:
        if w in NUMBER_WORDS[2:] and NUMBER_WORDS.index(w) not in vocab.counts:
            problems.append(f"number {w} is not in the evidence")
    for lab in labels_in(sentence):
        if lab in vocab.seen_labels:
            continue
        if attributed and lab in vocab.said_labels:
            continue
        problems.append(f"label {lab!r} was not seen in any image" + ("" if lab not in vocab.said_labels else
                                                                       " (only a record mentions it)"))
    for q in (a or b for a, b in _QUOTED.findall(sentence)):
        qn = " ".join(q.lower().rstrip("…").split())
        if not any(qn in t for t in vocab.text):
            problems.append(f"quotation {q!r} is not in the evidence")
    unquoted = _QUOTED.sub("", sentence)
    for m in _NAME.finditer(unquoted):
        name = m.group(1)
        if name in _ALLOWED_NAMES or name.lower() in vocab.words:
            continue
        problems.append(f"name {name!r} is not in the evidence")
    return problems


_BULLET = re.compile(r"^\s*(?:[-*\u2022\u2013]|\d{1,2}[.)])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; a quotation (OCR text, a record) is never split. A line break ends
    a sentence too, and a list item's bullet (``-``, ``*``, ``1.``) is dropped: models write lists."""
    lines = [_BULLET.sub("", ln) for ln in text.splitlines()]
    if len(lines) > 1:
        return [s for ln in lines for s in _split_line(ln)]
    return _split_line(lines[0] if lines else "")


def _split_line(text: str) -> list[str]:
    out, start, quoted = [], 0, False
    t = text.strip()
    for i, ch in enumerate(t):
        if ch == "“" or (ch == '"' and not quoted):
            quoted = True
        elif ch == "”" or (ch == '"' and quoted):
            quoted = False
        elif not quoted and ch in ".!?" and i + 2 < len(t) and t[i + 1].isspace() and (t[i + 2].isupper() or t[i + 2] in "“\"("):
            out.append(t[start:i + 1].strip())
            start = i + 1
    out.append(t[start:].strip())
    return [s for s in out if s]


def ground_text(text: str, vocab: Vocabulary, where: str, rejected: list[Rejection]) -> str:
    """``text`` with every ungrounded sentence removed (each one appended to ``rejected``)."""
    kept = []
    for s in split_sentences(text):
        p = sentence_problems(s, vocab)
        if p:
            rejected.append(Rejection(s, tuple(dict.fromkeys(p)), where))
        else:
            kept.append(s)
    return " ".join(kept)


def vocabulary_from(observations: Iterable[Any], inspections: Iterable[Any], records: Iterable[Any],
                    events: Iterable[dict[str, Any]], names: Iterable[str], seen_labels: Iterable[str] = ()) -> Vocabulary:
    """The vocabulary of a report's evidence.

    Args:
        observations: ``Observation``s of the images (their objects' labels count as seen).
        inspections: Inspection result dicts (``to_dict()`` without the heat-map).
        records: ``Record``s (their words count as said, not seen).
        events: Footage event dicts as the report shows them (labels seen, times as printed).
        names: Other words the report may name: file names, inspector, model, camera.
        seen_labels: More classes seen (the classifier's labels mapped to detector classes).
    """
    v = Vocabulary()
    for o in observations:
        d = o.to_dict()
        v.add_structure({k: d[k] for k in ("objects", "counts", "labels", "text", "colours", "image")})
        v.seen_labels |= {ob.label for ob in o.objects}
        for n in o.counts().values():
            v.add_count(n)
        for t in o.text:
            v.add_text(t.text, seen=True)
        if o.text:
            v.add_text(o.full_text, seen=True)  # a caption quotes the lines joined
    v.seen_labels |= set(seen_labels)
    for ins in inspections:
        v.add_structure(ins)
        v.add_text(json.dumps(ins), seen=True)
    for r in records:
        v.add_text(r.text, seen=False)
        v.add_structure(r.fields)
        for ref in r.image_refs:
            v.add_text(ref, seen=False)
    for e in events:
        v.add_structure(e)
        if e.get("label"):
            v.seen_labels.add(e["label"])
    for n in names:
        if n:
            v.add_text(str(n), seen=False)
    return v
