"""WordNet categories, fine object names, clothing and object colours on real photos.

Photos: scikit-learn's china.jpg (the classifier calls it a palace) and flower.jpg (a daisy),
scikit-image's samples, and the generated scenes of ``oculi.scenes``. Every check reads what
perception found; the expected words come from WordNet, not from the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oculi.core.labels import imagenet_to_coco
from oculi.core.taxonomy import taxonomy
from oculi.language.kinds import kind_of, kinds_for_word, wearable_kinds
from oculi.language.vocab import gloss

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from oculi.scenes import write_vqa_images

    return write_vqa_images(tmp_path_factory.mktemp("vqa"))


@pytest.mark.parametrize(("photo", "word"), [("china", "building"), ("flower", "flower"), ("chelsea", "animal"),
                                              ("coffee", "drink"), ("rocket", "vehicle")])
def test_presence_of_a_category_names_the_member_seen(engine, photos, photo, word):
    a = engine.ask(photos[photo], f"Is there {'an' if word[0] in 'aeiou' else 'a'} {word}?")
    assert a.answer.startswith("Yes") and a.answerable
    obs = engine.observe(photos[photo], ocr=False)
    kinds = kinds_for_word(word)
    members = [gloss(lab.name) for lab in obs.labels if kind_of(lab.name, kinds)]
    members += [o.label for o in obs.objects if kind_of(o.label, kinds, coco=True)]
    members += [gloss(lab.name) for o in obs.objects for lab in o.labels if kind_of(lab.name, kinds)]
    # the answer names a specific class seen that WordNet files under the word asked
    assert any(m in a.answer for m in members), (a.answer, members)


def test_the_palace_answer_reads_as_the_issue_asks(engine, photos):
    a = engine.ask(photos["china"], "Is there a building?")
    top = engine.observe(photos["china"], ocr=False).labels[0]
    assert a.answer == f"Yes — a {top.name}, which is a kind of building ({top.score:.0%})."
    assert not engine.ask(photos["china"], "Is there an animal?").answer.startswith("Yes")


def test_what_kind_and_fine_object_names(engine, photos):
    obs = engine.observe(photos["cat_and_cup"], ocr=False)
    cat = next(o for o in obs.objects if o.label == "cat")
    a = engine.ask(photos["cat_and_cup"], "What kind of cat is this?")
    assert a.answer.startswith("A cat: ") and cat.labels[0].name in a.answer
    caption = engine.caption(photos["cat_and_cup"]).caption
    fine = caption.split("cat (", 1)[1].split(")", 1)[0]
    assert imagenet_to_coco(fine) == "cat"  # "a brown cat (Egyptian cat)": a kind of cat, from its own crop


def test_clothing_is_read_from_the_persons_crop(engine, photos):
    a = engine.ask(photos["camera"], "What is the person wearing?")
    worn = [e.description.removeprefix("on the person: ") for e in a.evidence if e.kind == "label"]
    assert a.answerable and worn and all(kind_of(w, wearable_kinds()) for w in worn)
    # the astronaut's space suit is not an ImageNet class: it says so instead of guessing
    assert not engine.ask(photos["astronaut"], "What is the person wearing?").answerable
    assert engine.ask(photos["coffee"], "What is the person wearing?").answer.startswith("No one")


@pytest.mark.parametrize(("photo", "colour"), [("coffee", "red"), ("coffee_blue", "blue"), ("cup_on_yellow", "red")])
def test_the_cup_colour_is_its_own(engine, photos, photo, colour):
    assert engine.ask(photos[photo], "What colour is the cup?").answer == f"The cup is {colour}."


def test_classify_matches_categories_to_members(engine, photos):
    assert engine.classify(photos["china"], "animal,building,vehicle,food").best.label == "building"
    assert engine.classify(photos["coffee"], "animal,building,vehicle,drink").best.label == "drink"
    assert engine.classify(photos["flower"], "animal,building,vehicle,flower").best.label == "flower"


def test_search_finds_members_of_a_category(engine, photos, tmp_path):
    from oculi.config import Settings
    from oculi.library import Library
    from oculi.store import open_store

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("china", "flower", "chelsea", "coffee", "motorcycle", "astronaut"):
        shutil.copy(photos[name], folder)
    lib = Library(engine, open_store(Settings(home=tmp_path / "home")))
    assert lib.index([folder], "vocab").added == 6
    for query, photo in (("building", "china"), ("an animal", "chelsea"), ("a drink", "coffee"), ("flowers", "flower")):
        top = lib.search("vocab", text=query).results[0]
        assert Path(top.path).stem == photo, query
        assert any("a kind of" in w for w in top.why), top.why
    assert taxonomy().kind_of("palace", kinds_for_word("building")) == "building"
