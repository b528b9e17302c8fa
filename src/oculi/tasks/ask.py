"""Ask: visual question answering with evidence."""

from __future__ import annotations

from oculi.backends.base import Answerer, Perceiver
from oculi.core.errors import InputError
from oculi.core.types import Answer
from oculi.imageio import LoadedImage

MAX_QUESTION_CHARS = 1000


def validate_question(question: str) -> str:
    """Strip a question and refuse empty or oversized ones."""
    q = (question or "").strip()
    if not q:
        raise InputError("the question is empty; ask e.g. \"How many people are in the photo?\"")
    if len(q) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(q)} characters; the limit is {MAX_QUESTION_CHARS}")
    return q


def ask(loaded: LoadedImage, question: str, perceiver: Perceiver, answerer: Answerer) -> Answer:
    """Answer a question about an image; says it cannot tell when perception cannot support it."""
    q = validate_question(question)
    obs = perceiver.observe(loaded.image, loaded.info, ocr=True)
    return answerer.answer(loaded.image, obs, q)
