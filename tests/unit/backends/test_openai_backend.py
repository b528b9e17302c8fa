"""The ``openai`` backend against real HTTP servers on loopback.

1. oculi's own ``serve`` app (uvicorn in a thread) whose chat model is a tiny random-weight LLaVA
   folder (``transformers`` backend) and embedder a tiny CLIP: caption, ask, a multi-turn chat
   with several images, streaming and embeddings go through both oculi's client and its
   OpenAI-compatible server. Greedy decoding is deterministic, so what comes back over HTTP must
   equal what the same model folder says locally to the same conversation — which shows the
   whole conversation and every image reached the model.
2. A small ``http.server`` that fails on purpose: retries with backoff on 503, no retry on 400,
   a timeout, the concurrency limit, and a server that is down — each one clear line.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.backends.base import ChatMessage, ChatOptions, ChatPart
from oculi.backends.openai_backend import OpenAIBackend, OpenAIOptions
from oculi.config import Settings
from oculi.core.errors import BackendError, ModelConfigError
from tests.serverutil import free_port


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, read_config_files=False)


@pytest.fixture()
def remote(oculi_vlm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpenAIBackend:
    url, key, _ = oculi_vlm_server
    monkeypatch.setenv("TEST_OCULI_KEY", key)
    return OpenAIBackend("remote", OpenAIOptions(backend="openai", base_url=url + "/v1", model="vlm", api_key_env="TEST_OCULI_KEY",
                                                 max_tokens=6, embed_model="oculi-text-embed",
                                                 image_embed_model="oculi-image-embed"), _settings(tmp_path))


@pytest.fixture()
def local(oculi_vlm_server, tmp_path: Path):
    """The server's chat model folder, loaded here: what the server must reproduce."""
    from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions

    folder = oculi_vlm_server[2] / "tiny-llava"
    return TransformersBackend("local", TransformersOptions(backend="transformers", path=str(folder), device="cpu",
                                                            max_new_tokens=12), _settings(tmp_path))


def _imgs() -> tuple[Image.Image, Image.Image, Image.Image]:
    rng = np.random.default_rng(1)
    return (Image.new("RGB", (40, 32), (220, 30, 30)), Image.new("RGB", (32, 48), (30, 40, 220)),
            Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)))


def _conversation(third: Image.Image) -> list[ChatMessage]:
    red, blue, _ = _imgs()
    return [ChatMessage("system", [ChatPart("text", text="reply short")]),
            ChatMessage("user", [ChatPart("image", image=red), ChatPart("text", text="what colour is this ?")]),
            ChatMessage("assistant", [ChatPart("text", text="red")]),
            ChatMessage("user", [ChatPart("image", image=blue), ChatPart("image", image=third), ChatPart("text", text="compare these")])]


def test_multi_turn_chat_with_images_reaches_the_model_whole(remote: OpenAIBackend, local) -> None:
    _, _, noise = _imgs()
    red = _imgs()[0]
    opts = ChatOptions(max_tokens=6)
    got = remote.chat(_conversation(noise), opts)
    want = local.chat(_conversation(noise), opts)
    assert got.text == want.text and got.completion_tokens == want.completion_tokens
    assert got.prompt_tokens == want.prompt_tokens  # three images' tokens and every turn's text
    # change only the image of the *first* turn: the reply must follow the local model's
    other = _conversation(noise)
    other[1].parts[0] = ChatPart("image", image=noise)
    assert remote.chat(other, opts).text == local.chat(other, opts).text
    # streaming is passed through piece by piece and adds up to the same reply
    pieces = list(remote.chat_stream(_conversation(red), opts))
    assert len(pieces) >= 2 and "".join(pieces).strip() == local.chat(_conversation(red), opts).text


def test_caption_ask_and_embeddings_through_the_server(remote: OpenAIBackend, local) -> None:
    red, blue, _ = _imgs()
    assert remote.describe(red) == local.chat([ChatMessage("user", [ChatPart("image", image=red), ChatPart(
        "text", text="Describe this image in one sentence.")])], ChatOptions(max_tokens=6)).text
    a = remote.answer(blue, None, "what colour is this ?")
    assert a.question == "what colour is this ?" and a.answer and a.evidence == ()
    t = remote.embed_texts(["a red cat", "a blue car"])
    assert t.shape == (2, 16) and remote.text_dim == 16 and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    i = remote.embed_images([red, blue])
    assert i.shape == (2, 16) and remote.image_dim == 16 and not np.allclose(i[0], i[1])
    assert remote.health()["ok"] and "answers" in remote.health()["detail"]
    assert remote.model_id == "openai:vlm"


def test_server_errors_and_missing_key_are_one_clear_line(oculi_vlm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, key, _ = oculi_vlm_server
    monkeypatch.setenv("TEST_OCULI_KEY", key)
    wrong = OpenAIBackend("wrong", OpenAIOptions(backend="openai", base_url=url + "/v1", model="gpt-4o",
                                                 api_key_env="TEST_OCULI_KEY"), _settings(tmp_path))
    with pytest.raises(BackendError) as ei:
        wrong.describe(_imgs()[0])
    msg = str(ei.value)
    assert "answered 404" in msg and "gpt-4o" in msg and "\n" not in msg
    h = wrong.health()
    assert h["ok"] is False and "has no model 'gpt-4o'" in h["detail"]
    nokey = OpenAIBackend("nokey", OpenAIOptions(backend="openai", base_url=url + "/v1", model="vlm", api_key_env="TEST_UNSET_KEY_XYZ"),
                          _settings(tmp_path))
    with pytest.raises(ModelConfigError, match="TEST_UNSET_KEY_XYZ, which is not set"):
        nokey.chat([ChatMessage("user", [ChatPart("text", text="hi")])])
    monkeypatch.setenv("TEST_BAD_KEY", "oculi_aaaaaaaaaaaa_" + "b" * 43)
    bad = OpenAIBackend("bad", OpenAIOptions(backend="openai", base_url=url + "/v1", model="vlm", api_key_env="TEST_BAD_KEY"),
                        _settings(tmp_path))
    with pytest.raises(BackendError, match="answered 401"):
        bad.chat([ChatMessage("user", [ChatPart("text", text="hi")])])
    with pytest.raises(ValueError):
        OpenAIOptions(backend="openai", base_url=url, model="vlm", api_key="sk-secret")  # a key in the file is refused


# --- a server that fails on purpose ------------------------------------------------------------
class _Flaky(BaseHTTPRequestHandler):
    fail_first = 0
    status = 503
    delay = 0.0
    calls = 0
    raw: bytes | None = None
    last_body: dict = {}
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def log_message(self, *a: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.last_body = body
            cls.calls += 1
            n = cls.calls
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            time.sleep(cls.delay)
        finally:
            # Counted as in flight until the answer is about to be written: the client releases its
            # slot only after reading the answer, so this window always lies inside the client's.
            # (Decrementing after the write let the next request arrive first: 3 of 2 seen in CI.)
            with cls.lock:
                cls.in_flight -= 1
        if cls.raw is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(cls.raw)))
            self.end_headers()
            self.wfile.write(cls.raw)
        elif n <= cls.fail_first:
            self._send(cls.status, {"error": {"message": f"busy ({n})", "type": "server_error"}})
        else:
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": f"ok {body['model']}"},
                                          "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})

    def _send(self, code: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture()
def flaky():
    _Flaky.fail_first, _Flaky.status, _Flaky.delay, _Flaky.calls, _Flaky.in_flight, _Flaky.max_in_flight = 0, 503, 0.0, 0, 0, 0
    _Flaky.raw = None
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _flaky_backend(url: str, tmp_path: Path, **kw: object) -> OpenAIBackend:
    return OpenAIBackend("flaky", OpenAIOptions(backend="openai", base_url=url, model="m", **kw), _settings(tmp_path))


MSG = [ChatMessage("user", [ChatPart("text", text="hi")])]


def test_retries_with_backoff_then_succeeds_and_gives_up_with_one_line(flaky: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oculi.backends.openai_backend as ob

    monkeypatch.setattr(ob, "BACKOFF_S", 0.01)
    _Flaky.fail_first = 2
    res = _flaky_backend(flaky, tmp_path, max_retries=2).chat(MSG)
    assert res.text == "ok m" and _Flaky.calls == 3 and res.prompt_tokens == 3
    _Flaky.calls, _Flaky.fail_first = 0, 10
    with pytest.raises(BackendError) as ei:
        _flaky_backend(flaky, tmp_path, max_retries=1).chat(MSG)
    assert _Flaky.calls == 2 and "answered 503: busy (2)" in str(ei.value) and "after 2 tries" in str(ei.value)
    _Flaky.calls, _Flaky.status = 0, 400
    with pytest.raises(BackendError, match="answered 400: busy"):
        _flaky_backend(flaky, tmp_path, max_retries=3).chat(MSG)
    assert _Flaky.calls == 1  # a client error is not retried


def test_timeout_and_concurrency_limit(flaky: str, tmp_path: Path) -> None:
    _Flaky.delay = 1.0
    with pytest.raises(BackendError, match="did not answer within 0.2 s"):
        _flaky_backend(flaky, tmp_path, timeout=0.2, max_retries=0).chat(MSG)
    time.sleep(1.1)  # let the abandoned request finish on the server
    _Flaky.delay, _Flaky.max_in_flight = 0.3, 0
    b = _flaky_backend(flaky, tmp_path, concurrency=2)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(b.chat(MSG).text)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["ok m"] * 6 and _Flaky.max_in_flight == 2


def test_server_down_is_one_line_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    b = _flaky_backend(url, tmp_path, max_retries=0)
    with pytest.raises(BackendError) as ei:
        b.chat(MSG)
    msg = str(ei.value)
    assert f"cannot reach {url}" in msg and "connection refused" in msg and "is the server running?" in msg and "\n" not in msg
    with pytest.raises(BackendError, match="cannot reach"):
        list(b.chat_stream(MSG))
    assert b.health()["ok"] is False


def test_images_go_as_data_urls_and_split_for_one_image_servers(flaky: str, tmp_path: Path) -> None:
    red, blue, noise = _imgs()
    msgs = [ChatMessage("system", [ChatPart("text", text="be short")]),
            ChatMessage("user", [ChatPart("image", image=red), ChatPart("image", image=blue), ChatPart("image", image=noise),
                                 ChatPart("text", text="compare")])]
    _flaky_backend(flaky, tmp_path).chat(msgs, ChatOptions(max_tokens=7, stop=["."], temperature=0.2,
                                                           response_format={"type": "json_object"}))
    body = _Flaky.last_body
    assert body["max_tokens"] == 7 and body["stop"] == ["."] and body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": "be short"}
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"]
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts[:3])
    _flaky_backend(flaky, tmp_path, images_per_message=1).chat(msgs)
    user = _Flaky.last_body["messages"][1:]
    assert [[p["type"] for p in m["content"]] for m in user] == [["image_url"], ["image_url"], ["image_url", "text"]]
    assert [m["content"][0]["image_url"]["url"] for m in user] == [p["image_url"]["url"] for p in parts[:3]]  # order kept


def test_a_server_answering_garbage_is_one_line(flaky: str, tmp_path: Path) -> None:
    _Flaky.raw = b"<html>proxy error</html>"
    with pytest.raises(BackendError, match="answered 200 with something that is not JSON: '<html>proxy error"):
        _flaky_backend(flaky, tmp_path).chat(MSG)
    _Flaky.raw = b'data: {"choices": [{"delta": {"content": "hel"}}]}\n\ndata: {not json\n\n'
    b = _flaky_backend(flaky, tmp_path)
    got = []
    with pytest.raises(BackendError, match="streamed something that is not JSON"):
        for piece in b.chat_stream(MSG):
            got.append(piece)
    assert got == ["hel"]  # what came before the garbage was passed on
