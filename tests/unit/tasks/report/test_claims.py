"""The claim check: a narrator model's sentence must be supported by the evidence, even when it
has no number, label, name or quotation for the grounding check to catch. Real observations,
real records, the real sentence encoder, and a narrator that is a chat model behind a real
OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import json
from datetime import date, timezone
from pathlib import Path

import pytest

from oculi.tasks.footage.query import find_events
from oculi.tasks.footage.report import build_footage_report
from oculi.tasks.report import create_report
from oculi.tasks.report.build import report_claim_evidence
from oculi.tasks.report.claims import claim_evidence, claim_problems, evidence_from_vocabulary
from oculi.tasks.report.grounding import split_sentences, vocabulary_from
from tests.chat_server import ChatServer, engine_with_models, message_text, openai_model_toml
from tests.grounding_claims import judge, load_scenarios, precision_recall

UTC = timezone.utc


@pytest.fixture(scope="module")
def scenarios(engine, samples_dir: Path, tmp_path_factory):
    from oculi.store.lance import LanceStore
    from tests.footage_records import fill_collection

    coll = LanceStore(tmp_path_factory.mktemp("claims") / "c").create_collection("footage")
    fill_collection(coll)
    return load_scenarios(engine, samples_dir, find_events(coll, camera="main gate")), coll


def test_unsupported_claims_without_numbers_or_labels_are_caught() -> None:
    ev = claim_evidence(["chelsea.png"], ["cat"],
                        ["One cat detected: centre (score 0.93).", "The record mentions a dog, but the images show a cat."],
                        said_text=["The dog is asleep on the sofa; the lid was loose"], said_labels=["dog", "couch"])
    for s in ("The photo shows a feline in the centre.", "A cat is visible in the middle of the picture.",
              "The record mentions a dog, but the image shows a cat instead."):
        assert claim_problems(s, ev) == [], s
    assert "'signs', 'corrosion'" in claim_problems("The part shows signs of corrosion.", ev)[0]
    assert "'patient', 'healthy'" in claim_problems("The patient appears healthy.", ev)[0]
    assert "'present'" in claim_problems("No one was present.", ev)[0]
    assert claim_problems("There is no animal in the photo.", ev) == ["says there is no cat, but one was seen"]
    # a record's words are its claims: stated as fact they are refused, attributed they are kept
    assert claim_problems("The cat is asleep.", ev) == [
        "only a record says 'asleep' (a sentence that states it must attribute it to the record)"]
    assert claim_problems("The lid was loose.", ev)[0].startswith("only a record says 'lid', 'loose'")
    assert claim_problems("The record says the lid was loose.", ev) == []
    assert claim_problems("The cat is sleeping peacefully.", ev)  # "peacefully" is nowhere


def test_verdicts_the_report_does_not_reach(scenarios) -> None:
    insp = next(sc for sc in scenarios[0] if sc.name == "inspection")
    rep = insp.report(narrator=lambda rep: "Both parts passed inspection. Not every part passed. "
                                           "The record for part 4711 is contradicted by the inspection.")
    assert rep.summary == ["Not every part passed. The record for part 4711 is contradicted by the inspection."]
    assert rep.rejected[0].reasons == ("says every image passed, but one failed inspection",)
    rep = insp.report(narrator=lambda rep: "Part 4712 failed inspection. Part 4711 failed inspection. "
                                           "No anomaly was found in any part. Part 4712 shows no anomaly. "
                                           "The anomaly score of part 4712 is below the threshold.")
    assert rep.summary == ["Part 4711 failed inspection. Part 4712 shows no anomaly. "
                           "The anomaly score of part 4712 is below the threshold."]
    assert {r.sentence: r.reasons for r in rep.rejected} == {
        "Part 4712 failed inspection.": ("says part-4712.png failed or shows an anomaly, but it passed inspection",),
        "No anomaly was found in any part.": ("says there is no anomaly, but an image failed inspection",)}
    # what SmolLM2-135M wrote when it narrated this report: a list, one item giving the failed
    # part's score a pass (caught by the score naming the image), one item repeated
    smol = ("- One of two inspected images failed inspection.\n- Detected: cup in one image, cat in one image.\n"
            "- Passed: anomaly score 0.91 against the threshold 0.55; dark linear anomaly, upper left, 2.1% of the area.\n"
            "- Detected: cup in one image, cat in one image.")
    rep = insp.report(narrator=lambda rep: smol)
    assert rep.summary == ["One of two inspected images failed inspection. Detected: cup in one image, cat in one image."]
    assert rep.rejected[0].reasons == ("says part-4711.png passed, but it failed inspection",)
    cat = next(sc for sc in scenarios[0] if sc.name == "cat")  # the record's dog is a cat: nothing bears it out
    rep = cat.report(narrator=lambda rep: "The record is consistent with the image. The record should be confirmed.")
    assert rep.summary == ["The record should be confirmed."]
    assert "no cross-check found a record consistent" in rep.rejected[0].reasons[0]


def test_the_labelled_set(scenarios, engine) -> None:
    """Precision and recall on the hand-labelled sentences (figures in docs/REPORTS.md)."""
    results = [r for sc in scenarios[0] for r in judge(sc, embed=engine.embed_texts)]
    m = precision_recall(results)
    assert m["n"] >= 40 and m["unsupported"] >= 20
    assert m["precision"] >= 0.9 and m["recall"] >= 0.85 and m["supported_kept"] >= 0.9, m
    by_text = {t: kept for t, _, kept in results}
    for s in ("The part shows signs of corrosion.", "The patient appears healthy.", "No one was present at the gate."):
        assert by_text[s] is False, s
    for s in ("A feline is visible in the middle of the picture.", "The models make no clinical finding.",
              "The guard's log says the gate was closed and locked."):
        assert by_text[s] is True, s


def _template_sentences(rep) -> list[str]:
    prose = (list(rep.summary) + [f.text for im in rep.images for f in im.findings] + [im.caption for im in rep.images if im.caption]
             + [c.text for c in rep.cross_checks] + list(rep.recommendations))
    return [s for p in prose for s in split_sentences(p)]


def test_every_template_sentence_of_every_kind_passes(scenarios) -> None:
    """Checked against the evidence *without* the report's own sentences: the report's
    vocabulary must cover what its templates write."""
    scs, coll = scenarios
    kinds = set()
    for sc in scs:
        rep = sc.report()
        kinds.add(rep.kind)
        ev = report_claim_evidence(rep, rep.evidence_vocabulary, statements=False)  # not its own sentences
        sentences = _template_sentences(rep)
        assert sentences
        for s in sentences:
            assert claim_problems(s, ev) == [], (sc.name, s)
    assert kinds == {"general", "inspection", "medical", "incident"}
    for camera in ("main gate", "front door"):  # the footage report's summary and findings
        fr = build_footage_report(coll, camera, date(2026, 11, 27), tz=UTC)
        d = fr.to_dict()
        ev = evidence_from_vocabulary(vocabulary_from([], [], [], d["events"], [camera] + [z["name"] for z in d["scene"]["zones"]]),
                                      [], footage=True)
        for s in [s for p in [fr.summary] + [f.text for f in fr.findings] for s in split_sentences(p)]:
            assert claim_problems(s, ev) == [], (camera, s)


# A chat model that narrates like a careless one: a faithful sentence or two, then claims the
# evidence does not carry (none with a number or a label the detector knows).
STORIES = {
    "general": "The photo shows a cat in the centre of the image. The cat appears healthy and well fed. "
               "No one was present. The part shows signs of corrosion. A feline is visible in the middle of the picture.",
    "medical": "A person is detected in the centre of the image. The patient appears healthy. "
               "There are no signs of disease. A clinician should review the image before any decision.",
}


def narrate_carelessly(body: dict) -> str:
    return STORIES["medical" if "medical report" in message_text(body["messages"][0]) else "general"]


@pytest.fixture()
def narrator_server():
    with ChatServer(narrate_carelessly) as srv:
        yield srv


@pytest.fixture()
def narrating_engine(engine, narrator_server, tmp_path: Path):
    return engine_with_models(engine, tmp_path / "home", openai_model_toml("story", narrator_server.url, "storyteller"))


def test_a_chat_model_narrator_cannot_make_unsupported_claims(narrating_engine, narrator_server, samples_dir: Path) -> None:
    rep = create_report(narrating_engine, [samples_dir / "chelsea.png"], kind="general", model="story")
    assert "One cat detected" in message_text(narrator_server.bodies[0]["messages"][-1])  # it was given the facts
    assert rep.summary == ["The photo shows a cat in the centre of the image. A feline is visible in the middle of the picture."]
    dropped = {r.sentence: " ".join(r.reasons) for r in rep.rejected if r.where == "narrator"}
    assert set(dropped) == {"The cat appears healthy and well fed.", "No one was present.", "The part shows signs of corrosion."}
    assert "'healthy'" in dropped["The cat appears healthy and well fed."] and "'corrosion'" in dropped["The part shows signs of corrosion."]
    assert "3 sentences of the narrator model were left out: not supported by the evidence" in " ".join(rep.limits)
    d = json.loads(json.dumps(rep.to_dict()))
    assert {x["sentence"] for x in d["grounding"]["rejected"]} == set(dropped)
    assert d["narrator"] == "story" and d["model"] == "story"  # the summary is the model's prose
    text = " ".join(d["summary"] + d["limits"] + d["recommendations"])
    assert "healthy" not in text and "corrosion" not in text  # the claims are not repeated on the page

    med = create_report(narrating_engine, [samples_dir / "astronaut.png"], kind="medical", model="story")
    assert med.summary == ["A person is detected in the centre of the image. A clinician should review the image before any decision."]
    assert {r.sentence for r in med.rejected if r.where == "narrator"} == {"The patient appears healthy.",
                                                                           "There are no signs of disease."}
    assert any("2 sentences of the narrator model were left out" in s for s in med.limits)
    assert med.notice and "not a diagnosis" in med.notice


def test_captions_of_a_describe_model_are_checked_too(scenarios, engine) -> None:
    """A configured VLM that describes the image may embellish as a narrator does; the built-in
    captions of every scikit-image sample pass (checked in the loop over the samples below)."""
    from oculi.tasks.report import ReportImage, build_report

    cat = next(sc for sc in scenarios[0] if sc.name == "cat").kwargs["images"][0]
    im = ReportImage("img1", cat.path, cat.observation, image=cat.image,
                     caption="A photo of a cat in the centre. The cat looks healthy and well fed. Nobody is in the room.")
    rep = build_report([im], embed=engine.embed_texts)
    assert rep.images[0].caption == "A photo of a cat in the centre."
    assert {r.sentence for r in rep.rejected} == {"The cat looks healthy and well fed.", "Nobody is in the room."}
    assert all(r.where == "caption of img1" for r in rep.rejected)
    assert any(s.startswith("2 sentences of the image captions were left out") for s in rep.limits)


def test_builtin_captions_of_every_sample_pass(engine, samples_dir: Path) -> None:
    paths = sorted(samples_dir.glob("*.png"))
    assert len(paths) >= 8
    rep = create_report(engine, paths, kind="general")
    assert [r.to_dict() for r in rep.rejected] == []
    assert rep.narrator is None  # no narrator: the template's summary
    assert sum(1 for im in rep.images if im.caption) == len(rep.images)


def test_an_encoder_that_fails_leaves_the_word_check_and_a_warning(scenarios) -> None:
    from oculi.core.errors import BackendError

    def broken(texts):  # a remote text encoder that is down
        raise BackendError("the text encoder failed: connection refused")

    sc = next(sc for sc in scenarios[0] if sc.name == "cat")
    rep = sc.report(narrator=lambda rep: "It is what it is. The patient appears healthy.", embed=broken)
    assert rep.summary == ["It is what it is."]  # no evidence word, no encoder to compare it: kept
    assert rep.narrator == "custom"  # a narrator function that names no model
    assert [r.sentence for r in rep.rejected] == ["The patient appears healthy."]
    assert any("sentence encoder failed" in w and "word by word" in w for w in rep.warnings)
