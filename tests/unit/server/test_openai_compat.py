"""The OpenAI-compatible routes through the ASGI app, and remote image URLs (SSRF rules).

All network traffic in these tests goes to a server on 127.0.0.1 started here.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from oculi.server.openai_compat import ChatMessage, plan_chat
from tests.unit.server.conftest import bearer, data_url, png_bytes

IMG = png_bytes(80, 60)


def _chat(text: str | None, url: str | None = None, **extra):
    content: list = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if url is not None:
        content.append({"type": "image_url", "image_url": {"url": url}})
    return {"model": "oculi-builtin", "messages": [{"role": "user", "content": content}], **extra}


@pytest.mark.parametrize(
    "text,task,detailed",
    [
        (None, "caption", False),
        ("Describe this image.", "caption", False),
        ("describe the photo in detail", "caption", True),
        ("What's in this picture?", "caption", False),
        ("What do you see?", "caption", False),
        ("How many people are there?", "ask", False),
        ("Is there a dog?", "ask", False),
        ("What does the sign say?", "ask", False),
    ],
)
def test_plan_routes_questions_and_descriptions(text, task, detailed):
    msgs = [ChatMessage.model_validate(m) for m in _chat(text, data_url(IMG))["messages"]]
    got = plan_chat(msgs)
    assert got[0] == task and got[2] == detailed


def test_plan_uses_earlier_image_for_a_follow_up():
    msgs = [
        ChatMessage(role="system", content="You are helpful."),
        ChatMessage.model_validate(_chat("Describe it", data_url(IMG))["messages"][0]),
        ChatMessage(role="assistant", content="A dog."),
        ChatMessage(role="user", content="How many dogs?"),
    ]
    task, text, _, url = plan_chat(msgs)
    assert task == "ask" and text == "How many dogs?" and url.startswith("data:image/png")


def test_chat_completion_shape(make_client, keys):
    c = make_client()
    r = c.post("/v1/chat/completions", json=_chat("How many dogs are there?", data_url(IMG)), headers=bearer(keys["read"]))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["object"] == "chat.completion" and d["id"].startswith("chatcmpl-")
    assert d["choices"][0]["message"] == {"role": "assistant", "content": "1 — there is one dog.", "refusal": None}
    assert d["choices"][0]["finish_reason"] == "stop"
    assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"]
    assert d["oculi"]["task"] == "ask"
    r = c.post("/v1/chat/completions", json=_chat(None, data_url(IMG)), headers=bearer(keys["read"]))
    assert r.json()["choices"][0]["message"]["content"].startswith("A photo of a brown dog")


def test_chat_streams_sse_chunks(make_client, keys):
    c = make_client()
    with c.stream("POST", "/v1/chat/completions", json=_chat("Describe this image", data_url(IMG), stream=True),
                  headers=bearer(keys["read"])) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text.startswith("A photo of a brown dog")


def test_chat_errors(make_client, keys):
    c = make_client()
    h = bearer(keys["read"])
    r = c.post("/v1/chat/completions", json={"model": "oculi-builtin", "messages": [{"role": "user", "content": "hi"}]}, headers=h)
    assert r.status_code == 400 and "image" in r.json()["error"]["message"]
    r = c.post("/v1/chat/completions", json={**_chat("hi", data_url(IMG)), "model": "gpt-4o"}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = c.post("/v1/chat/completions", json={"model": "oculi-builtin", "messages": []}, headers=h)
    assert r.status_code == 400
    r = c.post("/v1/chat/completions", json=_chat("hi", "data:image/png;base64,!!!"), headers=h)
    assert r.status_code == 400
    r = c.post("/v1/chat/completions", json=_chat("hi", data_url(b"<?php system($_GET['c']); ?>")), headers=h)
    assert r.status_code == 415
    r = c.post("/v1/chat/completions", json={"model": "oculi-builtin", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, headers=h)
    assert r.status_code == 400


def test_embeddings_text_and_image(make_client, keys, fake_engine):
    c = make_client()
    h = bearer(keys["read"])
    r = c.post("/v1/embeddings", json={"model": "oculi-text-embed", "input": ["a red car", "a cat"]}, headers=h)
    assert r.status_code == 200
    d = r.json()
    assert d["object"] == "list" and len(d["data"]) == 2 and len(d["data"][0]["embedding"]) == 384
    want = fake_engine.embed_texts(["a red car"])[0]
    assert np.allclose(d["data"][0]["embedding"], want, atol=1e-6)
    r = c.post("/v1/embeddings", json={"model": "oculi-text-embed", "input": "a red car", "encoding_format": "base64"}, headers=h)
    v = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(v, want, atol=1e-6)
    r = c.post("/v1/embeddings", json={"model": "oculi-image-embed", "input": [data_url(IMG)]}, headers=h)
    assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 1024
    for bad in ({"model": "oculi-text-embed", "input": []}, {"model": "oculi-text-embed", "input": [[1, 2, 3]]},
                {"model": "oculi-text-embed", "input": "x", "dimensions": 3}, {"model": "oculi-image-embed", "input": "file:///etc/passwd"}):
        assert c.post("/v1/embeddings", json=bad, headers=h).status_code == 400, bad
    assert c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}, headers=h).status_code == 404


def test_models(make_client, keys):
    c = make_client()
    d = c.get("/v1/models", headers=bearer(keys["read"])).json()
    assert {m["id"] for m in d["data"]} == {"oculi-builtin", "oculi-text-embed", "oculi-image-embed"}
    assert c.get("/v1/models/oculi-builtin", headers=bearer(keys["read"])).json()["id"] == "oculi-builtin"
    assert c.get("/v1/models/nope", headers=bearer(keys["read"])).status_code == 404


# --- remote image URLs ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        _Handler.hits.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/img.png":
            self._send(200, IMG)
        elif self.path == "/big.png":
            self._send(200, IMG + b"\0" * 3_000_000)
        elif self.path == "/redirect-same":
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.end_headers()
        elif self.path == "/redirect-other":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/img.png")
            self.end_headers()
        elif self.path == "/slow.png":
            time.sleep(3)
            self._send(200, IMG)
        else:
            self._send(404, b"no")

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture()
def image_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    _Handler.hits = []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_remote_urls_are_off_by_default(make_client, keys, image_server):
    c = make_client()
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/img.png"), headers=bearer(keys["read"]))
    assert r.status_code == 400 and "disabled" in r.json()["error"]["message"]
    assert _Handler.hits == []  # nothing was fetched


@pytest.mark.parametrize(
    "url,status",
    [
        ("file:///etc/passwd", 400),
        ("gopher://127.0.0.1:70/", 400),
        ("ftp://127.0.0.1/x.png", 400),
        ("http://169.254.169.254/latest/meta-data/", 400),  # allow-listed, but link-local: refused
        ("http://[::ffff:169.254.169.254]/", 400),
        ("http://user:pw@169.254.169.254/", 400),
        ("http://metadata.google.internal/", 403),  # not in the allow-list
        ("http://10.0.0.1/x.png", 403),
    ],
)
def test_ssrf_attempts_are_refused(make_client, keys, url, status, image_server):
    c = make_client(remote_images=True, remote_allow_hosts=["169.254.169.254", "::ffff:169.254.169.254", "127.0.0.1"])
    r = c.post("/v1/chat/completions", json=_chat("describe", url), headers=bearer(keys["read"]))
    assert r.status_code == status, r.text
    assert _Handler.hits == []


def test_loopback_refused_unless_private_is_allowed(make_client, keys, image_server):
    c = make_client(remote_images=True, remote_allow_hosts=["127.0.0.1"])
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/img.png"), headers=bearer(keys["read"]))
    assert r.status_code == 400 and "non-public" in r.json()["error"]["message"]
    assert _Handler.hits == []


def test_allow_listed_fetch_with_limits(make_client, keys, image_server):
    c = make_client(remote_images=True, remote_allow_hosts=["127.0.0.1", "localhost"], remote_allow_private=True,
                    remote_max_bytes=1_000_000, remote_timeout_s=1.0)
    h = bearer(keys["read"])
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/img.png"), headers=h)
    assert r.status_code == 200, r.text
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/redirect-same"), headers=h)
    assert r.status_code == 200, r.text
    before = _Handler.hits.count("/img.png")
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/redirect-other"), headers=h)
    assert r.status_code == 400 and "another host" in r.json()["error"]["message"]
    assert _Handler.hits.count("/img.png") == before  # the redirect was not followed
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/big.png"), headers=h)
    assert r.status_code == 413
    t0 = time.monotonic()
    r = c.post("/v1/chat/completions", json=_chat("describe", image_server + "/slow.png"), headers=h)
    assert r.status_code == 504 and time.monotonic() - t0 < 2.5
