from __future__ import annotations

import pytest

from oculi.core.types import AnswerKind
from oculi.language.questions import parse_question


@pytest.mark.parametrize(
    "q,kind,coco",
    [
        ("How many people are in the photo?", AnswerKind.COUNT, "person"),
        ("how many cups", AnswerKind.COUNT, "cup"),
        ("Is there a cat?", AnswerKind.PRESENCE, "cat"),
        ("Are there any dogs in the image?", AnswerKind.PRESENCE, "dog"),
        ("Do you see a bike?", AnswerKind.PRESENCE, "bicycle"),
        ("Does the photo contain a laptop?", AnswerKind.PRESENCE, "laptop"),
        ("What colour is the car?", AnswerKind.COLOUR, "car"),
        ("What is the color of the bus?", AnswerKind.COLOUR, "bus"),
        ("Where is the cup?", AnswerKind.POSITION, "cup"),
        ("What does the sign say?", AnswerKind.TEXT, None),
        ("What is written here?", AnswerKind.TEXT, None),
        ("What is this?", AnswerKind.CATEGORY, None),
        ("What animal is this?", AnswerKind.CATEGORY, None),
        ("Why is the sky blue?", AnswerKind.UNKNOWN, None),
    ],
)
def test_parse(q, kind, coco):
    pq = parse_question(q)
    assert pq.kind is kind
    if coco:
        assert pq.target is not None and pq.target.coco == coco


def test_colour_in_target_phrase():
    pq = parse_question("Is there a red car?")
    assert pq.target is not None and pq.target.colour == "red" and pq.target.coco == "car"


def test_resolver_used_only_for_unknown_words():
    seen = []

    def resolve(w):
        seen.append(w)
        return "car" if w == "automobile thing" else None

    assert parse_question("Is there an automobile thing?", resolve).target.coco == "car"
    parse_question("Is there a cat?", resolve)
    assert seen == ["automobile thing"]
