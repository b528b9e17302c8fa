"""oculi's OpenAI-compatible server with configured models (real uvicorn on loopback, driven by the
official ``openai`` client): a chat model gets the whole conversation with every image and its
reply streams through; response_format is checked against the model's reply; the configured
models are listed; ``/v1/images/generations`` returns seeded PNGs from a tiny diffusers pipeline."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from oculi.backends.base import ChatMessage, ChatOptions, ChatPart
from oculi.config import Settings

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def client(oculi_vlm_server):
    url, key, _ = oculi_vlm_server
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def _png_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


RED, BLUE = Image.new("RGB", (40, 32), (220, 30, 30)), Image.new("RGB", (32, 48), (30, 40, 220))


def test_models_list_names_the_configured_models(client) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"oculi-builtin", "oculi", "vlm", "oculi-text-embed", "oculi-image-embed"} <= ids
    assert "clip" not in ids  # an embedder does not chat


def test_chat_passes_the_whole_conversation_and_streams(client, oculi_vlm_server, tmp_path) -> None:
    from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions

    local = TransformersBackend("l", TransformersOptions(backend="transformers", path=str(oculi_vlm_server[2] / "tiny-llava"),
                                                         device="cpu", max_new_tokens=12), Settings(home=tmp_path, read_config_files=False))
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png_url(RED)}}, {"type": "text", "text": "what colour is this ?"}]},
        {"role": "assistant", "content": "red"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png_url(BLUE)}},
                                     {"type": "image_url", "image_url": {"url": _png_url(RED)}}, {"type": "text", "text": "compare these"}]},
    ]
    want = local.chat([ChatMessage("user", [ChatPart("image", image=RED), ChatPart("text", text="what colour is this ?")]),
                       ChatMessage("assistant", [ChatPart("text", text="red")]),
                       ChatMessage("user", [ChatPart("image", image=BLUE), ChatPart("image", image=RED), ChatPart("text", text="compare these")])],
                      ChatOptions(max_tokens=5))
    for model in ("oculi", "vlm"):
        r = client.chat.completions.create(model=model, messages=messages, max_tokens=5)
        assert r.choices[0].message.content == want.text and r.usage.completion_tokens == want.completion_tokens
        assert r.usage.prompt_tokens == want.prompt_tokens
    stream = client.chat.completions.create(model="vlm", messages=messages, max_tokens=5, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip() == want.text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    r = client.chat.completions.create(model="vlm", messages=messages, max_tokens=5, stop=[want.text.split()[1]])
    assert want.text.split()[1] not in r.choices[0].message.content


def test_a_reply_that_is_not_the_json_asked_for_is_a_clear_400(client) -> None:
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png_url(RED)}}, {"type": "text", "text": "describe"}]}]
    with pytest.raises(openai.BadRequestError) as ei:  # the tiny model's vocabulary has no "{": never JSON
        client.chat.completions.create(model="vlm", messages=msgs, max_tokens=4, response_format={"type": "json_object"})
    err = ei.value.body
    assert err["code"] == "json_validate_failed" and err["param"] == "response_format" and "not valid JSON" in err["message"]


def test_images_generations_returns_seeded_pngs(client) -> None:
    pytest.importorskip("diffusers")
    r = client.images.generate(prompt="a red bicycle against a brick wall", n=2, size="32x24",
                               extra_body={"seed": 11, "steps": 2})
    assert len(r.data) == 2
    ims = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in r.data]
    assert all(im.format == "PNG" and im.size == (32, 24) for im in ims)
    again = client.images.generate(prompt="a red bicycle against a brick wall", size="32x24", extra_body={"seed": 11, "steps": 2})
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(again.data[0].b64_json))))
    assert np.array_equal(first, np.asarray(ims[0])) and not np.array_equal(first, np.asarray(ims[1]))
    with pytest.raises(openai.BadRequestError) as ei:
        client.images.generate(prompt="a cat", size="30x30", extra_body={"steps": 2})
    assert "multiple of 8" in ei.value.body["message"]
    with pytest.raises(openai.BadRequestError) as ei:
        client.images.generate(prompt="a cat", model="vlm")
    assert ei.value.body["param"] == "model" and "does not generate images" in ei.value.body["message"]
