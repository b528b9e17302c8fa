"""The official ``openai`` client, unchanged, against a real uvicorn server (test-double engine).

The same checks with the real models are in tests/e2e/test_server_openai.py (slow).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.serverutil import ServerThread
from tests.unit.server.conftest import data_url, png_bytes

openai = pytest.importorskip("openai")


@pytest.fixture()
def served(settings, fake_engine, keys):
    from oculi.server.app import create_app
    from oculi.server.config import ServerConfig

    app = create_app(settings, fake_engine, config=ServerConfig(rate_per_minute=0), store_factory=None)
    with ServerThread(app) as url:
        yield url, keys


def test_official_client(served):
    url, keys = served
    client = openai.OpenAI(base_url=url + "/v1", api_key=keys["read"], max_retries=0)
    assert {m.id for m in client.models.list()} == {"oculi-builtin", "oculi-text-embed", "oculi-image-embed"}
    img = data_url(png_bytes(64, 64))
    r = client.chat.completions.create(
        model="oculi-builtin",
        messages=[{"role": "user", "content": [{"type": "text", "text": "How many dogs?"}, {"type": "image_url", "image_url": {"url": img}}]}],
    )
    assert r.choices[0].message.content == "1 — there is one dog."
    assert r.usage.total_tokens > 0
    stream = client.chat.completions.create(
        model="oculi-builtin", stream=True,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Describe this image."}, {"type": "image_url", "image_url": {"url": img}}]}],
    )
    text = "".join((ch.choices[0].delta.content or "") for ch in stream if ch.choices)
    assert text.startswith("A photo of a brown dog")
    e = client.embeddings.create(model="oculi-text-embed", input=["a red car", "a cat"])  # the client asks for base64
    assert len(e.data) == 2 and len(e.data[0].embedding) == 384
    assert abs(np.linalg.norm(e.data[0].embedding) - 1) < 1e-4
    e = client.embeddings.create(model="oculi-image-embed", input=[img])
    assert len(e.data[0].embedding) == 1024


def test_official_client_errors(served):
    url, keys = served
    bad = openai.OpenAI(base_url=url + "/v1", api_key="oculi_aaaaaaaaaaaa_" + "b" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    client = openai.OpenAI(base_url=url + "/v1", api_key=keys["read"], max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="oculi-builtin", messages=[{"role": "user", "content": "hi"}])
    assert "image" in str(ei.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="oculi-builtin",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data/"}}]}],
        )
