"""EfficientNet-Lite0 classifier and image embedder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import ModelAssetError
from oculi.perception.classifier import EfficientNetClassifier, imagenet_lemmas, imagenet_names, preprocess

CATS = {"Egyptian cat", "tabby", "tiger cat"}


def _photo(name: str) -> Image.Image:
    data = pytest.importorskip("skimage.data")
    arr = getattr(data, name)()
    if isinstance(arr, tuple):
        arr = arr[0]
    return Image.fromarray(arr).convert("RGB")


def test_imagenet_names_and_lemmas():
    lemmas = imagenet_lemmas()
    names = imagenet_names()
    assert len(lemmas) == len(names) == 1000
    assert names[285] == "Egyptian cat" and names[967] == "espresso" and names[812] == "space shuttle"
    assert lemmas[281][0] == "tabby" and "tabby cat" in lemmas[281]
    assert all(lem and all(s == s.strip() and s for s in lem) for lem in lemmas)


def test_preprocess_shape_and_range():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8))
    x = preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    grey = preprocess(Image.new("L", (50, 500), 128))  # other modes and extreme aspect ratios
    assert grey.shape == (3, 224, 224)
    assert np.allclose(grey, 128 / 127.5 - 1, atol=1e-5)


def test_runtime_argument_is_checked():
    with pytest.raises(ValueError):
        EfficientNetClassifier(Settings(), runtime="tpu")


@pytest.fixture(scope="module")
def clf(settings: Settings) -> EfficientNetClassifier:
    c = EfficientNetClassifier(settings)
    try:
        c.load()
    except ModelAssetError as e:
        pytest.skip(f"classifier asset missing: {e}")
    return c


@pytest.mark.slow
def test_coffee_chelsea_rocket(clf: EfficientNetClassifier):
    labels = clf.classify([_photo("coffee"), _photo("chelsea"), _photo("rocket")], top_k=5)
    coffee, chelsea, rocket = ([lab.name for lab in ls] for ls in labels)
    assert {"espresso", "cup"} & set(coffee[:3]), coffee
    assert chelsea[0] in CATS, chelsea
    assert {"space shuttle", "missile", "projectile"} & set(rocket), rocket
    for ls in labels:
        scores = [lab.score for lab in ls]
        assert len(ls) == 5 and scores == sorted(scores, reverse=True)
        assert 0 < sum(scores) <= 1.0 + 1e-5
    assert labels[0][0].name == "espresso" and labels[0][0].score > 0.8


@pytest.mark.slow
def test_embedding_shape_norm_and_similarity(clf: EfficientNetClassifier):
    coffee, chelsea = _photo("coffee"), _photo("chelsea")
    small = coffee.resize((coffee.width // 2, coffee.height // 2), Image.Resampling.BILINEAR)
    emb = clf.embed_images([coffee, small, chelsea])
    assert emb.shape == (3, 1280) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    same, other = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert same > 0.9 and same > other


@pytest.mark.slow
def test_batch_equals_single(clf: EfficientNetClassifier):
    imgs = [_photo("coffee"), _photo("astronaut"), _photo("chelsea")]
    labels_b, emb_b = clf.classify_and_embed(imgs, top_k=3)
    for i, img in enumerate(imgs):
        labels_1, emb_1 = clf.classify_and_embed([img], top_k=3)
        assert np.allclose(emb_1[0], emb_b[i], atol=1e-4)
        assert [lab.name for lab in labels_1[0]] == [lab.name for lab in labels_b[i]]
    assert clf.classify_and_embed([], top_k=3)[1].shape == (0, 1280)


@pytest.mark.slow
def test_onnx_and_torch_agree(clf: EfficientNetClassifier, settings: Settings):
    if clf.runtime != "onnx":
        pytest.skip("onnxruntime path not in use (the ONNX export needs the `onnx` package)")
    torch_clf = EfficientNetClassifier(settings, runtime="torch")
    img = _photo("rocket")
    l1, e1 = clf.classify_and_embed([img])
    l2, e2 = torch_clf.classify_and_embed([img])
    assert np.allclose(e1, e2, atol=1e-4)
    assert [lab.name for lab in l1[0]] == [lab.name for lab in l2[0]]
