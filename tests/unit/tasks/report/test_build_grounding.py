"""Reports from real observations of real photos: cross-checks, severity, and a grounding check
that the prose cannot get past (the tests try to make it invent)."""

from __future__ import annotations

import json
import re
from datetime import date, timezone
from pathlib import Path

import numpy as np
import pytest

from oculi.imageio import load_image
from oculi.tasks.footage.query import find_events
from oculi.tasks.report import ReportImage, build_report, create_report
from oculi.tasks.report.grounding import Vocabulary, ground_text, sentence_problems, vocabulary_from
from oculi.tasks.report.records import link_records, parse_records

UTC = timezone.utc


@pytest.fixture(scope="module")
def observed(engine, samples_dir: Path) -> dict[str, ReportImage]:
    out = {}
    for i, name in enumerate(("chelsea", "coffee", "page"), 1):
        p = str(samples_dir / f"{name}.png")
        out[name] = ReportImage(f"img{i}", p, engine.observe(p), image=load_image(p).image)
    return out


def _images(observed, *names):
    return [ReportImage(f"img{i}", observed[n].path, observed[n].observation, image=observed[n].image)
            for i, n in enumerate(names, 1)]


def _prose(rep) -> list[str]:
    d = rep.to_dict()
    return d["summary"] + d["recommendations"] + [f["text"] for i in d["images"] for f in i["findings"]] + \
        [c["text"] for c in d["cross_checks"]]


def test_a_record_that_mentions_an_absent_object_is_contradicted_not_repeated(observed) -> None:
    ims = _images(observed, "chelsea", "coffee")
    recs = parse_records(b"image,text\nchelsea.png,The dog is asleep on the sofa\ncoffee.png,A cup of coffee\n", "notes.csv")
    link_records(recs, {im.id: im.path for im in ims})
    rep = build_report(ims, kind="general", records=recs)
    by_rec = {c.record: c for c in rep.cross_checks if c.claim == "dog"}
    dog = by_rec["rec1"]
    assert dog.status.value == "conflict" and "cat" in dog.text and dog.images == ("img1",)
    assert any(e.kind.value == "object" and e.description.startswith("cat") and e.region is not None for e in dog.evidence)
    cup = [c for c in rep.cross_checks if c.claim == "cup"][0]
    assert cup.status.value == "consistent" and cup.evidence[1].region is not None
    # nowhere does the report say a dog was seen: "dog" only appears attributed to the record
    for s in _prose(rep):
        if re.search(r"\bdog\b", s):
            assert "record" in s.lower() and "no dog" in s, s
    assert rep.rejected == []  # the report's own sentences are all grounded
    assert rep.severity.value == "medium"


def test_the_checker_rejects_invented_numbers_labels_names_and_quotes(observed) -> None:
    ims = _images(observed, "chelsea", "page")
    recs = parse_records(b"text\nThe dog is asleep on the sofa\n", "n.csv")
    v = vocabulary_from([im.observation for im in ims], [], recs.records, [], ["chelsea.png"],
                        seen_labels={"cat"})
    ok = ["One cat detected: centre (score %.2f)." % ims[0].observation.objects[0].score,
          "The record says a dog is asleep on the sofa.",
          "Text read: \u201cRegion-based segmentation\u201d."]
    for s in ok:
        assert sentence_problems(s, v) == [], s
    bad = {
        "A dog is asleep on the sofa.": "label 'dog' was not seen",
        "Three cats were detected.": "number three",
        "The cat weighs 4.2 kg.": "number 4.2",
        "The cat belongs to Mrs Hudson.": "name 'Hudson'",
        "The page says \u201cinvoice overdue\u201d.": "quotation",
        "A person stands next to the cat.": "label 'person'",
    }
    for s, why in bad.items():
        problems = sentence_problems(s, v)
        assert any(why in p for p in problems), (s, problems)
    rejected: list = []
    kept = ground_text("One cat detected. A dog is on the sofa. The cat is on the left.", v, "t", rejected)
    assert kept == "One cat detected. The cat is on the left." and rejected[0].sentence == "A dog is on the sofa."


def test_a_narrator_cannot_add_facts(observed) -> None:
    ims = _images(observed, "chelsea")
    recs = parse_records(b"text\nThe dog is asleep on the sofa\n", "n.csv")
    link_records(recs, {im.id: im.path for im in ims})

    def narrator(rep) -> str:  # a model that embellishes, as models do
        return ("The image shows a cat. A dog sleeps on the sofa next to it. Two people were seen at 18:40. "
                "The record says a dog is asleep on the sofa, but no dog is detected.")

    rep = build_report(ims, kind="general", records=recs, narrator=narrator)
    assert rep.summary == ["The image shows a cat. The record says a dog is asleep on the sofa, but no dog is detected."]
    reasons = {r.sentence: r.reasons for r in rep.rejected}
    assert "A dog sleeps on the sofa next to it." in reasons and "Two people were seen at 18:40." in reasons
    assert all(r.where == "narrator" for r in rep.rejected)
    assert json.loads(json.dumps(rep.to_dict()))["grounding"]["rejected"][0]["where"] == "narrator"


def _inspection(score: float, passed: bool, box=(40.0, 30.0, 120.0, 90.0)) -> dict:
    return {"path": "", "score": score, "threshold": 0.55, "pass": passed, "finding": "" if passed else
            f"dark linear anomaly, upper left, 2.1 % of the area; score {score:.2f} vs threshold 0.55",
            "regions": [] if passed else [{"box": list(box), "area_fraction": 0.021, "peak": 0.97,
                                          "position": "upper left", "description": "dark linear anomaly"}]}


def test_inspection_records_against_anomalies(observed, tmp_path: Path) -> None:
    good, bad = _images(observed, "coffee", "chelsea")
    bad.path = str(tmp_path / "part-4711.png")
    good.path = str(tmp_path / "part-4712.png")
    bad.inspection, good.inspection = _inspection(0.91, False), _inspection(0.2, True)
    bad.heatmap = np.zeros((32, 32), np.float32)
    recs = parse_records(b"part,status,text\n4711,passed,part 4711 passed final check\n"
                         b"4712,failed,part 4712 rejected\n", "qa.csv")
    link_records(recs, {bad.id: bad.path, good.id: good.path})
    assert [r.images for r in recs.records] == [(bad.id,), (good.id,)]
    rep = build_report([good, bad], kind="inspection", records=recs, inspector="line-3")
    checks = {c.record: c for c in rep.cross_checks if c.claim in ("passed", "failed")}
    assert checks["rec1"].status.value == "conflict" and checks["rec1"].severity.value == "high"
    assert "shows an anomaly (score 0.91 against the threshold 0.55)" in checks["rec1"].text
    assert any(e.region is not None for e in checks["rec1"].evidence)
    assert checks["rec2"].status.value == "conflict" and checks["rec2"].severity.value == "medium"
    anomaly = [f for f in bad.findings if f.kind.value == "anomaly"][0]
    assert anomaly.severity.value == "high" and "2.1 % of the area" in anomaly.text  # 0.91 >= 1.5 x 0.55
    assert [f.severity.value for f in good.findings if f.kind.value == "anomaly"] == ["none"]
    assert "One of two inspected images failed inspection." in rep.summary
    assert any("Hold the part shown in part-4711.png" in s for s in rep.recommendations)
    assert rep.rejected == [] and rep.severity.value == "high"


def test_a_closed_gate_against_footage_events(observed, coll) -> None:
    ims = _images(observed, "chelsea")
    recs = parse_records(b"time,text\n16:55,Main gate closed and locked by the guard\n", "gate.csv")
    link_records(recs, {}, day=date(2026, 11, 27), tz=UTC)
    events = find_events(coll, camera="main gate")
    rep = build_report(ims, kind="incident", records=recs, events=events, tz=UTC)
    c = [c for c in rep.cross_checks if c.claim.startswith("closed at")][0]
    assert c.status.value == "conflict" and c.severity.value == "high"
    assert "shows a person at 16:59 (track 1)" in c.text and "main gate" in c.text
    assert c.evidence[1].frame["keyframe"] == "1" * 32 and c.evidence[1].region is not None
    early = parse_records(b"time,text\n18:00,Main gate closed\n", "gate.csv")
    link_records(early, {}, day=date(2026, 11, 27), tz=UTC)
    rep2 = build_report(ims, kind="incident", records=early, events=events, tz=UTC)
    assert [c.status.value for c in rep2.cross_checks] == ["consistent"]


def test_medical_reports_say_what_they_are_and_claim_nothing(engine, samples_dir: Path) -> None:
    rep = create_report(engine, [samples_dir / "astronaut.png", samples_dir / "nope.png"], kind="medical")
    d = rep.to_dict()
    assert "not a diagnosis" in d["notice"] and "reviewed by a clinician" in d["notice"]
    assert "not a diagnosis" in d["title"]
    assert any("No clinical finding is made" in s for s in d["summary"])
    assert any("clinician review every image" in s for s in d["recommendations"])
    assert [w for w in d["warnings"] if "nope.png left out" in w]  # a missing image is a warning, not a crash
    assert all(f["kind"] != "label" for i in d["images"] for f in i["findings"])  # no ImageNet guesses as findings
    assert d["schema"] == "oculi.report/1" and len(d["images"]) == 1


def test_quoted_text_in_a_record_against_the_text_read(observed) -> None:
    ims = _images(observed, "page", "chelsea")
    recs = parse_records('text\nHeading reads "Region-based segmentation"\nLabel says "ACME 4711-B"\n'.encode(), "n.csv")
    link_records(recs, {im.id: im.path for im in ims})
    rep = build_report(ims, records=recs)
    by = {c.record: c for c in rep.cross_checks if c.claim == "text"}
    assert by["rec1"].status.value == "consistent" and by["rec1"].images == ("img1",)
    assert by["rec1"].evidence[1].text_line == 0 and by["rec1"].evidence[1].region is not None
    assert by["rec2"].status.value == "conflict" and "does not contain it" in by["rec2"].text
    assert rep.rejected == []


def test_a_time_without_a_date_is_a_warning_not_a_guess(observed, coll) -> None:
    ims = _images(observed, "chelsea")
    recs = parse_records(b"text\nGate closed at 16:55\n", "gate.csv")
    link_records(recs, {}, tz=UTC)  # no day given
    rep = build_report(ims, kind="incident", records=recs, events=find_events(coll, camera="main gate"), tz=UTC)
    assert not [c for c in rep.cross_checks if c.claim.startswith("closed")]
    assert any("16:55 without a date" in w and "--day" in w for w in rep.warnings)


def test_captions_are_grounded_too(engine, samples_dir: Path) -> None:
    rep = create_report(engine, [samples_dir / "chelsea.png", samples_dir / "page.png"], kind="general")
    caps = [im.caption for im in rep.images]
    assert caps[0].startswith("A photo of") and "cat" in caps[0]
    assert "Region-based segmentation" in caps[1]  # the caption quotes the lines joined: still in the evidence
    assert rep.rejected == []
    ims = _images({"chelsea": rep.images[0]}, "chelsea")
    ims[0].caption = "A photo of a cat and a dog. The cat is brown."
    rep2 = build_report(ims)
    assert rep2.images[0].caption == "The cat is brown." and rep2.rejected[0].where == "caption of img1"


def test_counts_in_records(observed) -> None:
    ims = _images(observed, "chelsea")
    recs = parse_records(b"text\nTwo cats asleep\nOne cat\n3 big cats on the mat\nZero cats in the room\n", "n.csv")
    link_records(recs, {})
    rep = build_report(ims, records=recs)
    by = {c.record: c for c in rep.cross_checks}
    assert by["rec1"].status.value == "unverifiable" and "but one cat is detected in chelsea.png" in by["rec1"].text
    assert by["rec2"].status.value == "consistent"
    assert by["rec3"].claim == "3 cat" and by["rec3"].status.value == "unverifiable"
    # more seen than the record says: a conflict (fewer may be the detector missing some)
    assert by["rec4"].status.value == "conflict" and by["rec4"].severity.value == "medium"
    assert rep.rejected == []
