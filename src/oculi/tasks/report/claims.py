"""Claims: a model's sentence must be *supported* by the evidence, not only free of invented facts.

``grounding.sentence_problems`` rejects numbers, labels, names and quotations the evidence does
not hold. A sentence with none of those ("The part shows signs of corrosion", "The patient
appears healthy", "No one was present") has nothing it can check, so a narrator model's prose
passes a second test here, sentence by sentence:

- **words**: every content word, lemmatised (``lemminflect``; ``shows`` → ``show``,
  ``detection`` ~ ``detected`` by a shared stem), must occur in the evidence — the observations
  (labels and their WordNet kinds: a cat is also a *feline*, an *animal*), OCR text,
  inspection results, footage events, file names, the report's grounded sentences outside their
  quotations — or in the report's own vocabulary
  (``REPORT_WORDS``: function words, hedges, connectives, section words, the words the report's
  templates use; inspection, footage and medical words only when the report has that evidence);
  a word only the records use is a claim, not evidence: it may appear only in a sentence that
  attributes it to the record ("the record says the lid was loose");
- **no denial of what was seen**: "no dog", "nobody", "no one" when a dog or a person was
  detected (unless the sentence attributes it to a record);
- **no verdict the report does not reach**: a record *borne out* (consistent, confirmed, agrees)
  when no cross-check found one consistent, *contradicted* when none conflicts, *all/both passed*
  or *no anomaly* when an image failed inspection, one image's verdict given to another (not
  when negated, recommended — "should be confirmed" — or attributed to a record);
- **meaning** (when a sentence encoder is given: all-MiniLM-L6-v2, the built-in text encoder):
  a sentence made only of the report's vocabulary, with no word from the evidence itself, must
  be close to an evidence statement (the facts the narrator was given, the records, the
  captions): cosine similarity at least ``SUPPORT_THRESHOLD``, a floor below every faithful
  sentence of ``tests/data/grounding_claims.json`` (docs/REPORTS.md has the figures). Only such
  sentences are embedded, so the encoder costs nothing for the rest.

It is applied to what a model writes (a narrator's prose, the describe backend's captions),
where an unchecked claim can come from. Template sentences are built from the evidence and
pass it too, checked against the evidence without the report's own sentences (the tests do
that for every report kind and the footage report).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from oculi.core.errors import OculiError
from oculi.language.vocab import NUMBER_WORDS

# cosine similarity (all-MiniLM-L6-v2) of a narrator sentence to its nearest evidence statement
# below which it is dropped; chosen on tests/data/grounding_claims.json (docs/REPORTS.md)
SUPPORT_THRESHOLD = 0.2

EmbedFn = Callable[[Sequence[str]], np.ndarray]

FUNCTION_WORDS = frozenset("""
a an the this that these those it its it's itself there here their theirs they them we us our you your i me my
he she his her him who whom whose which what when where why how whether
is are was were be been being am do does did done doing has have had having will would shall should can could
may might must of in on at by for with without within from to into onto over under above below between among
through during before after since until till about around across along against toward towards upon per via
and or but nor so yet if then than as because while whereas although though unless also too very just only
even still again already not no none nothing nobody any anything some something each every all both either
neither other another such same own more most less least much many few lot lots one ones
s t d ll re ve m
""".split())

REPORT_WORDS = frozenset("""
cover covers covered make makes made train trained footage s min mins minute minutes second seconds h
image images photo photos picture pictures frame frames shot view scene report reports summary summaries finding
findings evidence note notes record records log logs entry entries statement section list limit limits warning
warnings recommendation recommendations cross check checks checked checking
show shows shown showing depict depicts depicted contain contains contained include includes included see seen
sees saw visible detect detects detected detection detections find finds found identify identifies identified
recognise recognised recognize recognized read reads label labels labelled labeled mention mentions mentioned
say says said state states stated claim claims claimed report reported note noted describe describes described according
appear appears appeared seem seems seemed look looks looked likely unlikely possibly possible probably perhaps
apparently approximately roughly about around clearly overall total altogether together however therefore thus
moreover furthermore additionally meanwhile instead otherwise besides rather quite fairly somewhat mostly mainly
first second third last next finally then
object objects thing things item items kind kinds class classes type types category categories
score scores scored confidence confident certainty threshold thresholds probability value
left right upper lower centre center middle top bottom side corner near nearby beside next edge part parts area
region regions whole single both pair several
text texts line lines word words quote quotes quoted quotation
match matches matched matching agree agrees agreed agreement consistent consistency conflict conflicts conflicting
contradict contradicts contradicted contradiction contradictions support supports supported confirm confirms
confirmed verify verified unverifiable unverified check confirmable
model models detector classifier ocr perception whole-image best
action actions need needs needed require requires required necessary review reviewed correct confirm
guess guesses built-in builtin cannot identify containing reading wearing worn main colour colours color colors
head heads trained
""".split())

# words a report may use only when it has the evidence they talk about
INSPECTION_WORDS = frozenset("""
inspection inspections inspect inspected pass passes passed failed fail fails failure failing anomaly anomalies
anomalous defect defects defective reject rejected hold re-inspect reinspect marked differ differs differed
difference differences reference good flagged flag hand calibrated
""".split())
FOOTAGE_WORDS = frozenset("""
footage camera cameras event events track tracks tracked arrival arrivals arrive arrived arriving appear appeared
zone zones loiter loitered loitering crowd crowding dwell between outside inside hours hour usual unusual time
times clock closing closed after before during morning evening night
""".split())
MEDICAL_WORDS = frozenset("""
clinician clinicians clinical preliminary diagnosis decision medical reviewed review
""".split())

_TOKEN = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")
_SUFFIXES = ("ations", "ation", "ions", "ion", "ments", "ment", "ness", "ings", "ing", "ities", "ity", "ously", "ous",
             "ical", "ally", "ly", "ers", "er", "ed", "es", "s", "y", "e")
_DENIAL = re.compile(r"\b(no|not any|without|never)\s+(?:\w+\s+)?$", re.I)
_NOBODY = re.compile(r"\b(no one|no-one|nobody|no person|no people|no human|no humans|not a soul)\b", re.I)
_ATTRIBUTED = re.compile(r"\b(record|records|log|logs|says|said|states|stated|according to|claims|claimed|mentions)\b", re.I)


def _stem(w: str) -> str:
    for suf in _SUFFIXES:
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            return w[: -len(suf)]
    return w


@functools.lru_cache(maxsize=20000)
def word_forms(word: str) -> frozenset[str]:
    """A word's lemmas (every part of speech) and a derivational stem (``detection`` → ``detect``)."""
    from lemminflect import getAllLemmas

    w = word.lower().strip("'-")
    forms = {w}
    for lemmas in getAllLemmas(w).values():
        forms.update(lemmas)
    if w.endswith("'s"):
        forms.add(w[:-2])
    forms |= {_stem(f) for f in list(forms)}
    return frozenset(forms)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def _kinds_of(label: str) -> set[str]:
    """The words for what a seen label is (WordNet: a cat is a feline, a carnivore, an animal)."""
    from oculi.core.taxonomy import taxonomy

    try:
        tax = taxonomy()
    except OculiError:  # a missing or corrupt table costs the kinds, never the report
        return set()
    coco = label in tax.coco
    syns = set((tax.coco[label],) if coco else tax.label_synsets(label)) | set(tax.label_ancestors(label, coco=coco))
    out: set[str] = set()
    for s in syns:
        if s in (tax.coco.get(label),) or s in tax.label_synsets(label) or tax.is_category(s):
            for lem in tax.lemmas(s):
                out.update(tokens(lem))
    return out


@dataclass
class ClaimEvidence:
    """What a model's sentence may talk about: evidence words (as forms), seen labels, and the
    evidence statements a sentence encoder compares it with."""

    forms: set[str] = field(default_factory=set)
    said_forms: set[str] = field(default_factory=set)  # words only the records use: claims, not evidence
    seen_labels: set[str] = field(default_factory=set)
    label_words: dict[str, str] = field(default_factory=dict)  # a word for a seen label or its kind → the label
    verdicts: set[str] | None = None  # cross-check statuses and inspection results the report has (None: not known)
    image_verdicts: dict[str, tuple[str, str]] = field(default_factory=dict)  # a name for an image → (file name, passed/failed)
    statements: list[str] = field(default_factory=list)
    embed: EmbedFn | None = None
    threshold: float = SUPPORT_THRESHOLD
    embed_error: str | None = None
    _vectors: np.ndarray | None = None

    def add_words(self, text: str, *, said: bool = False) -> None:
        """The words of an evidence text (``said=True``: a record's, usable only when attributed)."""
        target = self.said_forms if said else self.forms
        for t in tokens(text):
            target |= word_forms(t)
            for part in t.split("-"):
                if part:
                    target |= word_forms(part)

    def add_label(self, label: str) -> None:
        """A label seen in an image, its everyday words and its WordNet kinds."""
        from oculi.tasks.report.grounding import label_table

        self.seen_labels.add(label)
        self.add_words(label)
        self.label_words[label.lower()] = label
        for w, c in label_table().items():
            if c == label:
                self.add_words(w)
                self.label_words[w] = label
        for w in _kinds_of(label):
            self.forms |= word_forms(w)
            self.label_words.setdefault(w, label)

    def add_kinds(self, label: str) -> None:
        """The WordNet kinds of a label the classifier gave (an ImageNet class: a missile is a
        kind of *vehicle*), as words only: a guess is not a sighting."""
        for w in _kinds_of(label):
            self.forms |= word_forms(w)

    def add_statement(self, text: str, *, words: bool = True) -> None:
        """An evidence statement for the similarity test; its words (outside quotations, which are
        a record's or the OCR's and counted as such) become evidence words unless ``words=False``."""
        from oculi.tasks.report.grounding import _QUOTED

        if text and text.strip():
            self.statements.append(" ".join(text.split()))
            if words:
                self.add_words(_QUOTED.sub(" ", text))
            self._vectors = None

    def similarity(self, sentence: str) -> float | None:
        """Cosine similarity of ``sentence`` to its nearest statement (``None`` without an encoder,
        or when the encoder failed: ``embed_error`` says why, and only the words are checked)."""
        if self.embed is None or not self.statements:
            return None
        try:
            if self._vectors is None:
                self._vectors = np.asarray(self.embed(self.statements), dtype=np.float32)  # [S, 384]
            v = np.asarray(self.embed([sentence]), dtype=np.float32)[0]  # [384]
        except OculiError as e:
            self.embed, self.embed_error = None, str(e)
            return None
        return float(np.max(self._vectors @ v))


def _word_support(sentence: str, ev: ClaimEvidence) -> tuple[list[str], list[str], int]:
    """``(unsupported content words, words only a record uses (in a sentence that does not
    attribute them), number of words found in the evidence itself)``."""
    out, said_only, from_evidence = [], [], 0
    attributed = bool(_ATTRIBUTED.search(sentence))
    for t in tokens(sentence):
        parts = [t] + [p for p in t.split("-") if p and p != t]
        if t.isdigit() or t in NUMBER_WORDS:  # numbers are the grounding check's
            continue
        if any(word_forms(p) & ev.forms for p in parts) and not all(p in FUNCTION_WORDS for p in parts):
            from_evidence += 1
            continue
        if any(p in FUNCTION_WORDS or p in REPORT_WORDS for p in parts):
            continue
        if any(word_forms(p) & ev.said_forms for p in parts):
            if attributed:
                from_evidence += 1
            else:
                said_only.append(t)
            continue
        out.append(t)
    return list(dict.fromkeys(out)), list(dict.fromkeys(said_only)), from_evidence


def unsupported_words(sentence: str, ev: ClaimEvidence) -> list[str]:
    """The content words of ``sentence`` that neither the evidence nor the report's vocabulary has."""
    return _word_support(sentence, ev)[0]


def denied_labels(sentence: str, ev: ClaimEvidence) -> list[str]:
    """Labels seen in an image that ``sentence`` says are absent ("no dog", "no animal", "nobody")."""
    if _ATTRIBUTED.search(sentence):
        return []
    low = sentence.lower()
    out = []
    if "person" in ev.seen_labels and _NOBODY.search(low):
        out.append("person")
    for w, c in ev.label_words.items():
        if c in out or w in FUNCTION_WORDS or w in REPORT_WORDS:
            continue
        for m in re.finditer(rf"\b{re.escape(w)}s?\b", low):
            if _DENIAL.search(low[: m.start()]):
                out.append(c)
                break
    return out


_AGREE = re.compile(r"\b(consistent|agrees?|agreed|in agreement|confirm(?:s|ed)?|borne out|bears? out|corroborat\w*)\b")
_CONTRA = re.compile(r"\b(contradict\w*|conflicts?|conflicting|disagrees?|disagreed|inconsistent)\b")
_ALL_PASS = re.compile(r"\b(all|both|every|each)\b[^.;:]*\bpass(?:ed|es)?\b")
_NEGATION = re.compile(r"\b(no|not|never|nothing|none|nor|cannot|without)\b|n't\b")
_MODAL = re.compile(r"\b(should|must|shall|needs? to|to be|to|could|may|might|would|or)\s+(?:\w+\s+){0,2}$")
_CLAUSE = re.compile(r"[,;:()]|\b(but|although|though|whereas|while)\b")


def _asserted(sentence: str, m: re.Match) -> bool:
    """Whether the word ``m`` found is asserted: not negated or made a recommendation in its clause."""
    before = sentence[: m.start()]
    cut = max((c.end() for c in _CLAUSE.finditer(before)), default=0)
    clause = before[cut:]
    return not _NEGATION.search(clause) and not _MODAL.search(clause)


_PASSED = re.compile(r"\bpass(?:ed|es)?\b")
# "anomaly score" is the measure every image has, not a finding of one
_FAILED = re.compile(r"\b(fail(?:ed|s|ure)?|defect(?:s|ive)?|reject(?:ed)?|anomal(?:y|ies|ous)(?!\s+(?:score|model|threshold)))\b")
_NO_ANOMALY = re.compile(r"\b(no|not any|without|never)\s+(?:\w+\s+)?(anomal\w*|defects?|failures?)\b")


def add_image_verdict(ev: ClaimEvidence, name: str, passed: bool, score: float | None = None) -> None:
    """What an inspected image may be called in prose (``part-4711.png``, ``part-4711``, ``4711``,
    its anomaly score as printed: ``0.91``) and its verdict; a key two images share names neither."""
    stem = name.rsplit(".", 1)[0].lower()
    verdict = "passed" if passed else "failed"
    keys = {name.lower(), stem} | set(re.findall(r"\d{3,}", stem)) | ({f"{score:.2f}"} if score is not None else set())
    for k in keys:
        ev.image_verdicts[k] = (name, verdict) if k not in ev.image_verdicts else ("", "")


def _images_named(low: str, ev: ClaimEvidence) -> set[tuple[str, str]]:
    found = set()
    for k, v in ev.image_verdicts.items():
        if v[0] and re.search(rf"(?<![\w.-]){re.escape(k)}(?![\w-])", low):
            found.add(v)
    return found


def verdict_problems(sentence: str, ev: ClaimEvidence) -> list[str]:
    """A verdict the report does not reach: records borne out when none is, contradicted when
    none is, every part passed (or no anomaly) when one failed, and one image's verdict given to
    another ("part 4712 failed" when 4711 did)."""
    if ev.verdicts is None:
        return []
    low = sentence.lower()
    out = []
    named = _images_named(low, ev)
    if len({n for n, _ in named}) == 1 and not _ATTRIBUTED.search(low):
        name, verdict = next(iter(named))
        if verdict == "passed" and any(_asserted(low, m) for m in _FAILED.finditer(low)) and not _NO_ANOMALY.search(low):
            out.append(f"says {name} failed or shows an anomaly, but it passed inspection")
        if verdict == "failed" and any(_asserted(low, m) for m in _PASSED.finditer(low)):
            out.append(f"says {name} passed, but it failed inspection")
    if "failed" in ev.verdicts and not named and not _ATTRIBUTED.search(low) and _NO_ANOMALY.search(low):
        out.append("says there is no anomaly, but an image failed inspection")
    if "consistent" not in ev.verdicts and any(_asserted(low, m) for m in _AGREE.finditer(low)):
        out.append("says the evidence bears a record out, but no cross-check found a record consistent")
    if "conflict" not in ev.verdicts and any(_asserted(low, m) for m in _CONTRA.finditer(low)):
        out.append("says a record is contradicted, but no cross-check found a conflict")
    if "failed" in ev.verdicts and any(_asserted(low, m) for m in _ALL_PASS.finditer(low)):
        out.append("says every image passed, but one failed inspection")
    return out


def claim_problems(sentence: str, ev: ClaimEvidence) -> list[str]:
    """Why ``sentence`` is not supported by ``ev`` (empty when it is)."""
    problems = []
    words, said_only, from_evidence = _word_support(sentence, ev)
    if words:
        problems.append("not supported by the evidence: " + ", ".join(repr(w) for w in words[:6]))
    if said_only:
        problems.append("only a record says " + ", ".join(repr(w) for w in said_only[:6])
                        + " (a sentence that states it must attribute it to the record)")
    for lab in denied_labels(sentence, ev):
        problems.append(f"says there is no {lab}, but one was seen")
    problems += verdict_problems(sentence, ev)
    if not problems and not from_evidence:
        # made only of the report's own vocabulary ("the situation needs review"): tied to no
        # piece of evidence by its words, so it must be close in meaning to an evidence statement
        sim = ev.similarity(sentence)
        if sim is not None and sim < ev.threshold:
            problems.append(f"not supported by the evidence: nearest evidence statement at similarity {sim:.2f} "
                            f"(< {ev.threshold:.2f})")
    return problems


def claim_evidence(vocab_text: Iterable[str], seen_labels: Iterable[str], statements: Iterable[str], *,
                   said_text: Iterable[str] = (), said_labels: Iterable[str] = (), said_statements: Iterable[str] = (),
                   inspection: bool = False, footage: bool = False, medical: bool = False,
                   embed: EmbedFn | None = None, threshold: float = SUPPORT_THRESHOLD) -> ClaimEvidence:
    """The evidence a model's sentences are checked against.

    Args:
        vocab_text: Evidence texts whose words may be used (OCR, names, observation fields, events).
        seen_labels: Labels seen in an image (detector classes, classifier labels).
        statements: Evidence statements: the report's grounded sentences (their words count too).
        said_text: What records say: its words may be used only in a sentence that attributes them
            to a record ("the record says the lid was loose").
        said_labels: Labels only a record mentions (their everyday words count as said).
        said_statements: Record texts, for the similarity test only.
        inspection, footage, medical: Whether the report has inspection results, footage events
            or records with times, or is a medical report (their vocabulary is allowed).
        embed: A sentence encoder (``Engine.embed_texts``) for the similarity test; ``None`` skips it.
        threshold: The similarity a sentence must reach.

    Example:
        >>> ev = claim_evidence(["chelsea.png"], ["cat"], ["One cat detected: centre (score 0.93)."])
        >>> claim_problems("The photo shows a feline in the centre.", ev)
        []
        >>> claim_problems("The part shows signs of corrosion.", ev)
        ["not supported by the evidence: 'signs', 'corrosion'"]
    """
    ev = ClaimEvidence(embed=embed, threshold=threshold)
    for t in vocab_text:
        ev.add_words(str(t))
    for lab in seen_labels:
        ev.add_label(str(lab))
    for s in statements:
        ev.add_statement(str(s))
    for t in said_text:
        ev.add_words(str(t), said=True)
    for lab in said_labels:
        ev.add_words(str(lab), said=True)
        for w in (w for w, c in _label_table().items() if c == lab):
            ev.add_words(w, said=True)
    for s in said_statements:
        ev.add_statement(str(s), words=False)
    for on, words in ((inspection, INSPECTION_WORDS), (footage, FOOTAGE_WORDS), (medical, MEDICAL_WORDS)):
        if on:
            for w in words:
                ev.forms |= word_forms(w)
    return ev


def _label_table() -> dict[str, str]:
    from oculi.tasks.report.grounding import label_table

    return label_table()


def evidence_from_vocabulary(vocab: Any, statements: Iterable[str], **kw: Any) -> ClaimEvidence:
    """``claim_evidence`` from a grounding ``Vocabulary`` of evidence that holds no records (its
    words, texts and seen labels); pass the records as ``said_text`` / ``said_labels``."""
    return claim_evidence(list(vocab.text) + sorted(vocab.words), vocab.seen_labels, statements, **kw)
