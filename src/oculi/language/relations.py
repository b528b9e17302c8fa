"""What a person is wearing, holding or eating, from what perception found on and around them.

The built-in model has no pose or hands: it knows a person's box, the classifier's labels
for the person's own crop (``DetectedObject.labels``) and the other objects. So:

- **wearing**: the person's crop labels that WordNet files under clothing, footwear,
  jewellery, glasses, masks or armour (``kinds.wearable_kinds``) — *suit*, *military uniform*,
  *academic gown*, *jersey*, *lab coat*, *cowboy hat*;
- **holding / eating**: objects lying mostly inside the person's box, and labels of the
  person's crop (or of the whole image, when the person fills it), that are kinds of things
  one holds (devices, implements, containers, instruments, toys) or of food and drink. The
  answer says it saw them *with* the person; it never claims hands it cannot see.

When nothing fits, the answer says it cannot tell (or, for food, that it sees none).
"""

from __future__ import annotations

from oculi.core.types import Answer, AnswerKind, Box, DetectedObject, Evidence, Label, Observation
from oculi.language.describe import LABEL_CONFIDENT, LABEL_HEDGED, join_words
from oculi.language.kinds import edible_kinds, handheld_kinds, kind_of, labels_of_kind, wearable_kinds
from oculi.language.questions import ParsedQuestion, Target
from oculi.language.vocab import article, gloss, imagenet_to_coco

WEAR_MIN = 0.1  # the best garment on a person's crop must reach this to be named
ALSO_MIN = 0.05  # a second garment is mentioned from this score
HELD_MIN = LABEL_HEDGED  # a crop or image label must reach this to count as held or eaten
OVERLAP = 0.5  # an object with this share of its box inside a person's box is "with" them
FILLS_FRAME = 0.4  # a person this large: the image's own labels are about them too
NO_CONFIDENCE = 0.5


def _cannot(q: str, kind: AnswerKind, why: str) -> Answer:
    return Answer(q, f"I cannot tell: {why}", 0.0, kind, (), answerable=False)


def _inside(inner: Box, outer: Box) -> float:
    ix = max(0.0, min(inner.x2, outer.x2) - max(inner.x1, outer.x1))
    iy = max(0.0, min(inner.y2, outer.y2) - max(inner.y1, outer.y1))
    return ix * iy / inner.area if inner.area > 0 else 0.0


def _phrase(lab: Label) -> str:
    g = gloss(lab.name)
    return f"{article(g)} {g} ({lab.score:.0%})"


def _matches(lab: Label, asked: Target) -> bool:
    if lab.name in asked.imagenet or (asked.coco and (lab.name == asked.coco or imagenet_to_coco(lab.name) == asked.coco)):
        return True
    return bool(asked.kinds and (kind_of(lab.name, asked.kinds) or kind_of(lab.name, asked.kinds, coco=True)))


def _person_evidence(p: DetectedObject, labs: list[Label], what: str) -> tuple[Evidence, ...]:
    return (Evidence("object", "person", p.score, p.box),) + tuple(
        Evidence("label", f"{what}: {gloss(lab.name)}", lab.score, p.box) for lab in labs
    )


def _wearing(q: str, p: DetectedObject, asked: Target | None) -> Answer:
    kind = AnswerKind.WEARING
    worn = labels_of_kind(p.labels, wearable_kinds(), ALSO_MIN)
    if asked is not None:
        if not (asked.kinds or asked.imagenet):
            return _cannot(q, kind, f"the built-in model does not know '{asked.phrase}' as something worn.")
        match = [lab for lab in worn if _matches(lab, asked)]
        if match and match[0].score >= WEAR_MIN:
            lab = match[0]
            k = kind_of(lab.name, asked.kinds) if asked.kinds else None
            also = f", a kind of {k}" if k and k.lower() != lab.name.lower() else ""
            return Answer(q, f"Yes — the person seems to wear {_phrase(lab)}{also}.", lab.score, kind,
                          _person_evidence(p, [lab], "on the person"))
        if worn and worn[0].score >= LABEL_CONFIDENT:
            return Answer(q, f"Probably not — the person seems to wear {_phrase(worn[0])}.", NO_CONFIDENCE, kind,
                          _person_evidence(p, worn[:1], "on the person"))
        return _cannot(q, kind, f"no {asked.phrase} was recognised on the person.")
    if not worn or worn[0].score < WEAR_MIN:
        return _cannot(
            q, kind, "no garment was recognised on the person (the classifier knows suits, uniforms, gowns, "
            "coats, jerseys, hats, helmets and about fifty more kinds of clothing).",
        )
    first = worn[0]
    verb = "is wearing" if first.score >= LABEL_CONFIDENT else "may be wearing"
    text = f"The person {verb} {_phrase(first)}"
    if len(worn) > 1:
        text += f", possibly {_phrase(worn[1])}"
    return Answer(q, text + ".", first.score, kind, _person_evidence(p, worn[:2], "on the person"))


def _with_person(obs: Observation, p: DetectedObject, kinds: tuple[str, ...]) -> list[tuple[Label, DetectedObject | None]]:
    """Things of ``kinds`` seen with the person: objects inside their box (by class or by the
    object's own crop labels), then the person's crop labels, then the image's (best first)."""
    found: dict[str, tuple[Label, DetectedObject | None]] = {}

    def add(lab: Label, o: DetectedObject | None) -> None:
        if lab.name not in found or found[lab.name][0].score < lab.score:
            found[lab.name] = (lab, o)

    for o in obs.objects:
        if o is p or o.label in ("person", "face") or o.box.area >= p.box.area or _inside(o.box, p.box) < OVERLAP:
            continue
        for lab in labels_of_kind(o.labels, kinds, HELD_MIN):
            add(lab, o)
        if kind_of(o.label, kinds, coco=True):
            add(Label(o.label, o.score), o)
    for lab in labels_of_kind(p.labels, kinds, HELD_MIN):
        add(lab, None)
    if p.box.area >= FILLS_FRAME * obs.image.width * obs.image.height:
        for lab in labels_of_kind(obs.labels, kinds, HELD_MIN):
            add(lab, None)
    return sorted(found.values(), key=lambda lo: -lo[0].score)


def _held(q: str, obs: Observation, p: DetectedObject, kind: AnswerKind, asked: Target | None) -> Answer:
    eating = kind is AnswerKind.EATING
    kinds = edible_kinds() if eating else handheld_kinds()
    found = _with_person(obs, p, kinds)
    ev = (Evidence("object", "person", p.score, p.box),) + tuple(
        Evidence("object" if o else "label", gloss(lab.name), lab.score, o.box if o else None) for lab, o in found[:3]
    )
    what = "food or drink" if eating else "thing a person could hold"
    if asked is not None:
        if not asked.known:
            return _cannot(q, kind, f"the built-in model does not know '{asked.phrase}'.")
        match = [(lab, o) for lab, o in found if _matches(lab, asked)]
        if match:
            lab, o = match[0]
            return Answer(q, f"Possibly — I see {_phrase(lab)} with the person, though I cannot see their hands.",
                          lab.score, kind, ev)
        if found:
            return Answer(q, f"Probably not — the {what} I see with the person is {_phrase(found[0][0])}.", NO_CONFIDENCE, kind, ev)
        return _cannot(q, kind, f"no {asked.phrase} was recognised near the person.")
    if not found:
        if eating:
            return Answer(q, "No food or drink that I can recognise is near the person.", NO_CONFIDENCE, kind, ev)
        return _cannot(q, kind, "nothing the person could hold was recognised near them.")
    names = [_phrase(lab) for lab, _ in found[:2]]
    return Answer(q, f"Possibly {join_words(names).replace(' and ', ' or ')}: seen with the person, though I cannot see their hands.",
                  found[0][0].score, kind, ev)


def answer_relation(q: str, obs: Observation, pq: ParsedQuestion) -> Answer:
    """Answer "what is the person wearing / holding / eating?" (and "is the person wearing X?")."""
    kind = pq.kind
    t = pq.target
    if t is None or t.coco != "person":
        name = t.phrase if t is not None else "it"
        return _cannot(q, kind, f"the built-in model can tell what a person wears, holds or eats, and '{name}' is not a person.")
    people = sorted(obs.objects_of("person"), key=lambda o: -o.box.area)
    if not people:
        return Answer(q, "No one — I see no person in the image.", 0.7, kind)
    if kind is AnswerKind.WEARING:
        return _wearing(q, people[0], pq.asked)
    return _held(q, obs, people[0], kind, pq.asked)
