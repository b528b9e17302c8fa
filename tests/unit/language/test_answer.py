"""The grounded answerer on hand-built observations: answers follow the facts, never beyond."""

from __future__ import annotations

import pytest

from oculi.core.types import AnswerKind, Box, ColourShare, DetectedObject, ImageInfo, Label, Observation, TextLine
from oculi.language.answer import answer


def _obs(**kw) -> Observation:
    return Observation(ImageInfo(640, 480), **kw)


PERSON = DetectedObject("person", 0.8, Box(250, 100, 390, 460))
CUP = DetectedObject("cup", 0.5, Box(10, 10, 80, 70), colour="white")
RED_CAR = DetectedObject("car", 0.7, Box(400, 300, 600, 420), colour="red")
BLUE_CAR = DetectedObject("car", 0.6, Box(20, 300, 200, 420), colour="blue")


def test_count_people():
    a = answer(_obs(objects=(PERSON,)), "How many people are in the photo?")
    assert a.kind is AnswerKind.COUNT and a.answer.startswith("1")
    assert a.evidence[0].box == PERSON.box


def test_count_zero_and_coloured_count():
    obs = _obs(objects=(RED_CAR, BLUE_CAR))
    assert answer(obs, "How many cars are there?").answer.startswith("2")
    assert answer(obs, "How many red cars are there?").answer.startswith("1")
    assert answer(obs, "How many dogs are there?").answer.startswith("0")


def test_absent_object_is_no_not_invented():
    a = answer(_obs(objects=(PERSON,)), "Is there a cat?")
    assert a.answer.startswith("No")
    assert a.evidence == ()


def test_presence_yes_with_position():
    a = answer(_obs(objects=(PERSON, CUP)), "Is there a mug?")
    assert a.answer.startswith("Yes") and "top left" in a.answer


def test_presence_from_classifier_label():
    a = answer(_obs(labels=(Label("space shuttle", 0.6),)), "Is there a rocket?")
    assert a.answer.startswith("Yes") and "rocket" in a.answer


def test_unknown_thing_cannot_tell():
    a = answer(_obs(objects=(PERSON,)), "Is there a unicorn?")
    assert not a.answerable and a.answer.startswith("I cannot tell") and a.confidence == 0.0


def test_unsupported_question_cannot_tell():
    a = answer(_obs(objects=(PERSON,)), "Why is the astronaut smiling?")
    assert not a.answerable and a.kind is AnswerKind.UNKNOWN


def test_colour_of_object_and_yes_no_colour():
    obs = _obs(objects=(CUP,))
    assert answer(obs, "What colour is the cup?").answer == "The cup is white."
    assert answer(obs, "What color is the cup?").answer == "The cup is white."
    assert answer(obs, "Is the cup red?").answer.startswith("No")
    assert answer(obs, "Is the cup white?").answer.startswith("Yes")


def test_colour_of_absent_object_cannot_tell():
    a = answer(_obs(objects=(PERSON,)), "What colour is the car?")
    assert not a.answerable


def test_position():
    a = answer(_obs(objects=(CUP,)), "Where is the cup?")
    assert a.answer == "The cup is at the top left."


def test_text_question():
    line = TextLine("EXIT", 0.95, Box(10, 10, 100, 40))
    assert answer(_obs(text=(line,)), "What does the sign say?").answer == 'It says: "EXIT"'
    assert answer(_obs(), "What is written on it?").answer.startswith("I found no readable text")


def test_category_animal_uses_detector_or_classifier():
    cat = DetectedObject("cat", 0.7, Box(100, 50, 500, 450), colour="brown")
    assert "cat" in answer(_obs(objects=(cat,)), "What animal is this?").answer
    assert "Egyptian cat" in answer(_obs(labels=(Label("Egyptian cat", 0.7),)), "What animal is this?").answer
    assert not answer(_obs(objects=(CUP,)), "What animal is this?").answerable


def test_scene_colours():
    obs = _obs(colours=(ColourShare("blue", 0.6), ColourShare("white", 0.3)))
    assert answer(obs, "What colour is the image?").answer == "Mostly blue and white."


@pytest.mark.parametrize("q", ["Is there a red car?", "Are there red cars?"])
def test_colour_filtered_presence(q):
    obs = _obs(objects=(BLUE_CAR,))
    a = answer(obs, q)
    assert a.answer.startswith("No") and "blue" in a.answer


def test_to_dict_schema():
    d = answer(_obs(objects=(PERSON,)), "How many people?").to_dict()
    assert set(d) >= {"schema_version", "answer", "confidence", "evidence", "kind", "answerable"}
    assert d["evidence"][0]["box"] == [250.0, 100.0, 390.0, 460.0]


def test_answer_and_caption_agree_on_a_weak_label():
    """A label too weak for the caption to mention is not evidence for an answer either."""
    from oculi.language.describe import describe

    obs = _obs(labels=(Label("Great Dane", 0.16),))
    assert "cannot identify" in describe(obs)
    assert not answer(obs, "What animal is this?").answerable
    assert not answer(obs, "Is there a dog?").answer.startswith("Yes")
