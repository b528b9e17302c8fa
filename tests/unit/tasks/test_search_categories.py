"""Search concepts for WordNet categories and colours, on stored observation documents."""

from __future__ import annotations

import json

from oculi.core.types import Box, DetectedObject, ImageInfo, Label, Observation
from oculi.tasks.search import explain, parse_query
from oculi.tasks.search.ranking import contradiction


def _fields(obs: Observation) -> dict:
    return {"observation": json.dumps(obs.to_dict()), "text": obs.full_text}


PALACE = Observation(ImageInfo(640, 427), labels=(Label("palace", 0.31), Label("monastery", 0.08)))
COFFEE = Observation(
    ImageInfo(600, 400),
    objects=(DetectedObject("cup", 0.59, Box(170, 15, 415, 267), colour="red", labels=(Label("espresso", 0.88),)),),
    labels=(Label("espresso", 0.95),),
)


def test_category_words_become_concepts():
    c = parse_query("a building")
    assert c.concepts[0].kinds and c.words == ("building",)
    assert parse_query("vehicles").concepts[0].kinds == parse_query("vehicle").concepts[0].kinds
    assert parse_query("some people").objects == ("person",)


def test_a_category_is_met_by_its_members_and_the_why_names_them():
    e, matched, why = explain(parse_query("building"), _fields(PALACE), "building")
    assert e > 0.4 and matched["labels"][0] == "palace"
    assert why[0] == "label: palace, a kind of building (0.31)"
    e2, _, why2 = explain(parse_query("drink"), _fields(COFFEE), "drink")
    assert e2 == 1.0 and any("espresso" in w and "beverage" in w for w in why2)
    assert explain(parse_query("animal"), _fields(PALACE), "animal")[0] == 0.0


def test_colour_alone_reads_the_images_share_and_a_red_cup_is_no_red_bottle():
    from oculi.core.types import ColourShare

    red_swatch = Observation(ImageInfo(64, 64), colours=(ColourShare("red", 1.0),))
    coffee = Observation(COFFEE.image, objects=COFFEE.objects, labels=COFFEE.labels,
                         colours=(ColourShare("orange", 0.49), ColourShare("red", 0.2)))
    q = parse_query("red")
    assert explain(q, _fields(red_swatch), "red")[0] > explain(q, _fields(coffee), "red")[0] > 0
    bottle = parse_query("a red bottle")
    assert contradiction(bottle, _fields(coffee)) == "colour: red is on a cup here, not on a bottle"
    assert contradiction(bottle, _fields(red_swatch)) is None
    assert contradiction(parse_query("a red cup"), _fields(coffee)) is None
