"""The ``transformers`` backend on the VLM families users bring, each a tiny random-weight model built
from its config in the test and saved as its hub folder is laid out (``tests/tiny_models.py``):
LLaVA, Qwen2-VL, Qwen2.5-VL, Idefics3 (SmolVLM v1), SmolVLM (v2), PaliGemma and BLIP.

Each goes through ``describe``, ``answer``, multi-turn ``chat`` and streaming and must produce text;
the images must reach the model (a changed image changes the logits). Random weights say nothing
sensible, so the words are not checked; the prompt each family is given is (chat template, image
tokens, PaliGemma's and BLIP's task prefixes), and so are the limits (pixels, images per prompt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.backends.base import ChatMessage, ChatOptions, ChatPart
from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions
from oculi.config import Settings
from oculi.core.errors import InputError

pytest.importorskip("transformers")

TEMPLATED = ["llava", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm"]
TEMPLATE_FREE = ["paligemma", "blip"]
# what each family's processor writes into the prompt for one image (the image token the model fills)
IMAGE_TOKEN = {"llava": "<image>", "qwen2_vl": "<|image_pad|>", "qwen2_5_vl": "<|image_pad|>", "idefics3": "<image>",
               "smolvlm": "<image>", "paligemma": "<image>"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


def _folder(folders: dict[str, Path], family: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if family not in folders:
        from tests.tiny_models import VLM_BUILDERS

        if family == "smolvlm":
            pytest.importorskip("num2words")  # SmolVLM's processor needs it
        folders[family] = VLM_BUILDERS[family](tmp_path_factory.mktemp(family) / "model")
    return folders[family]


def _backend(path: Path, home: Path, **kw: object) -> TransformersBackend:
    opts = TransformersOptions(backend="transformers", path=str(path), **{"device": "cpu", "max_new_tokens": 6, **kw})
    return TransformersBackend("tiny", opts, Settings(home=home, read_config_files=False))


def _images() -> tuple[Image.Image, Image.Image, Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    return Image.new("RGB", (48, 40), (220, 30, 30)), Image.new("RGB", (64, 64), (30, 40, 220)), noise


def _first_logits(b: TransformersBackend, msgs: list[ChatMessage]) -> np.ndarray:
    import torch

    enc, _ = b._inputs(msgs, ChatOptions())
    with torch.inference_mode():
        return b.model(**enc).logits[0, -1, :16].float().numpy()


def _prompt(b: TransformersBackend, msgs: list[ChatMessage]) -> tuple[str, int]:
    enc, _ = b._inputs(msgs, ChatOptions())
    ids = enc["input_ids"][0]
    return b.processor.tokenizer.decode(ids), int(ids.shape[0])


@pytest.mark.parametrize("family", TEMPLATED + TEMPLATE_FREE)
def test_family_describes_answers_chats_and_streams_text(family: str, folders: dict[str, Path],
                                                        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    b = _backend(_folder(folders, family, tmp_path_factory), tmp_path)
    assert b.kind == "vlm" and b.capabilities == {"describe", "answer", "chat"}
    red, blue, noise = _images()
    cap = b.describe(red)
    assert isinstance(cap, str) and cap.strip() and cap == b.describe(red)  # words, and greedy: deterministic
    assert b.describe(red, detailed=True).strip()
    a = b.answer(red, None, "what colour is this ?")
    assert a.answer.strip() and a.answerable and 0.0 < a.confidence <= 1.0 and a.question == "what colour is this ?"
    if family in TEMPLATED:  # a conversation: an earlier turn with an image, two images in the last turn
        def conv(second: Image.Image) -> list[ChatMessage]:
            return [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "what colour is this ?")]),
                    ChatMessage("assistant", [ChatPart("text", "red")]),
                    ChatMessage("user", [ChatPart("image", image=blue), ChatPart("image", image=second),
                                         ChatPart("text", "compare these")])]
        prompt, _ = _prompt(b, conv(noise))
        assert "compare these" in prompt and "red" in prompt  # the whole conversation, through the chat template
    else:  # no chat template: the model holds no conversation, it gets the last user turn
        def conv(second: Image.Image) -> list[ChatMessage]:
            return [ChatMessage("user", [ChatPart("text", "what colour is this ?")]),
                    ChatMessage("assistant", [ChatPart("text", "red")]),
                    ChatMessage("user", [ChatPart("image", image=second), ChatPart("text", "compare these")])]
        prompt, _ = _prompt(b, conv(noise))
        assert "compare these" in prompt and "colour" not in prompt
    r = b.chat(conv(noise), ChatOptions(max_tokens=4))
    assert r.text.strip() and r.completion_tokens is not None and 1 <= r.completion_tokens <= 4
    assert r.finish_reason in ("stop", "length") and r.prompt_tokens and r.prompt_tokens >= 3  # BLIP counts no image tokens
    # the (last) image reaches the model: another image, other logits
    assert not np.allclose(_first_logits(b, conv(noise)), _first_logits(b, conv(red)), atol=1e-4)
    msgs = [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "describe this image")])]
    full = b.chat(msgs, ChatOptions(max_tokens=5))
    assert "".join(b.chat_stream(msgs, ChatOptions(max_tokens=5))).strip() == full.text and full.text


@pytest.mark.parametrize("family", sorted(IMAGE_TOKEN))
def test_each_image_becomes_the_familys_image_tokens(family: str, folders: dict[str, Path],
                                                      tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    b = _backend(_folder(folders, family, tmp_path_factory), tmp_path)
    red, blue, _ = _images()
    tok = IMAGE_TOKEN[family]
    one, _ = _prompt(b, [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "describe")])])
    two, _ = _prompt(b, [ChatMessage("user", [ChatPart("image", image=red), ChatPart("image", image=blue),
                                              ChatPart("text", "describe")])])
    assert one.count(tok) > 0 and two.count(tok) > one.count(tok)  # the processor widened each image to its tokens


def test_paligemma_and_blip_get_the_task_prefixes_they_were_trained_on(folders: dict[str, Path],
                                                                      tmp_path_factory: pytest.TempPathFactory,
                                                                      tmp_path: Path) -> None:
    red = _images()[0]
    pali = _backend(_folder(folders, "paligemma", tmp_path_factory), tmp_path)
    blip = _backend(_folder(folders, "blip", tmp_path_factory), tmp_path)
    assert pali._task_prompt("caption") == "caption en" and pali._task_prompt("detailed") == "describe en"
    q = "what colour is this ?"
    prompt, _ = _prompt(pali, [ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "answer en " + q)])])
    assert prompt.count("<image>") == 16 and prompt.split("<image>")[-1].strip() == "<s> answer en " + q  # image tokens, bos, prefix
    # answer() sends exactly that prompt: the same first logits as the hand-made one
    import torch

    enc, _ = pali._inputs([ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", "answer en " + q)])], ChatOptions())
    with torch.inference_mode():
        want = pali.model.generate(**enc, max_new_tokens=3, do_sample=False)[0, enc["input_ids"].shape[1]:]
    got = pali.answer(red, None, q).answer
    assert got.startswith(pali.processor.tokenizer.decode(want, skip_special_tokens=True).strip())
    assert blip._task_prompt("caption") == "a picture of"
    assert "question : " + q + " answer :" in _prompt(blip, [ChatMessage("user", [
        ChatPart("image", image=red), ChatPart("text", "question: " + q + " answer:")])])[0]
    with pytest.raises(InputError, match="takes exactly one image per request"):
        blip.chat([ChatMessage("user", [ChatPart("image", image=red), ChatPart("image", image=red), ChatPart("text", "compare")])])
    with pytest.raises(InputError, match="takes exactly one image"):
        blip.chat([ChatMessage("user", [ChatPart("text", "hello")])])


def test_qwen2_vl_large_images_are_held_to_max_image_pixels(folders: dict[str, Path],
                                                            tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Qwen2-VL takes any size: one token per 8x8 pixels here (28x28 in the real model). The folder's
    own image processor allows 64x64 pixels; ``max_image_pixels`` holds a photo below that."""
    folder = _folder(folders, "qwen2_vl", tmp_path_factory)
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (700, 900, 3), dtype=np.uint8))
    msgs = [ChatMessage("user", [ChatPart("image", image=photo), ChatPart("text", "describe")])]
    wide, held = _backend(folder, tmp_path), _backend(folder, tmp_path, max_image_pixels=32 * 32)
    p_wide, n_wide = _prompt(wide, msgs)
    p_held, n_held = _prompt(held, msgs)
    assert 32 * 32 // 64 < p_wide.count("<|image_pad|>") <= 64 * 64 // 64  # the folder's own cap: 64x64 px, 8x8 px a token
    assert p_held.count("<|image_pad|>") <= 32 * 32 // 64 and n_held < n_wide
    assert held.chat(msgs, ChatOptions(max_tokens=3)).text.strip()
    with pytest.raises(ValueError):
        TransformersOptions(backend="transformers", path=str(folder), max_image_pixels=10)


def test_a_video_capable_processor_loads_for_images_without_torchvision(folders: dict[str, Path],
                                                                        tmp_path_factory: pytest.TempPathFactory,
                                                                        tmp_path: Path) -> None:
    """Qwen2-VL's processor names a video processor, which needs torchvision; where that is not
    installed the backend builds the same processor for images (and says nothing is missing for them)."""
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed: the ordinary AutoProcessor path is taken")
    except ImportError:
        pass
    from transformers import AutoProcessor

    folder = _folder(folders, "qwen2_vl", tmp_path_factory)
    with pytest.raises(ImportError, match="(?i)torchvision"):
        AutoProcessor.from_pretrained(folder)
    b = _backend(folder, tmp_path)
    b.load()
    assert type(b.processor).__name__ == "Qwen2VLProcessor" and b.processor.chat_template and b.health()["ok"]
