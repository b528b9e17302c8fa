"""The VQA and caption metrics themselves (no model): official normalisation and scoring."""

from __future__ import annotations

import pytest

from oculi.tasks.evaluate_captions import caption_scores, tokenize
from oculi.tasks.evaluate_vqa import answer_type, evaluate_vqa, normalise_answer, short_answer, vqa_accuracy
from oculi.tasks.train.data import VQAItem


def test_vqa_accuracy_follows_the_challenge_metric() -> None:
    ten = ["2"] * 3 + ["two"] + ["3"] * 6
    assert vqa_accuracy("Two.", ten) == pytest.approx(1.0)  # 4 humans said 2: min(1, 3/3) on every subset
    assert vqa_accuracy("3", ten) == pytest.approx(1.0)
    assert vqa_accuracy("4", ten) == 0.0
    assert vqa_accuracy("red", ["red"] + ["blue"] * 9) == pytest.approx(0.3)  # min(1, 1/3) in 9 subsets, 0 in 1
    assert vqa_accuracy("the circle", ["circle"]) == 1.0 and vqa_accuracy("circles", ["circle"]) == 0.0
    assert normalise_answer("Isn't it? Yes!") == "isn't it yes" and normalise_answer("1,000") == "1000"
    assert short_answer("2 — there are two people.") == "2" and short_answer("No — I see no cats.") == "No"
    assert answer_type(["yes"]) == "yes/no" and answer_type(["3"]) == "number" and answer_type(["red"]) == "other"


def test_evaluate_vqa_scores_and_groups() -> None:
    items = [VQAItem("a.png", "is it red?", ("yes",), "1"), VQAItem("a.png", "what colour?", ("red",), "2"),
             VQAItem("b.png", "how many?", ("2",), "3")]
    answers = {"is it red?": "Yes — it is.", "what colour?": "blue", "how many?": "two"}
    ev = evaluate_vqa(items, ask=lambda img, q: answers[q])
    assert ev.accuracy == pytest.approx(2 / 3)
    assert ev.by_type() == {"number": {"accuracy": 1.0, "n": 1}, "other": {"accuracy": 0.0, "n": 1}, "yes/no": {"accuracy": 1.0, "n": 1}}
    assert ev.to_dict()["results"][0]["prediction"] == "Yes"


def test_caption_scores_through_pycocoevalcap_without_java() -> None:
    refs = {"a": ["a red circle on a white background", "a red round shape"],
            "b": ["a blue square", "a square drawn in blue"],
            "c": ["a green triangle", "a triangle in green on white"]}
    perfect = caption_scores(refs, {k: v[0] for k, v in refs.items()})
    poor = caption_scores(refs, {"a": "a photo", "b": "a photo", "c": "a photo"})
    assert perfect["bleu_4"] > 0.9 and perfect["cider"] > poor["cider"] + 1
    assert poor["bleu_4"] < 0.1
    assert tokenize("Hello, World... it's 3!") == "hello world it's 3"
