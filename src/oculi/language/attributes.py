"""Answers from what trained heads said about an image (``Observation.attributes``).

"What defect type is this?" names a head's title ("defect type"), so the head's verdict is the
answer, with its score as the confidence and the head as the evidence. "Is this a crack?" names
the value a head chose, so the answer is yes, from the same evidence.
"""

from __future__ import annotations

import re

from oculi.core.types import Answer, AnswerKind, Attribute, Evidence, Observation

_YES_NO = re.compile(r"^\s*(is|are|does|do|was|has|have|can)\b", re.I)


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def _evidence(a: Attribute) -> tuple[Evidence, ...]:
    return (Evidence("attribute", f"trained head {a.head}: {a.value}", a.score),)


def answer_from_attributes(obs: Observation, question: str) -> Answer | None:
    """The answer a trained head gives, or ``None`` when the question is not about one.

    Example:
        >>> from oculi.core.types import ImageInfo
        >>> o = Observation(ImageInfo(8, 8), attributes=(Attribute("defect-type", "defect type", "crack", 0.9),))
        >>> answer_from_attributes(o, "What defect type is this?").answer
        'crack — defect type: crack (90%).'
    """
    q = _words(question)
    for a in obs.attributes:
        if _words(a.title) in q or _words(a.head) in q:
            return Answer(question, f"{a.value} — {a.phrase} ({a.score:.0%}).", a.score, AnswerKind.CATEGORY, _evidence(a))
    if _YES_NO.match(question):
        for a in obs.attributes:
            if _words(a.value) in q:
                return Answer(question, f"Yes — {a.phrase} ({a.score:.0%}).", a.score, AnswerKind.PRESENCE, _evidence(a))
    return None
