"""Answering a question from an ``Observation``, with evidence, or saying it cannot tell.

Each answer cites what perception found (objects with boxes, classifier labels, text lines).
When the question is about something the built-in model cannot perceive, or the evidence is
too weak, the answer is ``answerable=False`` and says so instead of guessing.
"""

from __future__ import annotations

from oculi.core.types import Answer, AnswerKind, DetectedObject, Evidence, Label, Observation
from oculi.language.attributes import answer_from_attributes
from oculi.language.describe import LABEL_HEDGED, describe, join_words, position_words
from oculi.language.questions import ParsedQuestion, Resolver, Target, parse_question
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


def _obj_evidence(objs: list[DetectedObject] | tuple[DetectedObject, ...]) -> tuple[Evidence, ...]:
    return tuple(
        Evidence("object", f"{o.colour + ' ' if o.colour else ''}{o.label}", o.score, o.box) for o in objs
    )


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


def _matching_objects(obs: Observation, t: Target) -> list[DetectedObject]:
    if t.coco:
        objs = list(obs.objects_of(t.coco))
    elif t.category:
        objs = [o for o in obs.objects if o.label in CATEGORY_MEMBERS.get(t.category, ())]
    else:
        objs = []
    if t.colour:
        objs = [o for o in objs if o.colour == t.colour]
    return objs


def _matching_labels(obs: Observation, t: Target) -> list[Label]:
    out = []
    for lab in obs.labels:
        if lab.score < LABEL_PRESENT:
            continue
        if lab.name in t.imagenet:
            out.append(lab)
        elif t.coco and imagenet_to_coco(lab.name) == t.coco:
            out.append(lab)
        elif t.category and imagenet_to_coco(lab.name) in CATEGORY_MEMBERS.get(t.category, ()):
            out.append(lab)
    return out


def _answer_count(q: str, obs: Observation, t: Target) -> Answer:
    if not (t.coco or t.category):
        if t.imagenet:
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
    name = t.phrase.strip()
    if objs:
        where = position_words(max(objs, key=lambda o: o.box.area).box, obs.image.width, obs.image.height)
        n = len(objs)
        what = f"{number_word(n)} {plural(t.coco or name, n)}" if t.coco else join_words(sorted({o.label for o in objs}))
        return Answer(q, f"Yes — I see {what} ({where}).", max(o.score for o in objs), AnswerKind.PRESENCE,
                      _obj_evidence(objs) + _label_evidence(labels))
    if labels:
        lab = labels[0]
        return Answer(q, f"Yes — the image looks like {article(gloss(lab.name))} {gloss(lab.name)}.", lab.score,
                      AnswerKind.PRESENCE, _label_evidence(labels))
    if t.colour and (t.coco or t.category):
        others = _matching_objects(obs, Target(t.phrase, coco=t.coco, category=t.category))
        if others:
            cols = join_words(sorted({o.colour or "unclear colour" for o in others}))
            return Answer(q, f"No — I see {plural(t.coco or t.category or name)}, but they are {cols}, not {t.colour}.",
                          ABSENT_CONFIDENCE, AnswerKind.PRESENCE, _obj_evidence(others))
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
    if not (t.coco or t.category):
        if t.imagenet:
            return _cannot(q, AnswerKind.COLOUR, f"the built-in model cannot locate {t.phrase} to measure its colour.")
        return _unknown_target(q, AnswerKind.COLOUR, t)
    objs = _matching_objects(obs, Target(t.phrase, coco=t.coco, category=t.category))
    name = t.coco or t.category or t.phrase
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
    if t.scene or not (t.coco or t.category):
        if t.imagenet:
            return _cannot(q, AnswerKind.POSITION, f"the built-in model can recognise {t.phrase} but cannot locate it.")
        return _unknown_target(q, AnswerKind.POSITION, t)
    objs = _matching_objects(obs, t)
    name = t.coco or t.category or t.phrase
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


def _answer_category(q: str, obs: Observation, t: Target) -> Answer:
    if t.category:
        objs = _matching_objects(obs, t)
        labels = _matching_labels(obs, t)
        if objs:
            names = sorted({o.label for o in objs})
            return Answer(q, f"{article(names[0]).capitalize()} {join_words(names)}.", max(o.score for o in objs),
                          AnswerKind.CATEGORY, _obj_evidence(objs) + _label_evidence(labels))
        if labels:
            g = gloss(labels[0].name)
            return Answer(q, f"It looks like {article(g)} {g}.", labels[0].score, AnswerKind.CATEGORY, _label_evidence(labels))
        return _cannot(q, AnswerKind.CATEGORY, f"no {t.category} was recognised in the image.")
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
            "the built-in model answers questions about counts, presence, colours, positions, text and what an "
            "image shows; this question needs a full vision-language model (see `oculi models` for bringing one).",
        )
    if pq.kind is AnswerKind.COUNT:
        return _answer_count(question, obs, pq.target)
    if pq.kind is AnswerKind.PRESENCE:
        return _answer_presence(question, obs, pq)
    if pq.kind is AnswerKind.COLOUR:
        return _answer_colour(question, obs, pq)
    if pq.kind is AnswerKind.POSITION:
        return _answer_position(question, obs, pq.target)
    return _answer_category(question, obs, pq.target)
