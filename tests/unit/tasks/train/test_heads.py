"""Trained heads at inference: NumPy matches torch, and their verdicts reach every task's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oculi.core.types import Attribute, ImageInfo, Label, Observation
from oculi.language.answer import answer
from oculi.language.describe import describe
from oculi.perception.heads import MLP as NumpyMLP
from oculi.perception.heads import HeadSet
from oculi.store.trained import TrainedStore
from oculi.tasks.index.document import observation_document


def _save_head(store: TrainedStore, name: str, classes: list[str], dim: int = 8, seed: int = 0) -> np.ndarray:
    import torch
    from safetensors.numpy import save

    from oculi.tasks.train.models import MLP

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, dim)).astype(np.float32)
    torch.manual_seed(seed)
    m = MLP(x.mean(0), x.std(0), len(classes), hidden=(16,)).eval()
    store.save(name, "classifier", {"weights.safetensors": save(m.tensors())},
               {"classes": classes, "title": name.replace("-", " "), "feature_space": {"model": "builtin/efficientnet-lite0", "dim": dim}})
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(NumpyMLP(m.tensors())(x), want, rtol=1e-4, atol=1e-5)
    return x


def test_heads_add_their_verdict_to_observations(tmp_path: Path) -> None:
    store = TrainedStore(tmp_path)
    x = _save_head(store, "defect-type", ["crack", "ok", "scratch"])
    heads = HeadSet(store)
    obs = [Observation(ImageInfo(8, 8), embedding=v, models={"classifier": "efficientnet-lite0"}) for v in x[:4]]
    out = heads.apply(obs)
    assert all(len(o.attributes) == 1 and o.attributes[0].head == "defect-type" for o in out)
    assert {o.attributes[0].value for o in out} <= {"crack", "ok", "scratch"}
    assert out[0].models["head:defect-type"] == "v1"
    probs = heads.get("defect-type").predict(x[:4])
    assert [o.attributes[0].value for o in out] == [["crack", "ok", "scratch"][j] for j in probs.argmax(1)]
    # applying twice replaces, never duplicates; a retrained head is picked up at once
    assert len(heads.apply(out)[0].attributes) == 1
    _save_head(store, "defect-type", ["crack", "dent"], seed=1)
    assert heads.apply(obs)[0].models["head:defect-type"] == "v2"
    # a head whose features are not at hand is left out, never guessed
    other = [Observation(ImageInfo(8, 8), embedding=v, models={"classifier": "other-net"}) for v in x[:2]]
    assert heads.apply(other)[0].attributes == ()
    # classify: a head covering the labels scores them, renormalised
    h = heads.covering(["CRACK", "dent"])
    assert h is not None and heads.covering(["crack", "rust"]) is None
    scores = h.scores(x[0], ["dent", "crack"])
    assert abs(sum(p for _, p in scores) - 1) < 1e-6 and {c for c, _ in scores} == {"dent", "crack"}


def test_attribute_words_in_caption_answer_and_search_document() -> None:
    att = Attribute("defect-type", "defect type", "crack", 0.93)
    obs = Observation(ImageInfo(64, 64), labels=(Label("chain mail", 0.1),), attributes=(att,))
    assert "Defect type: crack." in describe(obs)
    assert "Trained head 'defect-type': crack (93%)." in describe(obs, detailed=True)
    a = answer(obs, "What defect type is this?")
    assert a.answerable and a.answer.startswith("crack") and a.confidence == pytest.approx(0.93)
    assert a.evidence[0].kind == "attribute" and a.evidence[0].score == pytest.approx(0.93)
    yes = answer(obs, "Is this a crack?")
    assert yes.answer.startswith("Yes") and yes.evidence[0].kind == "attribute"
    assert answer(obs, "How many people are there?").evidence == () or "defect" not in answer(obs, "How many people are there?").answer
    doc = observation_document(obs)
    assert "defect type: crack" in doc.doc and "defect type: crack" in doc.summary
    back = Observation.from_dict(obs.to_dict())
    assert back.attributes == (att,)
    assert "attributes" not in Observation(ImageInfo(4, 4)).to_dict()  # absent when no head ran
