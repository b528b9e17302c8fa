from __future__ import annotations

from oculi.core.types import Box, DetectedObject, ImageInfo, Label, Observation, TextLine
from oculi.language.describe import describe, position_words


def test_caption_mentions_objects_counts_colours_and_text():
    objs = (
        DetectedObject("person", 0.8, Box(0, 0, 300, 400)),
        DetectedObject("person", 0.7, Box(300, 0, 600, 400)),
        DetectedObject("cup", 0.6, Box(10, 400, 60, 470), colour="red"),
    )
    obs = Observation(ImageInfo(640, 480), objects=objs, text=(TextLine("OPEN", 0.9, Box(1, 1, 50, 20)),))
    c = describe(obs)
    assert c == 'A photo of two people and a red cup, with text reading "OPEN".'


def test_caption_uses_confident_label_and_hedges_weak_one():
    assert describe(Observation(ImageInfo(10, 10), labels=(Label("espresso", 0.8),))) == (
        "A photo of an espresso coffee, a kind of beverage."  # WordNet: espresso → coffee → beverage
    )
    assert describe(Observation(ImageInfo(10, 10), labels=(Label("espresso", 0.2),))).startswith("Possibly")


def test_caption_admits_ignorance():
    c = describe(Observation(ImageInfo(10, 10), labels=(Label("velvet", 0.05),)))
    assert "cannot identify" in c and "velvet" in c


def test_detailed_adds_positions_and_labels():
    obs = Observation(ImageInfo(600, 600), objects=(DetectedObject("dog", 0.9, Box(0, 0, 100, 100), colour="brown"),),
                      labels=(Label("beagle", 0.5),))
    d = describe(obs, detailed=True)
    assert "top left" in d and "beagle 50%" in d and d.startswith("A photo of a brown dog")


def test_position_words_grid():
    assert position_words(Box(280, 200, 360, 280), 640, 480) == "in the centre"
    assert position_words(Box(0, 0, 10, 10), 640, 480) == "at the top left"
    assert position_words(Box(600, 200, 640, 280), 640, 480) == "on the right"
