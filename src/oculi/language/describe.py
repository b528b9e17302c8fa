"""Captions written from an ``Observation``: every word traces back to something perceived.

The built-in describer states only what perception found: detected objects (with counts,
colours, the finer class their own crop shows — "a brown cat (Egyptian cat)" — and, in
detailed mode, positions and what a person seems to wear), the classifier's label when it is
confident (with its everyday category from WordNet: "a daisy, a kind of flower"), the text
read by OCR, and the dominant colours. When nothing is confident it says so.
"""

from __future__ import annotations

from collections import defaultdict

from oculi.core.types import Box, DetectedObject, Observation
from oculi.language.kinds import basic_category, fine_name, labels_of_kind, wearable_kinds
from oculi.language.vocab import article, gloss, imagenet_to_coco, number_word, plural

LABEL_CONFIDENT = 0.35  # classifier score above which the label is stated as fact-like
LABEL_HEDGED = 0.2  # ... above which it is offered as "possibly"; below, only as a "best guess"
MAX_TEXT_CHARS = 80
WORN_MIN = 0.2  # a garment on a person's crop is mentioned in a detailed caption from this score


def position_words(box: Box, width: int, height: int) -> str:
    """Where a box sits in the frame: "in the centre", "at the top left", ..."""
    cx, cy = box.center
    col = 0 if cx < width / 3 else (2 if cx > 2 * width / 3 else 1)
    row = 0 if cy < height / 3 else (2 if cy > 2 * height / 3 else 1)
    if (row, col) == (1, 1):
        return "in the centre"
    v = ("top", "middle", "bottom")[row]
    h = ("left", "centre", "right")[col]
    if row == 1:
        return f"on the {h}"
    if col == 1:
        return f"at the {v}"
    return f"at the {v} {h}"


def _group_phrase(label: str, objs: list[DetectedObject]) -> str:
    n = len(objs)
    colours = {o.colour for o in objs if o.colour}
    if n == 1:
        c = objs[0].colour
        noun = f"{c} {label}" if c and label not in ("person", "face") else label
        return f"{article(noun)} {noun}"
    if len(colours) == 1 and label not in ("person", "face"):
        return f"{number_word(n)} {colours.pop()} {plural(label, n)}"
    return f"{number_word(n)} {plural(label, n)}"


def join_words(items: list[str]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _grouped(obs: Observation) -> dict[str, list[DetectedObject]]:
    groups: dict[str, list[DetectedObject]] = defaultdict(list)
    for o in obs.objects:
        if o.label == "face" and obs.count("person") > 0:
            continue  # faces of detected people add nothing to a caption
        groups[o.label].append(o)
    # largest total area first: the main subject leads the sentence
    return dict(sorted(groups.items(), key=lambda kv: -sum(o.box.area for o in kv[1])))


def _text_snippet(obs: Observation) -> str | None:
    text = " ".join(t.text for t in obs.text).strip()
    if not text:
        return None
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return text


def describe(obs: Observation, detailed: bool = False) -> str:
    """Write a caption for an observation.

    Args:
        obs: What perception found.
        detailed: A short paragraph (positions, labels with scores, colours, all text) instead
            of one sentence.

    Returns:
        The caption. Never mentions anything absent from ``obs``.

    Example:
        >>> from oculi.core.types import ImageInfo, Observation, Label
        >>> describe(Observation(ImageInfo(640, 480), labels=(Label("espresso", 0.8),)))
        'A photo of an espresso coffee.'
    """
    groups = _grouped(obs)
    top = obs.labels[0] if obs.labels else None
    label_phrase = None
    covered_by = None  # the object group the classifier's label names more precisely
    if top is not None and top.score >= LABEL_HEDGED:
        covered_by = imagenet_to_coco(top.name)
        g = gloss(top.name)
        cat = basic_category(top.name)
        label_phrase = ("confident" if top.score >= LABEL_CONFIDENT else "hedged", f"{article(g)} {g}" + (f", a kind of {cat}" if cat else ""))
    object_phrases = []
    for label, objs in groups.items():
        phrase = _group_phrase(label, objs)
        fine = fine_name(objs[0]) if len(objs) == 1 else None
        if fine is not None and fine.score >= LABEL_HEDGED:  # the object's own crop names it
            phrase += f" ({gloss(fine.name)})"
        elif top is not None and label == covered_by and gloss(top.name).lower() != label:
            phrase += f" ({gloss(top.name)})"
        object_phrases.append(phrase)

    parts: list[str] = []
    if object_phrases:
        sentence = f"A photo of {join_words(object_phrases[:4])}"
        if label_phrase and covered_by not in groups:
            sentence += (", showing " if label_phrase[0] == "confident" else ", possibly ") + label_phrase[1]
        parts.append(sentence)
    elif label_phrase:
        lead = "A photo of " if label_phrase[0] == "confident" else "Possibly a photo of "
        parts.append(lead + label_phrase[1])
    elif obs.text:
        parts.append("An image containing text")
    else:
        guess = f" (best guess: {gloss(top.name)}, {top.score:.0%})" if top else ""
        parts.append(f"A photo the built-in model cannot identify with confidence{guess}")

    snippet = _text_snippet(obs)
    if snippet:
        parts[-1] += f', with text reading "{snippet}"'
    first = parts[0] + "."
    if obs.attributes:  # what trained heads said (oculi train classifier): stated as theirs
        first += " " + " ".join(f"{a.phrase[0].upper()}{a.phrase[1:]}." for a in obs.attributes)
    if not detailed:
        return first

    w, h = obs.image.width, obs.image.height
    more: list[str] = []
    for label, objs in groups.items():
        for o in sorted(objs, key=lambda o: -o.box.area)[:3]:
            colour = f"{o.colour} " if o.colour and label not in ("person", "face") else ""
            fine = fine_name(o)
            kind = f", probably {article(gloss(fine.name))} {gloss(fine.name)} ({fine.score:.0%})" if fine else ""
            more.append(f"{article(colour + label).capitalize()} {colour}{label} is {position_words(o.box, w, h)} ({o.score:.0%}){kind}.")
            worn = labels_of_kind(o.labels, wearable_kinds(), WORN_MIN) if label == "person" else []
            if worn:
                more.append(f"The person may be wearing {article(gloss(worn[0].name))} {gloss(worn[0].name)} ({worn[0].score:.0%}).")
    for a in obs.attributes:
        more.append(f"Trained head {a.head!r}: {a.value} ({a.score:.0%}).")
    if obs.labels:
        labs = ", ".join(f"{gloss(lab.name)} {lab.score:.0%}" for lab in obs.labels[:3])
        more.append(f"The classifier's top labels: {labs}.")
    if obs.colours:
        cols = join_words([c.name for c in obs.colours[:3]])
        more.append(f"Main colours: {cols}.")
    if obs.text:
        full = " / ".join(t.text for t in obs.text)
        more.append(f'Text read ({len(obs.text)} line{"s" if len(obs.text) != 1 else ""}): "{full}".')
    return " ".join([first, *more])
