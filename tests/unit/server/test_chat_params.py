"""``/v1/chat/completions`` with the built-in model (test-double engine): every image of a message
answered, what it cannot use said in the reply, and each generation parameter honoured or refused
with an OpenAI-shaped error carrying ``param`` and ``code``. ``/v1/images/generations`` without a
generator. (A configured chat model getting the whole conversation is tested with a real model
in tests/unit/backends/test_openai_backend.py and test_server_chat_models.py.)"""

from __future__ import annotations

import json

import pytest

from tests.unit.server.conftest import bearer, data_url, png_bytes

A, B, C = png_bytes(80, 60), png_bytes(40, 30, (20, 200, 20)), png_bytes(64, 64, (20, 20, 200))


def _msg(text, *imgs, role="user"):
    content = ([{"type": "text", "text": text}] if text is not None else []) + [
        {"type": "image_url", "image_url": {"url": data_url(i)}} for i in imgs]
    return {"role": role, "content": content}


def _post(c, keys, messages, **extra):
    return c.post("/v1/chat/completions", json={"model": "oculi-builtin", "messages": messages, **extra}, headers=bearer(keys["read"]))


def test_every_image_of_the_message_is_answered(make_client, keys) -> None:
    c = make_client()
    r = _post(c, keys, [_msg("How many dogs are there?", A, B, C)])
    assert r.status_code == 200, r.text
    d = r.json()
    content = d["choices"][0]["message"]["content"]
    assert content.splitlines() == ["Image 1: 1 — there is one dog.", "Image 2: 1 — there is one dog.", "Image 3: 1 — there is one dog."]
    assert len(d["oculi"]["results"]) == 3 and d["usage"]["prompt_tokens"] == 5 + 3 * 85
    r = _post(c, keys, [_msg(None, A, B)])  # no text: a caption per image, from each image's own observation
    res = r.json()["oculi"]["results"]
    assert [(x["observation"]["image"]["width"], x["observation"]["image"]["height"]) for x in res] == [(80, 60), (40, 30)]


def test_what_the_builtin_model_does_not_use_is_said(make_client, keys) -> None:
    c = make_client()
    msgs = [{"role": "system", "content": "You are a pirate."}, _msg("Describe it", A),
            {"role": "assistant", "content": "A dog."}, _msg("How many dogs?", B)]
    d = _post(c, keys, msgs, temperature=0.7).json()
    content = d["choices"][0]["message"]["content"]
    assert content.startswith("1 — there is one dog.")
    assert "Not used: the system message; the earlier turns; temperature 0.7" in content
    assert d["oculi"]["not_used"] == ["the system message", "the earlier turns", "temperature 0.7 (the built-in model is deterministic)"]
    # a follow-up without an image uses the latest images, and the turn they came with is used
    d = _post(c, keys, [_msg("Describe it", A), {"role": "user", "content": "How many dogs?"}]).json()
    assert d["choices"][0]["message"]["content"] == "1 — there is one dog." and d["oculi"]["not_used"] == []


def test_max_tokens_stop_and_usage_in_stream(make_client, keys) -> None:
    c = make_client()
    d = _post(c, keys, [_msg("Describe this", A)], max_completion_tokens=3).json()
    assert d["choices"][0]["message"]["content"] == "A photo of" and d["choices"][0]["finish_reason"] == "length"
    assert d["usage"]["completion_tokens"] == 3
    d = _post(c, keys, [_msg("Describe this", A)], max_tokens=4).json()
    assert d["choices"][0]["message"]["content"] == "A photo of a"
    d = _post(c, keys, [_msg("Describe this", A)], stop=[" dog", "zzz"]).json()
    assert d["choices"][0]["message"]["content"] == "A photo of a brown" and d["choices"][0]["finish_reason"] == "stop"
    with c.stream("POST", "/v1/chat/completions", headers=bearer(keys["read"]),
                  json={"model": "oculi", "messages": [_msg("Describe this", A)], "stream": True,
                        "stream_options": {"include_usage": True}, "max_tokens": 5}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks[:-1]).strip() == "A photo of a brown"
    with c.stream("POST", "/v1/chat/completions", headers=bearer(keys["read"]),
                  json={"model": "oculi-builtin", "messages": [_msg("Describe this", A)], "stream": True}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert all("usage" not in json.loads(ln[6:]) for ln in lines[:-1])  # no usage chunk unless asked


def test_response_format_json(make_client, keys) -> None:
    c = make_client()
    d = _post(c, keys, [_msg("How many dogs?", A)], response_format={"type": "json_object"}).json()
    doc = json.loads(d["choices"][0]["message"]["content"])
    assert doc["answer"] == "1 — there is one dog." and doc["kind"] == "count"
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
              "required": ["answer", "confidence"]}
    d = _post(c, keys, [_msg("How many dogs?", A)], response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}).json()
    assert json.loads(d["choices"][0]["message"]["content"])["confidence"] == 0.9
    r = _post(c, keys, [_msg("How many dogs?", A)], response_format={"type": "json_schema", "json_schema": {
        "name": "n", "schema": {"type": "object", "required": ["count"]}}})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "json_validate_failed" and err["param"] == "response_format"
    assert "'count' is a required property" in err["message"]
    r = _post(c, keys, [_msg("How many dogs?", A)], response_format={"type": "json_object"}, max_tokens=2)
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


@pytest.mark.parametrize("extra,param,code", [
    ({"n": 2}, "n", "unsupported_value"),
    ({"temperature": 2.5}, "temperature", "invalid_value"),
    ({"top_p": 0.5}, "top_p", "unsupported_value"),
    ({"max_tokens": 0}, "max_tokens", "invalid_value"),
    ({"max_completion_tokens": -1}, "max_completion_tokens", "invalid_value"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
    ({"stop": [""]}, "stop", "invalid_value"),
    ({"response_format": {"type": "xml"}}, "response_format", "invalid_value"),
    ({"response_format": {"type": "json_schema"}}, "response_format", "invalid_value"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 12}}}}, "response_format", "invalid_value"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "unsupported_parameter"),
    ({"logprobs": True}, "logprobs", "unsupported_parameter"),
])
def test_unsupported_or_bad_parameters_are_refused_with_param_and_code(make_client, keys, extra, param, code) -> None:
    r = _post(make_client(), keys, [_msg("How many dogs?", A)], **extra)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == code and err["type"] == "invalid_request_error" and err["message"]


def test_images_generations_without_a_generator(make_client, keys) -> None:
    c = make_client()
    r = c.post("/v1/images/generations", json={"prompt": "a red bicycle"}, headers=bearer(keys["read"]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_generator" and r.json()["error"]["param"] == "model"
    r = c.post("/v1/images/generations", json={"prompt": "a red bicycle", "response_format": "url"}, headers=bearer(keys["read"]))
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = c.post("/v1/images/generations", json={"prompt": ""}, headers=bearer(keys["read"]))
    assert r.status_code == 400
