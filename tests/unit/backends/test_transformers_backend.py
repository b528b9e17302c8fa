"""The ``transformers`` backend on tiny random-weight models built from configs in the test and saved
to a folder: the same ``from_pretrained`` load and inference path a user's model folder takes.

A tiny CLIP serves image/text embeddings (search) and zero-shot classify; a tiny LLaVA serves
caption, ask, multi-turn chat with several images, stop strings, a token limit and streaming.
Random weights say nothing sensible, so the tests check the mechanics a real model relies on:
shapes, normalisation, determinism, that the images change the output, and the limits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.backends.base import ChatMessage, ChatOptions, ChatPart
from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions
from oculi.config import Settings
from oculi.core.errors import ModelConfigError

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "model")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("llava") / "model")


def _backend(path: Path, tmp_path: Path, **kw: object) -> TransformersBackend:
    opts = TransformersOptions(backend="transformers", path=str(path), **{"device": "cpu", **kw})
    return TransformersBackend("tiny", opts, Settings(home=tmp_path))


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    stripes = Image.fromarray(np.tile(np.array([[0], [255]], np.uint8).repeat(4, 0), (5, 48))[:, :, None].repeat(3, 2))
    return [Image.new("RGB", (48, 40), (220, 30, 30)), Image.new("RGB", (64, 64), (30, 40, 220)), noise, stripes]


def test_clip_folder_embeds_images_and_texts_in_one_normalised_space(tiny_clip: Path, tmp_path: Path) -> None:
    b = _backend(tiny_clip, tmp_path, batch_size=3)  # 4 images: two batches
    assert b.kind == "clip" and b.capabilities == {"embed_image", "embed_text", "classify"}
    assert b.model_id == "transformers:model"
    imgs = _images()
    v = b.embed_images(imgs)
    assert v.shape == (4, 16) and v.dtype == np.float32 and b.image_dim == b.text_dim == 16
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([b.embed_images([im]) for im in imgs])
    assert np.allclose(v, one_by_one, atol=1e-5)  # batching does not change a vector
    assert not np.allclose(v[0], v[1], atol=1e-3)  # different images, different vectors
    t = b.embed_texts(["a red cat", "a blue car", "a photo of a dog"])
    assert t.shape == (3, 16) and np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    sims = t @ v.T  # text→image search works: one space
    assert sims.shape == (3, 4) and np.all(np.abs(sims) <= 1.0 + 1e-5)
    assert b.health()["ok"] and "clip on cpu" in b.health()["detail"]


def test_clip_zero_shot_classify_is_the_softmax_of_its_scaled_similarities(tiny_clip: Path, tmp_path: Path) -> None:
    b = _backend(tiny_clip, tmp_path)
    img = _images()[0]
    scores = b.classify(img, ["cat", "dog", "car"])
    assert sorted(s.label for s in scores) == ["car", "cat", "dog"]
    assert abs(sum(s.score for s in scores) - 1.0) < 1e-5
    assert [s.score for s in scores] == sorted((s.score for s in scores), reverse=True)
    iv, tv = b.embed_images([img])[0], b.embed_texts([f"a photo of a {x}" for x in ("cat", "dog", "car")])
    logits = float(np.exp(b.model.logit_scale.item())) * (tv @ iv)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert scores[0].label == ["cat", "dog", "car"][int(np.argmax(p))]
    assert scores[0].score == pytest.approx(float(p.max()), abs=1e-4)


def test_vlm_folder_captions_answers_and_chats_about_several_images(tiny_llava: Path, tmp_path: Path) -> None:
    b = _backend(tiny_llava, tmp_path, max_new_tokens=6)
    assert b.kind == "vlm" and b.capabilities == {"describe", "answer", "chat"}
    red, blue, noise, _ = _images()
    cap = b.describe(red, None)
    assert isinstance(cap, str) and cap and cap == b.describe(red, None)  # greedy: deterministic
    assert b.describe(red, None, detailed=True)  # another prompt, still a reply
    a = b.answer(red, None, "what colour is this ?")
    assert a.question == "what colour is this ?" and a.answer and a.answerable
    assert 0.0 < a.confidence <= 1.0 and a.evidence == ()
    # a conversation: two images in the last turn, an earlier turn with one; the images matter
    def conv(second: Image.Image) -> list[ChatMessage]:
        return [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "what colour is this ?")]),
                ChatMessage("assistant", [ChatPart("text", "red")]),
                ChatMessage("user", [ChatPart("image", image=blue), ChatPart("image", image=second), ChatPart("text", "compare these")])]
    r1 = b.chat(conv(noise), ChatOptions(max_tokens=5))
    assert r1.completion_tokens is not None and 1 <= r1.completion_tokens <= 5
    assert r1.prompt_tokens and r1.prompt_tokens > 3 * 16  # three images' tokens are in the prompt
    assert r1.finish_reason in ("stop", "length")
    seqs = {b.chat(conv(im), ChatOptions(max_tokens=5)).text for im in (noise, red, blue)}
    logits = {tuple(np.round(_first_logits(b, conv(im)), 4)) for im in (noise, red)}
    assert len(logits) == 2, "the second image of the last message must reach the model"
    assert len(seqs) >= 1


def _first_logits(b: TransformersBackend, msgs: list[ChatMessage]) -> np.ndarray:
    import torch

    enc, _ = b._inputs(msgs, ChatOptions())
    with torch.inference_mode():
        return b.model(**enc).logits[0, -1, :8].float().numpy()


def test_vlm_max_tokens_stop_and_streaming(tiny_llava: Path, tmp_path: Path) -> None:
    b = _backend(tiny_llava, tmp_path, max_new_tokens=8)
    red = _images()[0]
    msgs = [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "describe this image")])]
    full = b.chat(msgs, ChatOptions(max_tokens=8))
    assert full.completion_tokens == 8 and full.finish_reason == "length"
    short = b.chat(msgs, ChatOptions(max_tokens=2))
    assert short.completion_tokens == 2 and full.text.startswith(short.text)
    streamed = "".join(b.chat_stream(msgs, ChatOptions(max_tokens=8)))
    assert streamed.strip() == full.text
    words = full.text.split()
    assert len(words) >= 2
    stop = words[1]
    cut = b.chat(msgs, ChatOptions(max_tokens=8, stop=[stop]))
    assert stop not in cut.text and full.text.startswith(cut.text) and cut.finish_reason == "stop"
    assert stop not in "".join(b.chat_stream(msgs, ChatOptions(max_tokens=8, stop=[stop])))


def test_wrong_family_missing_folder_and_missing_gpu_say_what_to_do(tiny_clip: Path, tiny_llava: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="is a clip model; this needs an image-text-to-text model"):
        _backend(tiny_clip, tmp_path).describe(_images()[0], None)
    with pytest.raises(ModelConfigError, match="is a vlm model; this needs a CLIP or SigLIP model"):
        _backend(tiny_llava, tmp_path).embed_texts(["a cat"])
    missing = _backend(tmp_path / "nope", tmp_path, kind="vlm")
    with pytest.raises(ModelConfigError, match="does not exist"):
        missing.load()
    assert missing.health() == {"ok": False, "detail": missing.health()["detail"]} and "does not exist" in missing.health()["detail"]
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelConfigError, match="torch sees no CUDA GPU"):
            _backend(tiny_clip, tmp_path, device="cuda").load()
    with pytest.raises(ValueError):
        TransformersOptions(backend="transformers", path=str(tiny_clip), device="gpu")
    with pytest.raises(ValueError):
        TransformersOptions(backend="transformers", path=str(tiny_clip), colour="red")  # unknown option: refused


def test_unload_frees_and_load_is_idempotent(tiny_clip: Path, tmp_path: Path) -> None:
    b = _backend(tiny_clip, tmp_path)
    b.load()
    m = b.model
    b.load()
    assert b.model is m
    v = b.embed_texts(["a cat"])
    b.unload()
    assert b.model is None
    assert np.allclose(b.embed_texts(["a cat"]), v, atol=1e-6)  # loads again on use


def test_engine_chat_uses_the_configured_chat_model(tiny_llava: Path, tmp_path: Path) -> None:
    from oculi.engine import Engine

    red = _images()[0]
    msgs = [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", text="what colour is this ?")])]
    plain = Engine(Settings(home=tmp_path, read_config_files=False))
    with pytest.raises(ModelConfigError, match=r"no chat model is configured.*\[tasks\] chat"):
        plain.chat(msgs)
    eng = Engine(Settings(home=tmp_path, read_config_files=False, tasks={"chat": "vlm"},
                          models={"vlm": {"backend": "transformers", "path": str(tiny_llava), "device": "cpu", "max_new_tokens": 5}}))
    got = eng.chat(msgs, ChatOptions(max_tokens=4))
    assert got.text == _backend(tiny_llava, tmp_path).chat(msgs, ChatOptions(max_tokens=4)).text and got.completion_tokens == 4
    with pytest.raises(ModelConfigError, match="'builtin' does not chat"):
        eng.chat(msgs, model="builtin")


def test_siglip_folder_embeds_with_padded_text_and_classifies_by_sigmoid(tmp_path: Path) -> None:
    import torch

    from tests.tiny_models import build_tiny_siglip

    b = _backend(build_tiny_siglip(tmp_path / "tiny-siglip"), tmp_path)
    assert b.kind == "siglip" and b.capabilities == {"embed_image", "embed_text", "classify"}
    t = b.embed_texts(["a cat", "a red cat against a brick wall"])  # padded to the same 16 tokens, as SigLIP was trained
    assert t.shape == (2, b.text_dim) and np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    img = _images()[0]
    scores = {s.label: s.score for s in b.classify(img, ["cat", "dog"])}
    iv, tv = b.embed_images([img])[0], b.embed_texts(["a photo of a cat", "a photo of a dog"])
    logits = float(b.model.logit_scale.detach().exp()) * (tv @ iv) + float(b.model.logit_bias.detach())
    want = torch.sigmoid(torch.tensor(logits)).numpy()  # each label on its own: the scores need not sum to 1
    assert scores["cat"] == pytest.approx(float(want[0]), abs=1e-4) and scores["dog"] == pytest.approx(float(want[1]), abs=1e-4)
