"""``oculi serve`` with the real models, driven by the official ``openai`` client, unchanged.

One uvicorn server on 127.0.0.1 (free port) per module; the engine is the session's shared,
warmed-up one. Checks a chat about a photo (plain and streamed), embeddings of text and of an
image, the model list, and that a request over HTTP runs while another is in flight.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf

import numpy as np
import pytest

from oculi.config import Settings
from tests.serverutil import ServerThread

pytestmark = pytest.mark.slow
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def server(engine, tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig

    home = tmp_path_factory.mktemp("serve-home")
    settings = Settings(home=home, assets_dir=engine.settings.assets_dir)
    key, _ = KeyStore(home).create("read", name="e2e")
    app = create_app(settings, engine, config=ServerConfig(rate_per_minute=0), warmup=False)
    with ServerThread(app, ready_path="/readyz") as url:
        yield url, key


@pytest.fixture(scope="module")
def client(server):
    url, key = server
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def _data_url(path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _msg(text, url):
    content = [{"type": "text", "text": text}] if text else []
    return [{"role": "user", "content": content + [{"type": "image_url", "image_url": {"url": url}}]}]


def test_models_list(client):
    assert {m.id for m in client.models.list()} == {"oculi-builtin", "oculi-text-embed", "oculi-image-embed"}


def test_chat_answers_about_the_photo(client, samples_dir):
    url = _data_url(samples_dir / "astronaut.png")
    r = client.chat.completions.create(model="oculi-builtin", messages=_msg("How many people are in the photo?", url))
    assert r.choices[0].message.content.startswith("1")
    r = client.chat.completions.create(model="oculi-builtin", messages=_msg("Describe this image.", _data_url(samples_dir / "chelsea.png")))
    assert "cat" in r.choices[0].message.content.lower()


def test_chat_streams(client, samples_dir):
    stream = client.chat.completions.create(
        model="oculi-builtin", stream=True, messages=_msg(None, _data_url(samples_dir / "coffee.png"))
    )
    chunks = [c for c in stream]
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == "stop"
    assert any(w in text.lower() for w in ("cup", "coffee", "espresso"))


def test_embeddings(client, samples_dir):
    e = client.embeddings.create(model="oculi-text-embed", input=["a cat on a sofa", "a small kitten", "a rocket launch"])
    v = np.array([d.embedding for d in e.data])
    assert v.shape == (3, 384)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2]  # cats are nearer each other than a rocket
    e = client.embeddings.create(model="oculi-image-embed", input=[_data_url(samples_dir / "chelsea.png")])
    assert len(e.data[0].embedding) > 100 and abs(np.linalg.norm(e.data[0].embedding) - 1) < 1e-3


def test_concurrent_requests_all_succeed(client, samples_dir):
    url = _data_url(samples_dir / "rocket.png")

    def one(i):
        q = "Is there a rocket?" if i % 2 else None
        return client.chat.completions.create(model="oculi-builtin", messages=_msg(q, url)).choices[0].message.content

    with cf.ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(one, range(4)))
    assert all(outs)
