"""Readiness, model failures, docs, metrics and the event loop staying responsive."""

from __future__ import annotations

import threading
import time

import httpx

from oculi.core.errors import ModelAssetError
from tests.serverutil import ServerThread
from tests.unit.server.conftest import bearer, png_bytes


def test_readiness_reports_missing_models_and_requests_get_503(settings, fake_engine, keys):
    from fastapi.testclient import TestClient

    from oculi.server.app import create_app
    from oculi.server.config import ServerConfig

    def fail(*a, **k):
        raise ModelAssetError("asset 'detector' is missing; run `oculi models pull`")

    fake_engine.warmup = fail
    fake_engine.caption = fail
    app = create_app(settings, fake_engine, config=ServerConfig(rate_per_minute=0), store_factory=None)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for _ in range(100):
            r = c.get("/readyz")
            if r.json()["status"] != "loading":
                break
            time.sleep(0.02)
        assert r.status_code == 503 and r.json()["status"] == "error"
        assert "oculi models pull" in r.json()["message"]
        assert c.get("/healthz").status_code == 200
        r = c.post("/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")}, headers=bearer(keys["read"]))
        assert r.status_code == 503 and "models pull" in r.json()["error"]["message"]
        assert c.get("/api/v1/jobs", headers=bearer(keys["read"])).status_code == 503  # no store configured


def test_docs_and_openapi_are_public_and_complete(make_client):
    c = make_client()
    spec = c.get("/openapi.json").json()
    paths = set(spec["paths"])
    for p in ("/api/v1/caption", "/api/v1/ask", "/api/v1/detect", "/api/v1/read", "/api/v1/classify",
              "/api/v1/collections", "/api/v1/collections/{name}/images", "/api/v1/collections/{name}/search",
              "/api/v1/jobs/{job_id}", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/healthz", "/readyz", "/metrics"):
        assert p in paths, p
    assert "multipart/form-data" in spec["paths"]["/api/v1/caption"]["post"]["requestBody"]["content"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    r = c.get("/docs")
    assert r.status_code == 200 and "/v1/chat/completions" in r.text and "cdn" not in r.text.lower()


def test_metrics_count_requests_by_route_template(make_client, keys):
    c = make_client()
    c.post("/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")}, headers=bearer(keys["read"]))
    c.get("/api/v1/collections/secret-name/items", headers=bearer(keys["read"]))
    text = c.get("/metrics", headers=bearer(keys["admin"])).text
    assert 'oculi_http_requests_total{method="POST",route="/api/v1/caption",status="200"} 1' in text
    assert 'oculi_model_calls_total{task="caption"} 1' in text
    assert "secret-name" not in text and "process_resident_memory_bytes" in text


def test_event_loop_answers_while_models_are_busy(settings, fake_engine, keys):
    """A slow model call runs in the thread pool: health and other requests still answer."""
    from oculi.server.app import create_app
    from oculi.server.config import ServerConfig

    release = threading.Event()
    real = fake_engine.caption

    def slow(*a, **k):
        release.wait(10)
        return real(*a, **k)

    fake_engine.caption = slow
    app = create_app(settings, fake_engine, config=ServerConfig(rate_per_minute=0, inference_concurrency=1), store_factory=None)
    with ServerThread(app) as url:
        h = bearer(keys["read"])
        results: list[int] = []

        def call() -> None:
            r = httpx.post(url + "/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")}, headers=h, timeout=30)
            results.append(r.status_code)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/v1/models", headers=h).status_code == 200
        r = httpx.post(url + "/v1/embeddings", json={"model": "oculi-text-embed", "input": "hi"}, headers=h)
        assert r.status_code == 200  # the light lane is not stuck behind the image lane
        assert time.monotonic() - t0 < 2
        release.set()
        for t in threads:
            t.join(20)
        assert results == [200, 200, 200]
