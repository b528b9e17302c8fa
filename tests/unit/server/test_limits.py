"""Hostile requests: oversized bodies, bombs, non-images, bad base64, rate limits, CORS, CSRF."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from oculi.server.limits import RateLimiter
from tests.unit.server.conftest import bearer, data_url, png_bytes


def _caption(c, key, data: bytes, name: str = "x.png", ctype: str = "image/png"):
    return c.post("/api/v1/caption", files={"image": (name, data, ctype)}, headers=bearer(key))


def test_body_over_limit_is_refused_before_reading(make_client, keys, fake_engine):
    c = make_client(max_request_bytes=10_000)
    r = c.post("/api/v1/caption", content=b"\0" * 20_000, headers={**bearer(keys["read"]), "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"

    def chunks():  # no Content-Length: cut off while streaming
        for _ in range(50):
            yield b"A" * 1000

    r = c.post("/api/v1/caption", content=chunks(), headers={**bearer(keys["read"]), "Content-Type": "application/json"})
    assert r.status_code == 413
    assert fake_engine.calls == []


def test_image_bytes_and_pixel_limits(make_client, keys, settings, fake_engine):
    c = make_client()
    # over max_image_bytes (2 MB in these tests): noise does not compress
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    assert len(buf.getvalue()) > settings.max_image_bytes
    r = _caption(c, keys["read"], buf.getvalue())
    assert r.status_code == 413
    # a decompression bomb: tiny file, 3000x3000 = 9 M pixels > 4 M
    bomb = png_bytes(3000, 3000, (0, 0, 0))
    assert len(bomb) < 100_000
    r = _caption(c, keys["read"], bomb)
    assert r.status_code == 413 and "pixels" in r.json()["error"]["message"]
    assert fake_engine.calls == []


@pytest.mark.parametrize(
    "payload",
    [
        b"<html><script>alert(1)</script></html>",
        b"%PDF-1.7\n1 0 obj",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b"\x7fELF\x02\x01\x01" + b"\0" * 64,
        b"PK\x03\x04" + b"\0" * 64,
    ],
)
def test_non_images_are_415_whatever_the_content_type_says(make_client, keys, payload, fake_engine):
    c = make_client()
    r = _caption(c, keys["read"], payload, name="photo.png", ctype="image/png")
    assert r.status_code == 415
    assert "not an image" in r.json()["error"]["message"]
    r = c.post("/api/v1/caption", json={"image": base64.b64encode(payload).decode()}, headers=bearer(keys["read"]))
    assert r.status_code == 415
    assert fake_engine.calls == []


def test_truncated_and_empty_images(make_client, keys):
    c = make_client()
    good = png_bytes(200, 200)
    r = _caption(c, keys["read"], good[:60])
    assert r.status_code == 400
    r = _caption(c, keys["read"], b"")
    assert r.status_code == 400
    # a JPEG signature with garbage after it
    r = _caption(c, keys["read"], b"\xff\xd8\xff\xe0" + b"garbage" * 10)
    assert r.status_code == 400


def test_bad_base64_and_bad_json(make_client, keys):
    c = make_client()
    h = bearer(keys["read"])
    for bad in ("not base64 at all!!", "data:image/png;base64,@@@@", "data:text/html,<b>hi</b>", "data:image/png;base64,"):
        r = c.post("/api/v1/caption", json={"image": bad}, headers=h)
        assert r.status_code == 400, bad
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = c.post("/api/v1/caption", content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = c.post("/api/v1/caption", json=["image"], headers=h)
    assert r.status_code == 400
    r = c.post("/api/v1/caption", content=b"raw", headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = c.post("/api/v1/ask", json={"image": data_url(png_bytes())}, headers=h)
    assert r.status_code == 400 and "question" in r.json()["error"]["message"]
    r = c.post("/api/v1/ask", json={"image": data_url(png_bytes()), "question": "x" * 5000}, headers=h)
    assert r.status_code == 400
    r = c.post("/api/v1/detect", json={"image": data_url(png_bytes()), "min_score": "nan"}, headers=h)
    assert r.status_code == 400
    r = c.post("/api/v1/classify", json={"image": data_url(png_bytes()), "labels": "cat"}, headers=h)
    assert r.status_code == 400


def test_each_image_task_works_both_ways(make_client, keys):
    c = make_client()
    h = bearer(keys["read"])
    img = png_bytes()
    for path, fields in [("/api/v1/caption", {"detailed": "true"}), ("/api/v1/ask", {"question": "How many dogs?"}),
                         ("/api/v1/detect", {"min_score": "0.5"}), ("/api/v1/read", {}), ("/api/v1/classify", {"labels": "dog,cat"})]:
        r1 = c.post(path, files={"image": ("a.png", img, "image/png")}, data=fields, headers=h)
        r2 = c.post(path, json={"image": base64.b64encode(img).decode(), **fields}, headers=h)
        assert r1.status_code == 200 and r2.status_code == 200, (path, r1.text, r2.text)
        assert r1.json() == r2.json()
    assert c.post("/api/v1/classify", json={"image": data_url(img), "labels": ["dog", "cat"]}, headers=h).json()["label"] == "dog"
    assert "detailed" in c.post("/api/v1/caption", json={"image": data_url(img), "detailed": True}, headers=h).json()["caption"]


def test_rate_limit_per_key(make_client, keys):
    c = make_client(rate_per_minute=60, rate_burst=3)
    h = bearer(keys["read"])
    codes = [c.get("/v1/models", headers=h).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    r = c.get("/v1/models", headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["type"] == "rate_limit_error"
    # another key has its own bucket; health is never limited
    assert c.get("/v1/models", headers=bearer(keys["write"])).status_code == 200
    assert all(c.get("/healthz").status_code == 200 for _ in range(10))


def test_failed_auth_is_rate_limited_per_client(make_client):
    c = make_client()
    codes = [c.get("/v1/models", headers=bearer("oculi_aaaaaaaaaaaa_" + "b" * 43)).status_code for _ in range(25)]
    assert codes[0] == 401 and codes[-1] == 429


def test_token_bucket_refills():
    t = [0.0]
    rl = RateLimiter(60, 2, clock=lambda: t[0])
    assert rl.take("k") == 0 and rl.take("k") == 0
    assert rl.take("k") == pytest.approx(1.0)
    t[0] += 1.0
    assert rl.take("k") == 0
    assert RateLimiter(0, 1).take("k") == 0  # off


def test_cors_is_off_by_default(make_client, keys):
    c = make_client()
    r = c.options("/api/v1/caption", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in r.headers
    r = c.get("/v1/models", headers={**bearer(keys["read"]), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cross_origin_writes_are_refused_and_cors_can_be_enabled(make_client, keys, fake_engine):
    c = make_client()
    r = c.post("/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")},
               headers={**bearer(keys["read"]), "Origin": "https://evil.example"})
    assert r.status_code == 403 and fake_engine.calls == []
    # the same origin is fine
    r = c.post("/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")},
               headers={**bearer(keys["read"]), "Origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200
    c2 = make_client(cors_origins=["https://app.example"])
    r = c2.options("/api/v1/caption", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "authorization"})
    assert r.headers.get("access-control-allow-origin") == "https://app.example"
    r = c2.get("/v1/models", headers={**bearer(keys["read"]), "Origin": "https://other.example"})
    assert "access-control-allow-origin" not in r.headers


def test_security_headers_and_no_leaks_in_errors(make_client, keys, fake_engine, monkeypatch):
    c = make_client(raise_server_exceptions=False)
    r = c.get("/")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"

    def boom(*a, **k):
        raise RuntimeError("secret /etc/shadow detail")

    monkeypatch.setattr(fake_engine, "caption", boom)
    r = _caption(c, keys["read"], png_bytes())
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "internal error", "type": "server_error"}}


def test_unknown_routes_and_methods(make_client, keys):
    c = make_client()
    r = c.get("/api/v1/nope", headers=bearer(keys["read"]))
    assert r.status_code == 404 and "error" in r.json()
    assert c.get("/static/../../../../etc/passwd").status_code == 404
    assert c.get("/static/%2e%2e/%2e%2e/server/auth.py").status_code == 404
    r = c.get("/static/app.js")
    assert r.status_code == 200 and "sessionStorage" in r.text


