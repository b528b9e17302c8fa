"""One conformance suite over every backend type: oculi's built-in types, installed plugins,
and the example plugin.

Each type supplies a factory fixture (see ``conftest.py``); the suite checks what the engine
relies on: typed options that refuse unknown keys, declared capabilities that are real ones,
the protocol of every declared capability, a thread-safe idempotent ``load`` with ``unload``,
a health check, a stable ``model_id``, and that each declared capability runs on real images
and returns the documented types and shapes.
"""

from __future__ import annotations

import threading
from importlib import metadata

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from oculi.backends.base import (
    CAPABILITIES,
    PROTOCOLS,
    Backend,
    BackendOptions,
    ChatMessage,
    ChatOptions,
    ChatPart,
    ChatResult,
)
from oculi.backends.registry import _BUILTIN_TYPES, ENTRY_POINT_GROUP, get_backend_type
from oculi.core.errors import ModelAssetError, ModelConfigError
from oculi.core.types import Answer, ClassScore, DetectedObject, ImageInfo, Observation, TextLine
from tests.plugin_dist import example_entry_points

EXAMPLE_TYPES = set(example_entry_points()[ENTRY_POINT_GROUP])
TYPES = sorted({*_BUILTIN_TYPES, *(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)), *EXAMPLE_TYPES})


@pytest.fixture(params=TYPES)
def backend_type(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def make_backend(backend_type: str, request: pytest.FixtureRequest):
    """The type's factory; a type that is not importable here is skipped, one without a
    factory fails."""
    if backend_type not in EXAMPLE_TYPES:
        try:
            get_backend_type(backend_type)
        except ModelConfigError as e:
            pytest.skip(f"backend type {backend_type!r} is not available here: {e}")
    fixture = f"backend_factory_{backend_type.replace('-', '_')}"
    try:
        return request.getfixturevalue(fixture)
    except pytest.FixtureLookupError:
        pytest.fail(f"backend type {backend_type!r} has no conformance factory: add a {fixture} fixture "
                    "(tests/unit/backends/conftest.py)")


@pytest.fixture()
def backend(make_backend) -> Backend:
    b = make_backend()
    try:
        b.load()
    except ModelAssetError as e:
        pytest.skip(f"model assets missing: {e}")
    yield b
    b.close()


def test_declaration(backend: Backend, backend_type: str) -> None:
    cls = type(backend)
    assert isinstance(backend, Backend)
    assert backend_type in (cls.type_name, backend.type_name) or backend_type in EXAMPLE_TYPES
    assert issubclass(cls.Options, BackendOptions) and isinstance(backend.options, cls.Options)
    with pytest.raises(ValidationError):  # a typo in a [models.NAME] table is an error, not a default
        cls.Options.model_validate({"backend": backend_type, "no_such_option_xyz": 1})
    caps = {str(c) for c in backend.capabilities}
    assert caps and caps <= CAPABILITIES, caps - CAPABILITIES
    assert {str(c) for c in cls.capabilities} >= caps  # an instance may narrow, never widen
    for cap in CAPABILITIES:
        assert backend.supports(cap) is (cap in caps)
    for cap in caps:
        assert isinstance(backend, PROTOCOLS[cap]), f"{backend_type} declares {cap} but lacks {PROTOCOLS[cap].__name__}"
    assert isinstance(backend.model_id, str) and backend.model_id and backend.model_id == backend.model_id


def test_lifecycle(make_backend) -> None:
    b = make_backend()
    calls: list[int] = []
    inner = b._load

    def counting() -> None:
        calls.append(1)
        inner()

    b._load = counting  # type: ignore[method-assign]
    try:
        threads = [threading.Thread(target=b.load) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except ModelAssetError as e:
        pytest.skip(f"model assets missing: {e}")
    assert b.loaded and len(calls) == 1  # four concurrent loads, one _load
    b.load()
    assert len(calls) == 1
    b.unload()
    assert not b.loaded
    b.load()  # loads again after unload
    assert b.loaded and len(calls) == 2
    h = b.health()
    assert h["ok"] is True and isinstance(h["detail"], str), h
    b.close()


def _unit_norm(a: np.ndarray, n: int, dim: int) -> None:
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (n, dim), (a.dtype, a.shape)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-3)


def test_declared_capabilities_run(backend: Backend, conformance_images: list) -> None:
    img, img2 = conformance_images
    caps = {str(c) for c in backend.capabilities}
    info = ImageInfo(img.width, img.height)
    if "observe" in caps:
        obs = backend.observe(img, info)
        assert isinstance(obs, Observation) and obs.image == info
    if "describe" in caps:
        text = backend.describe(img, None)
        assert isinstance(text, str) and text.strip()
    if "answer" in caps:
        ans = backend.answer(img, None, "What colour is it?")
        assert isinstance(ans, Answer) and ans.question == "What colour is it?" and ans.answer.strip()
        assert 0.0 <= ans.confidence <= 1.0
    if "chat" in caps:
        msgs = [ChatMessage("user", [ChatPart("image", image=img), ChatPart("text", text="Describe the image.")])]
        res = backend.chat(msgs, ChatOptions(max_tokens=16))
        assert isinstance(res, ChatResult) and isinstance(res.text, str)
        if hasattr(backend, "chat_stream"):
            assert isinstance("".join(backend.chat_stream(msgs, ChatOptions(max_tokens=16))), str)
    if "detect" in caps:
        assert all(isinstance(o, DetectedObject) for o in backend.detect(img))
    if "detect_frames" in caps:
        frames = backend.detect_frames([img, img2], min_score=0.2)
        assert len(frames) == 2 and all(isinstance(o, DetectedObject) for f in frames for o in f)
    if "read" in caps:
        assert all(isinstance(t, TextLine) for t in backend.read(img))
    if "classify" in caps:
        scores = backend.classify(img, ["a person", "a cup of coffee"])
        assert scores and all(isinstance(s, ClassScore) and 0.0 <= s.score <= 1.0 for s in scores)
    if "embed_image" in caps:
        a = backend.embed_images([img, img2])
        _unit_norm(a, 2, backend.image_dim)
        np.testing.assert_allclose(backend.embed_images([img])[0], a[0], atol=1e-3)  # deterministic
    if "embed_text" in caps:
        _unit_norm(backend.embed_texts(["a red car", "a cup of coffee"]), 2, backend.text_dim)
    if "generate_image" in caps:
        out = backend.generate_image("a red square", steps=2, seed=0, width=64, height=64)
        assert out and all(isinstance(im, Image.Image) for im in out)
    if "patch_features" in caps:
        f = backend.patch_features([img, img2])
        assert isinstance(f, np.ndarray) and f.ndim == 4 and f.shape[0] == 2 and f.dtype == np.float32
