"""Answering a question from an ``Observation``, with evidence, or saying it cannot tell.

Each answer cites what perception found (objects with boxes, classifier labels, text lines).
When the question is about something the built-in model cannot perceive, or the evidence is
too weak, the answer is ``answerable=False`` and says so instead of guessing.
"""

from __future__ import annotations

from oculi.core.types import Answer, AnswerKind, DetectedObject, Evidence, Label, Observation
from oculi.language.attributes import answer_from_attributes
from oculi.language.describe import LABEL_CONFIDENT, LABEL_HEDGED, describe, join_words, position_words
from oculi.language.kinds import FINE_MIN, fine_name, kind_of, labels_of_kind
from oculi.language.questions import ParsedQuestion, Resolver, Target, parse_question
from oculi.language.relations import answer_relation
from oculi.language.vocab import (
    CATEGORY_MEMBERS,
    COCO_CLASSES,
    article,
    gloss,
    imagenet_to_coco,
    number_word,
    plural,
)

LABEL_PRESENT = LABEL_HEDGED  # a label a caption would mention counts as evidence; weaker ones do not
ABSENT_CONFIDENCE = 0.7  # "no" is as sure as the detector's recall allows, no surer


def _obj_words(o: DetectedObject) -> str:
    """"red cup", "brown cat (Egyptian cat, 65 %)": an object as evidence names it."""
    fine = fine_name(o)
    extra = f" ({fine.name}, {fine.score:.0%})" if fine else ""
    return f"{o.colour + ' ' if o.colour and o.label not in ('person', 'face') else ''}{o.label}{extra}"


def _obj_evidence(objs: list[DetectedObject] | tuple[DetectedObject, ...]) -> tuple[Evidence, ...]:
    return tuple(Evidence("object", _obj_words(o), o.score, o.box) for o in objs)


def _label_evidence(labels: list[Label]) -> tuple[Evidence, ...]:
    return tuple(Evidence("label", f"classifier: {gloss(lab.name)}", lab.score) for lab in labels)


def _cannot(question: str, kind: AnswerKind, why: str) -> Answer:
    return Answer(question, f"I cannot tell: {why}", 0.0, kind, (), answerable=False)


def _unknown_target(question: str, kind: AnswerKind, t: Target) -> Answer:
    return _cannot(
        question,
        kind,
        f"the built-in model cannot recognise '{t.phrase.strip()}'. It detects {len(COCO_CLASSES)} everyday "
        "object classes (people, vehicles, animals, household items), faces and text, and names 1000 ImageNet "
        "categories; bring a full vision-language model for open-ended questions.",
    )


def _object_kind(o: DetectedObject, t: Target) -> tuple[str | None, Label | None] | None:
    """How an object matches a target: ``(category, via)`` where ``category`` names the kind it
    is (``None`` for a direct match by class) and ``via`` is the crop label that made it (the
    espresso in a cup, for "a drink"); ``None`` when it does not match."""
    if (t.coco and o.label == t.coco) or (t.category and o.label in CATEGORY_MEMBERS.get(t.category, ())):
        return None, None
    if not t.kinds:
        return None
    if k := kind_of(o.label, t.kinds, coco=True):
        return k, None
    for lab in labels_of_kind(o.labels, t.kinds, FINE_MIN):
        return kind_of(lab.name, t.kinds), lab
    return None


def _matching_objects(obs: Observation, t: Target) -> list[DetectedObject]:
    objs = [o for o in obs.objects if _object_kind(o, t) is not None]
    if t.colour:
        objs = [o for o in objs if o.colour == t.colour]
    return objs


def _matching_labels(obs: Observation, t: Target) -> list[Label]:
    """Image labels that name the target (best first); labels of a category count together:
    one at ``LABEL_PRESENT``, or all of them at ``LABEL_CONFIDENT`` (the classifier splits a
    cat into tiger cat, Egyptian cat and tabby)."""
    direct, kinds = [], []
    for lab in obs.labels:
        if lab.name in t.imagenet or (t.coco and imagenet_to_coco(lab.name) == t.coco) or (
            t.category and imagenet_to_coco(lab.name) in CATEGORY_MEMBERS.get(t.category, ())
        ):
            direct.append(lab)
        elif t.kinds and kind_of(lab.name, t.kinds):
            kinds.append(lab)
    found = direct + kinds
    if any(lab.score >= LABEL_PRESENT for lab in found) or sum(lab.score for lab in found) >= LABEL_CONFIDENT:
        return sorted((lab for lab in found if lab.score >= 0.05), key=lambda lab: -lab.score)
    return []


def _kind_words(name: str, t: Target) -> str:
    """", which is a kind of building" when the label is not itself the target's word."""
    k = kind_of(name, t.kinds) if t.kinds else None
    if k is None or k.lower() == name.lower():
        return ""
    return f", which is a kind of {k}"


def _answer_count(q: str, obs: Observation, t: Target) -> Answer:
    if not (t.coco or t.category) and t.kinds and _matching_objects(obs, t):
        objs = _matching_objects(obs, t)
        n = len(objs)
        return Answer(q, f"{n} — I see {join_words([article(_obj_words(o)) + ' ' + _obj_words(o) for o in objs])}.",
                      min(o.score for o in objs), AnswerKind.COUNT, _obj_evidence(objs))
    if not (t.coco or t.category):
        if t.imagenet or t.kinds:
            return _cannot(q, AnswerKind.COUNT, f"the built-in model can recognise {t.phrase} in a whole image but cannot locate or count them.")
        return _unknown_target(q, AnswerKind.COUNT, t)
    objs = _matching_objects(obs, t)
    name = t.coco or t.category or t.phrase
    noun = f"{t.colour} {name}" if t.colour else name
    n = len(objs)
    if n == 0:
        labels = _matching_labels(obs, t)
        if labels:
            return Answer(
                q,
                f"I cannot count them: the image looks like {article(gloss(labels[0].name))} {gloss(labels[0].name)}, but no individual {name} was located.",
                0.0, AnswerKind.COUNT, _label_evidence(labels), answerable=False,
            )
        return Answer(q, f"0 — I see no {plural(noun)}.", ABSENT_CONFIDENCE, AnswerKind.COUNT)
    conf = min(o.score for o in objs)
    verb = "is" if n == 1 else "are"
    return Answer(q, f"{n} — there {verb} {number_word(n)} {plural(noun, n)}.", conf, AnswerKind.COUNT, _obj_evidence(objs))


def _answer_presence(q: str, obs: Observation, pq: ParsedQuestion) -> Answer:
    t = pq.target
    assert t is not None
    if t.scene:
        return _answer_category(q, obs, t)
    if not t.known:
        return _unknown_target(q, AnswerKind.PRESENCE, t)
    objs = _matching_objects(obs, t)
    labels = _matching_labels(obs, t)
    name = t.name
    if objs:
        main = max(objs, key=lambda o: o.box.area)
        where = position_words(main.box, obs.image.width, obs.image.height)
        n = len(objs)
        if t.coco:
            what = f"{number_word(n)} {plural(t.coco, n)}"
        else:
            counts: dict[str, int] = {}
            for o in objs:
                counts[o.label] = counts.get(o.label, 0) + 1
            what = join_words([f"{number_word(c)} {plural(lab, c)}" for lab, c in sorted(counts.items())])
        kind, via = _object_kind(main, t) or (None, None)
        if via is not None:  # the cup's crop shows espresso: the drink
            g = gloss(via.name)
            text = f"Yes — the {main.label} {where} shows {article(g)} {g}{_kind_words(via.name, t)} ({via.score:.0%})."
            return Answer(q, text, via.score, AnswerKind.PRESENCE, _obj_evidence(objs) + _label_evidence(labels))
        extra = f", a kind of {kind}" if kind and kind != main.label else ""
        return Answer(q, f"Yes — I see {what} ({where}){extra}.", max(o.score for o in objs), AnswerKind.PRESENCE,
                      _obj_evidence(objs) + _label_evidence(labels))
    if t.colour and (t.coco or t.category or t.kinds):
        others = _matching_objects(obs, Target(t.phrase, coco=t.coco, category=t.category, kinds=t.kinds))
        if others:
            cols = join_words(sorted({o.colour or "unclear colour" for o in others}))
            return Answer(q, f"No — I see {plural(name)}, but they are {cols}, not {t.colour}.",
                          ABSENT_CONFIDENCE, AnswerKind.PRESENCE, _obj_evidence(others))
        if labels:  # the classifier names the whole image, not where the colour is
            g = gloss(labels[0].name)
            return _cannot(q, AnswerKind.PRESENCE, f"the image looks like {article(g)} {g}, but I cannot locate it to see whether it is {t.colour}.")
    if labels:
        lab = labels[0]
        g = gloss(lab.name)
        kind = _kind_words(lab.name, t)
        if kind:  # "Yes — a palace, which is a kind of building (31 %)."
            return Answer(q, f"Yes — {article(g)} {g}{kind} ({lab.score:.0%}).", lab.score, AnswerKind.PRESENCE,
                          _label_evidence(labels))
        return Answer(q, f"Yes — the image looks like {article(g)} {g}.", lab.score,
                      AnswerKind.PRESENCE, _label_evidence(labels))
    if not t.coco and not t.category:
        # Only the classifier could know: a missing label is weak evidence of absence.
        return Answer(q, f"Probably not — nothing in the image was recognised as {name}.", 0.5, AnswerKind.PRESENCE)
    noun = t.coco or t.category or name
    if t.colour:
        noun = f"{t.colour} {noun}"
    return Answer(q, f"No — I see no {noun if pq.identity else plural(noun)}.", ABSENT_CONFIDENCE, AnswerKind.PRESENCE)


def _answer_colour(q: str, obs: Observation, pq: ParsedQuestion) -> Answer:
    t = pq.target
    assert t is not None
    if t.scene:
        if not obs.colours:
            return _cannot(q, AnswerKind.COLOUR, "no colour measurement is available for this image.")
        names = [c.name for c in obs.colours[:3]]
        ev = tuple(Evidence("colour", f"{c.name} {c.fraction:.0%} of the image", c.fraction) for c in obs.colours[:3])
        return Answer(q, f"Mostly {join_words(names)}.", obs.colours[0].fraction, AnswerKind.COLOUR, ev)
    objs = _matching_objects(obs, Target(t.phrase, coco=t.coco, category=t.category, kinds=t.kinds))
    if not (t.coco or t.category or objs):
        if t.imagenet or t.kinds:
            return _cannot(q, AnswerKind.COLOUR, f"the built-in model cannot locate {t.phrase} to measure its colour.")
        return _unknown_target(q, AnswerKind.COLOUR, t)
    name = t.name
    if not objs:
        return _cannot(q, AnswerKind.COLOUR, f"I see no {name} in the image.")
    main = max(objs, key=lambda o: o.box.area)
    if main.colour is None:
        return _cannot(q, AnswerKind.COLOUR, f"the {name}'s colour is mixed or unclear.")
    if pq.colour_asked:
        yes = main.colour == pq.colour_asked
        ans = f"Yes — the {name} is {main.colour}." if yes else f"No — the {name} is {main.colour}."
        return Answer(q, ans, main.score * (0.8 if yes else 0.7), AnswerKind.COLOUR, _obj_evidence([main]))
    others = [o for o in objs if o is not main and o.colour]
    extra = ""
    if others:
        extra = f" (the other {plural(name, len(others))}: {join_words([o.colour for o in others[:3]])})"  # type: ignore[misc]
    return Answer(q, f"The {name} is {main.colour}{extra}.", main.score * 0.8, AnswerKind.COLOUR, _obj_evidence([main, *others]))


def _answer_position(q: str, obs: Observation, t: Target) -> Answer:
    objs = [] if t.scene else _matching_objects(obs, t)
    if t.scene or not (t.coco or t.category or objs):
        if t.imagenet or t.kinds:
            return _cannot(q, AnswerKind.POSITION, f"the built-in model can recognise {t.phrase} but cannot locate it.")
        return _unknown_target(q, AnswerKind.POSITION, t)
    name = t.name
    if not objs:
        return Answer(q, f"I see no {name} in the image.", ABSENT_CONFIDENCE, AnswerKind.POSITION)
    w, h = obs.image.width, obs.image.height
    objs = sorted(objs, key=lambda o: -o.box.area)
    if len(objs) == 1:
        ans = f"The {name} is {position_words(objs[0].box, w, h)}."
    else:
        places = join_words([position_words(o.box, w, h) for o in objs[:4]])
        ans = f"There are {number_word(len(objs))} {plural(name, len(objs))}: {places}."
    return Answer(q, ans, objs[0].score, AnswerKind.POSITION, _obj_evidence(objs))


def _answer_text(q: str, obs: Observation) -> Answer:
    if not obs.text:
        return Answer(q, "I found no readable text in the image.", ABSENT_CONFIDENCE, AnswerKind.TEXT)
    full = " ".join(t.text for t in obs.text)
    ev = tuple(Evidence("text", t.text, t.score, t.box) for t in obs.text)
    conf = sum(t.score for t in obs.text) / len(obs.text)
    return Answer(q, f'It says: "{full}"', conf, AnswerKind.TEXT, ev)


def _kinds_found(obs: Observation, t: Target) -> list[tuple[Label, DetectedObject | None]]:
    """The specific classes seen that are kinds of the target, best first: each matching
    object's finer crop label (or its class, for a category), then the image's labels."""
    found: dict[str, tuple[Label, DetectedObject | None]] = {}

    def add(lab: Label, o: DetectedObject | None) -> None:
        old = found.get(lab.name)
        if old is None or old[0].score < lab.score:
            found[lab.name] = (lab, o if o is not None or old is None else old[1])

    for o in _matching_objects(obs, t):
        fine = [lab for lab in o.labels if lab.score >= 0.05 and (
            (t.kinds and kind_of(lab.name, t.kinds)) or imagenet_to_coco(lab.name) == o.label)]
        for lab in fine:
            add(lab, o)
        if not fine and o.label != t.coco:
            add(Label(o.label, o.score), o)
    for lab in _matching_labels(obs, t):
        add(lab, None)
    return sorted(found.values(), key=lambda lo: -lo[0].score)


def _answer_category(q: str, obs: Observation, t: Target) -> Answer:
    if not t.scene:
        if not t.known:
            return _unknown_target(q, AnswerKind.CATEGORY, t)
        found = _kinds_found(obs, t)
        objs = _matching_objects(obs, t)
        ev = _obj_evidence(objs) + tuple(Evidence("label", f"classifier: {gloss(lab.name)}", lab.score) for lab, o in found if o is None)
        if not found:
            if objs:
                return Answer(q, f"{article(t.name).capitalize()} {t.name}; I cannot tell which kind.", max(o.score for o in objs) * 0.5,
                              AnswerKind.CATEGORY, ev)
            return _cannot(q, AnswerKind.CATEGORY, f"no {t.name} was recognised in the image.")
        top = found[:3]
        names = [f"{article(gloss(lab.name))} {gloss(lab.name)} ({lab.score:.0%})" for lab, _ in top]
        words = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        best, obj = top[0]
        lead = ""
        if obj is not None and obj.label != best.name and imagenet_to_coco(best.name) == obj.label:
            lead = f"{article(obj.label).capitalize()} {obj.label}: "
        sure = obj is not None or best.score >= LABEL_HEDGED
        text = (lead + words) if lead else (("It looks like " if sure else "Possibly ") + words)
        return Answer(q, text[0].upper() + text[1:] + ".", best.score, AnswerKind.CATEGORY, ev)
    caption = describe(obs)
    if caption.startswith("A photo the built-in model cannot identify"):
        return Answer(q, caption, 0.0, AnswerKind.CATEGORY, _label_evidence(list(obs.labels[:3])), answerable=False)
    conf = max([o.score for o in obs.objects] + [lab.score for lab in obs.labels[:1]] + [0.0])
    return Answer(q, caption, conf, AnswerKind.CATEGORY, _obj_evidence(obs.objects[:5]) + _label_evidence(list(obs.labels[:3])))


def answer(obs: Observation, question: str, resolve: Resolver | None = None) -> Answer:
    """Answer a question about an image from what perception found.

    Args:
        obs: The observation of the image.
        question: A non-empty question in English.
        resolve: Optional word → COCO class mapper for words the vocabulary tables miss.

    Returns:
        An ``Answer``; ``answerable`` is False (and the text says "I cannot tell") when the
        built-in model cannot support an answer.

    Example:
        >>> from oculi.core.types import ImageInfo, Observation
        >>> answer(Observation(ImageInfo(640, 480)), "Is there a cat?").answer
        'No — I see no cats.'
    """
    from_head = answer_from_attributes(obs, question)
    if from_head is not None:
        return from_head
    pq = parse_question(question, resolve)
    if pq.kind is AnswerKind.TEXT:
        return _answer_text(question, obs)
    if pq.kind is AnswerKind.UNKNOWN or pq.target is None:
        return _cannot(
            question,
            AnswerKind.UNKNOWN,
            "the built-in model answers questions about counts, presence, colours, positions, text, what an "
            "image shows and what kind of thing it is, and what a person wears, holds or eats; this question needs "
            "a full vision-language model (see `oculi models` for bringing one).",
        )
    if pq.kind is AnswerKind.COUNT:
        return _answer_count(question, obs, pq.target)
    if pq.kind is AnswerKind.PRESENCE:
        return _answer_presence(question, obs, pq)
    if pq.kind is AnswerKind.COLOUR:
        return _answer_colour(question, obs, pq)
    if pq.kind is AnswerKind.POSITION:
        return _answer_position(question, obs, pq.target)
    if pq.kind in (AnswerKind.WEARING, AnswerKind.HOLDING, AnswerKind.EATING):
        return answer_relation(question, obs, pq)
    return _answer_category(question, obs, pq.target)
