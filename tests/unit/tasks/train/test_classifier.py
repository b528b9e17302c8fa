"""``oculi train classifier`` end to end on generated defect photos, with the real built-in model:
measured on held-out images, stored, then used by caption, ask, classify and search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.core.errors import InputError, Interrupted
from oculi.tasks.train.classifier import train_classifier
from oculi.tasks.train.loop import FitConfig
from tests.train_data import write_defects

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_defects(tmp_path_factory.mktemp("defects"), per_class=8)


@pytest.fixture(scope="module")
def trained(train_engine, defects: Path):
    return train_classifier(train_engine, defects, "defect-type", config=FitConfig(epochs=40, batch_size=16, weight_decay=1e-2))


def test_held_out_metrics_and_confusion_matrix(trained) -> None:
    d = trained.to_dict()
    assert d["classes"] == ["crack", "ok", "rust", "scratch"]
    assert d["n_test"] == 8 and d["n_train"] == 24
    assert d["accuracy"] >= 0.75, d  # 4 classes: chance is 0.25
    assert set(d["per_class"]) == set(d["classes"]) and all(0 <= v["f1"] <= 1 for v in d["per_class"].values())
    assert sum(map(sum, d["confusion"])) == 8
    assert d["losses"][-1] < d["losses"][0] / 4
    assert Path(d["confusion_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert d["feature_space"] == {"model": "builtin/efficientnet-lite0", "dim": 1280}


def test_the_head_speaks_in_caption_ask_and_classify(train_engine, trained, defects: Path) -> None:
    img = defects / "crack" / "crack_7.png"
    cap = train_engine.caption(img)
    att = cap.observation.attributes[0]
    assert att.head == "defect-type" and f"Defect type: {att.value}." in cap.caption
    assert att.value == "crack", cap.caption  # the generated crack is unmistakable
    a = train_engine.ask(img, "What defect type is this?")
    assert a.answer.startswith("crack") and a.evidence[0].kind == "attribute"
    assert a.confidence == pytest.approx(att.score, abs=1e-4)
    c = train_engine.classify(defects / "rust" / "rust_6.png", "rust,crack,ok")
    assert c.best.label == "rust" and abs(sum(s.score for s in c.scores) - 1) < 1e-3


def test_a_collection_indexed_with_the_head_is_searchable_by_its_classes(train_engine, trained, defects: Path) -> None:
    from oculi.library import Library

    lib = Library(train_engine)
    rep = lib.index([defects / "crack", defects / "rust", defects / "ok"], "parts", ocr=False)
    assert rep.added == 24
    for query in ("crack", "defect type: rust"):
        res = lib.search("parts", text=query, top_k=8)
        want = query.split()[-1]
        top = [Path(r.path).parent.name for r in res.results[:6]]
        assert top.count(want) >= 5, (query, top)
        assert f"Defect type: {want}." in res.results[0].caption


def test_interrupted_training_resumes_and_refuses_other_data(train_engine, defects: Path, tmp_path: Path) -> None:
    steps = {"n": 0}

    def stop_after_5() -> bool:
        steps["n"] += 1
        return steps["n"] > 5

    cfg = FitConfig(epochs=6, batch_size=8)
    with pytest.raises(Interrupted, match="--resume"):
        train_classifier(train_engine, defects, "resumable", config=cfg, should_stop=stop_after_5)
    rep = train_classifier(train_engine, defects, "resumable", config=cfg, resume=True)
    assert rep.resumed_from == 1 and len(rep.losses) == 6  # 3 steps an epoch: stopped in epoch 2
    with pytest.raises(Interrupted):
        steps["n"] = 0
        train_classifier(train_engine, defects, "other", config=cfg, should_stop=stop_after_5)
    fewer = write_defects(tmp_path / "fewer", per_class=3)
    with pytest.raises(InputError, match="other data or settings"):
        train_classifier(train_engine, fewer, "other", config=cfg, resume=True)


def test_cli_json_and_unusable_data(train_cli, trained, defects: Path, tmp_path: Path) -> None:
    res = train_cli("train", "list", "--json")
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)["trained"]
    assert [t["name"] for t in listed if t["kind"] == "classifier"][:1] == ["defect-type"]
    one = tmp_path / "one-class"
    write_defects(one, per_class=3, kinds=("crack",))
    res = train_cli("train", "classifier", one, "--name", "x", "--json")
    assert res.exit_code == 2 and "at least two classes" in res.output
    res = train_cli("train", "check", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"] is True
