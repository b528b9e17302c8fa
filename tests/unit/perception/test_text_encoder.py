"""all-MiniLM-L6-v2 sentence embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from oculi.config import Settings
from oculi.core.errors import ModelAssetError
from oculi.perception.text_encoder import MiniLMTextEncoder, similarity


def test_similarity_shapes():
    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    b = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]], dtype=np.float32)
    s = similarity(a, b)
    assert s.shape == (2, 3) and s.dtype == np.float32
    assert s[0, 0] == pytest.approx(1.0) and s[1, 2] == pytest.approx(-1.0) and s[0, 1] == pytest.approx(2**-0.5)
    assert similarity(a[0], b).shape == (3,)
    assert similarity(a[0], b[0]).shape == ()


@pytest.fixture(scope="module")
def enc(settings: Settings) -> MiniLMTextEncoder:
    e = MiniLMTextEncoder(settings)
    try:
        e.load()
    except ModelAssetError as err:
        pytest.skip(f"text-encoder asset missing: {err}")
    return e


@pytest.mark.slow
def test_cat_is_closer_to_kitten_than_to_truck(enc: MiniLMTextEncoder):
    e = enc.embed_texts(["a photo of a cat", "a kitten", "a truck"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    s = similarity(e[0], e[1:])
    assert s[0] > s[1] + 0.2


@pytest.mark.slow
def test_order_batching_and_edge_cases(enc: MiniLMTextEncoder):
    texts = ["How many people are in the picture?", "", "red car", "What colour is the bus? " * 80]
    batch = enc.embed_texts(texts)
    single = np.stack([enc.embed_texts([t])[0] for t in texts])
    assert np.allclose(batch, single, atol=1e-5)  # padding and sorting do not change results
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert enc.embed_texts([]).shape == (0, 384)
    with pytest.raises(TypeError):
        enc.embed_texts("a string")  # type: ignore[arg-type]


@pytest.mark.slow
def test_numpy_forward_matches_transformers(enc: MiniLMTextEncoder, settings: Settings):
    pytest.importorskip("transformers")
    ref = MiniLMTextEncoder(settings, runtime="transformers")
    texts = ["a photo of a cat", "Is there a dog on the sofa?", "QC PASSED", "Ünïcödé and émojis 🚲 in text"]
    assert np.allclose(enc.embed_texts(texts), ref.embed_texts(texts), atol=1e-4)
