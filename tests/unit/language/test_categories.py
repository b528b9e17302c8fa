"""WordNet categories in answers and captions, on hand-built observations: the answer follows
the facts (image labels, detected objects, each object's own crop labels), never beyond them."""

from __future__ import annotations

from oculi.core.types import AnswerKind, Box, DetectedObject, ImageInfo, Label, Observation
from oculi.language.answer import answer
from oculi.language.describe import describe
from oculi.language.questions import parse_question


def _obs(**kw) -> Observation:
    return Observation(ImageInfo(640, 480), **kw)


PALACE = _obs(labels=(Label("palace", 0.31), Label("bell cote", 0.14), Label("monastery", 0.08)))
CUP = DetectedObject("cup", 0.59, Box(170, 15, 415, 267), colour="red", labels=(Label("espresso", 0.88), Label("cup", 0.02)))
CAT = DetectedObject("cat", 0.79, Box(20, 100, 330, 340), colour="brown",
                     labels=(Label("Egyptian cat", 0.65), Label("tiger cat", 0.21), Label("tabby", 0.09)))
PERSON = DetectedObject("person", 0.6, Box(100, 40, 400, 480), colour="black",
                        labels=(Label("military uniform", 0.45), Label("jersey", 0.12), Label("tripod", 0.05)))


def test_a_label_is_a_kind_of_the_category_asked():
    a = answer(PALACE, "Is there a building?")
    assert a.answer == "Yes — a palace, which is a kind of building (31%)."
    assert a.kind is AnswerKind.PRESENCE and a.answerable and a.confidence == 0.31
    assert a.evidence[0].description == "classifier: palace"
    assert answer(PALACE, "Is this a building?").answer.startswith("Yes")
    assert answer(PALACE, "Is there an animal?").answer.startswith("No")
    assert answer(PALACE, "Is there a flower?").answer.startswith("Probably not")


def test_weak_category_labels_do_not_make_a_yes():
    weak = _obs(labels=(Label("Great Dane", 0.15), Label("whippet", 0.04)))  # a horse silhouette, to the classifier
    assert answer(weak, "Is there a dog?").answer.startswith("No")


def test_an_objects_own_crop_names_what_it_shows():
    obs = _obs(objects=(CAT, CUP), labels=(Label("espresso", 0.9),))
    a = answer(obs, "Is there a drink?")
    assert a.answer.startswith("Yes — the cup") and "espresso" in a.answer and "beverage" in a.answer
    assert any(e.box == CUP.box for e in a.evidence)
    animal = answer(obs, "Is there an animal?")
    assert animal.answer.startswith("Yes — I see one cat (on the left)")
    assert "Egyptian cat" in animal.evidence[0].description


def test_what_kind_lists_the_specific_classes():
    obs = _obs(objects=(CAT,), labels=(Label("espresso", 0.9),))
    a = answer(obs, "What kind of cat is this?")
    assert a.kind is AnswerKind.CATEGORY and a.answer.startswith("A cat: an Egyptian cat (65%), a tiger cat (21%)")
    assert answer(PALACE, "What kind of building is this?").answer == "It looks like a palace (31%) or a monastery (8%)."
    assert not answer(PALACE, "What kind of animal is this?").answerable
    assert not answer(PALACE, "What time is it?").answerable  # not a thing the model knows


def test_a_colour_asked_of_a_category_is_checked_on_the_objects():
    blue = DetectedObject("motorcycle", 0.7, Box(100, 50, 600, 440), colour="blue", labels=(Label("moped", 0.5),))
    obs = _obs(objects=(blue,), labels=(Label("moped", 0.5),))
    assert answer(obs, "Is there a red motorcycle?").answer == "No — I see motorcycles, but they are blue, not red."
    assert answer(obs, "Is there a blue vehicle?").answer.startswith("Yes")
    assert not answer(_obs(labels=(Label("daisy", 0.4),)), "Is there a red flower?").answerable


def test_what_a_person_wears():
    obs = _obs(objects=(PERSON,))
    a = answer(obs, "What is the person wearing?")
    assert a.kind is AnswerKind.WEARING
    assert a.answer == "The person is wearing a military uniform (45%), possibly a jersey (12%)."
    assert a.evidence[0].box == PERSON.box
    assert answer(obs, "Is the soldier wearing a uniform?").answerable is False  # "soldier" is not a word it knows
    yes = answer(obs, "Is the man wearing a uniform?")
    assert yes.answer.startswith("Yes") and "kind of uniform" in yes.answer
    assert answer(obs, "Is she wearing a hat?").answer.startswith("Probably not")
    bare = _obs(objects=(DetectedObject("person", 0.6, Box(0, 0, 300, 400), labels=(Label("bobsled", 0.1),)),))
    assert not answer(bare, "What is the person wearing?").answerable
    assert answer(_obs(objects=(CAT,)), "What is the person wearing?").answer.startswith("No one")
    assert not answer(_obs(objects=(CAT,)), "What is the cat wearing?").answerable


def test_what_a_person_holds_or_eats():
    phone = DetectedObject("cell phone", 0.5, Box(200, 200, 260, 300))
    pizza = DetectedObject("pizza", 0.6, Box(150, 300, 300, 400))
    far_cup = DetectedObject("cup", 0.6, Box(500, 10, 600, 100))
    obs = _obs(objects=(PERSON, phone, pizza, far_cup))
    held = answer(obs, "What is the man holding?")
    assert held.kind is AnswerKind.HOLDING and held.answer.startswith("Possibly") and "cell phone" in held.answer
    assert "cannot see their hands" in held.answer
    eat = answer(obs, "What is she eating?")
    assert eat.kind is AnswerKind.EATING and "pizza" in eat.answer and "cup" not in eat.answer
    assert answer(obs, "Is the person eating a pizza?").answer.startswith("Possibly")
    alone = _obs(objects=(PERSON, far_cup))
    assert answer(alone, "What is the person eating?").answer.startswith("No food")
    assert not answer(alone, "What is the person holding?").answerable


def test_abstentions_stay():
    for q in ("Is there a unicorn?", "Why is she smiling?", "What is the meaning of life?"):
        assert not answer(_obs(objects=(PERSON,)), q).answerable, q


def test_questions_parse_into_the_new_kinds():
    assert parse_question("What breed of dog is this?").target.coco == "dog"
    assert parse_question("What does the woman wear?").kind is AnswerKind.WEARING
    assert parse_question("What is he drinking?").kind is AnswerKind.EATING
    pq = parse_question("Is the child carrying a backpack?")
    assert pq.kind is AnswerKind.HOLDING and pq.target.coco == "person" and pq.asked.coco == "backpack"
    assert parse_question("Is there a ball?").target.kinds != parse_question("Is there a bubble?").target.kinds


def test_captions_name_fine_classes_and_categories():
    assert describe(_obs(objects=(CAT, CUP), labels=(Label("espresso", 0.9),))) == (
        "A photo of a brown cat (Egyptian cat) and a red cup (espresso coffee)."
    )
    assert describe(_obs(labels=(Label("daisy", 0.36),))) == "A photo of a daisy, a kind of flower."
    assert describe(PALACE) == "Possibly a photo of a palace, a kind of building."
    detailed = describe(_obs(objects=(PERSON,)), detailed=True)
    assert "The person may be wearing a military uniform (45%)." in detailed
