"""``GET /api/v1/models``: the configured models over HTTP, and a server engine with ``--model``."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from oculi.config import Settings
from oculi.engine import Engine
from oculi.server.app import create_app
from tests.unit.backends.test_registry import Echo  # noqa: F401 - registers the "echo" type


def _client(tmp_path: Path, **kw) -> TestClient:
    s = Settings(home=tmp_path / "home", assets_dir=Settings().assets_dir, read_config_files=False,
                 models={"e": {"backend": "echo", "text": "hello"}}, **kw)
    app = create_app(s, Engine(s), auth=False, warmup=False, start_jobs=False, store_factory=None)
    return TestClient(app, base_url="http://127.0.0.1")


def test_models_route(tmp_path: Path) -> None:
    c = _client(tmp_path, tasks={"caption": "e"})
    r = c.get("/api/v1/models")
    assert r.status_code == 200, r.text
    doc = r.json()
    by = {m["name"]: m for m in doc["models"]}
    assert set(by) == {"builtin", "e"} and by["e"]["serves"] == ["describe"] and by["e"]["health"] is None
    assert doc["tasks"]["describe"] == "e" and doc["tasks"]["chat"] is None and doc["schema_version"]
    r = c.get("/api/v1/models", params={"health": "true"})
    assert {m["name"]: m for m in r.json()["models"]}["e"]["health"] == {"ok": True, "detail": "loaded"}


def test_server_caption_names_the_model(tmp_path: Path) -> None:
    """`oculi serve --model e`: the server's engine routes captions to it; the reply says so."""
    from tests.unit.backends.test_registry import OnlyObserve  # noqa: F401 - registers "only-observe"

    c = _client(tmp_path, model="e", tasks={"observe": "only-observe"})
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 128, 0)).save(buf, format="PNG")
    r = c.post("/api/v1/caption", files={"image": ("g.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["caption"] == "hello (e)" and r.json()["model"] == "echo:e"
