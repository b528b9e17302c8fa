"""What a hostile pass over the server found (issue 7), each reproduced against the real app.

Oversized chunked bodies, deeply nested JSON, lone surrogates, plain text where an image URL
belongs, a reflected Host header, unreadable JSON, re-creating a collection, caching headers,
file permissions of the server's databases, the key check's code path, and a remote image
host that drips one byte at a time.
"""

from __future__ import annotations

import hmac
import os
import socket
import stat
import threading
import time

import pytest

from tests.unit.server.conftest import bearer, data_url, png_bytes

IMG = png_bytes(80, 60)
JSON = {"Content-Type": "application/json"}
IMAGE_ROUTES = ("/api/v1/caption", "/api/v1/ask", "/api/v1/detect", "/api/v1/read", "/api/v1/classify")


def _error_shape(r) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str), body
    return err


def _chunks(total: int, size: int = 4096):
    """A body generator: the client sends it chunked, with no Content-Length."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"[" * n


# --- bodies -------------------------------------------------------------------------------------
@pytest.fixture()
def store_client(make_client):
    pytest.importorskip("lancedb")
    return make_client(store_factory="default", max_request_bytes=50_000)


def test_oversized_chunked_bodies_get_413_everywhere(store_client, keys, fake_engine):
    c = store_client
    h = bearer(keys["write"])
    assert c.post("/api/v1/collections", json={"name": "alpha"}, headers=h).status_code == 201
    multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
    for path, ctype in [
        ("/api/v1/collections/alpha/images", multipart),
        ("/v1/chat/completions", JSON),
        ("/v1/embeddings", JSON),
        ("/api/v1/collections/alpha/search", JSON),
        ("/api/v1/collections/alpha/search", multipart),
        ("/api/v1/collections", JSON),
        *((p, JSON) for p in IMAGE_ROUTES),
        ("/api/v1/caption", multipart),
    ]:
        r = c.post(path, content=_chunks(200_000), headers={**h, **ctype})
        assert r.status_code == 413, (path, ctype, r.status_code, r.text)
        err = _error_shape(r)
        assert err["type"] == "request_too_large" and "limit" in err["message"], err
    assert fake_engine.calls == []


@pytest.mark.parametrize("path", [*IMAGE_ROUTES, "/v1/chat/completions", "/v1/embeddings", "/api/v1/collections",
                                  "/api/v1/collections/alpha/search"])
def test_deeply_nested_json_is_400(make_client, keys, path):
    c = make_client(raise_server_exceptions=False)
    for body in (b"[" * 100_000, b'{"image": ' + b"[" * 100_000, b"[" * 500 + b"]" * 500):
        r = c.post(path, content=body, headers={**bearer(keys["write"]), **JSON})
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
        err = _error_shape(r)
        assert "Recursion" not in err["message"] and "internal" not in err["message"]


def test_lone_surrogate_is_a_400_without_internals(make_client, keys, fake_engine):
    c = make_client(raise_server_exceptions=False)
    h = {**bearer(keys["read"]), **JSON}
    for body in (b'{"model": "oculi-text-embed", "input": "\\ud800"}',
                 b'{"model": "oculi-text-embed", "input": ["ok", "a\\udfffb"]}',
                 b'{"model": "oculi-builtin", "messages": [{"role": "user", "content": "\\ud800"}]}'):
        path = "/v1/embeddings" if b"embed" in body else "/v1/chat/completions"
        r = c.post(path, content=body, headers=h)
        assert r.status_code == 400, r.text
        err = _error_shape(r)
        assert "surrogate" in err["message"] and "encoder" not in err["message"], err
        assert err.get("param") == ("input" if "embed" in path else "messages"), err
    assert "embed_texts" not in fake_engine.calls


def test_invalid_json_on_v1_is_an_openai_error_with_a_plain_message(make_client, keys):
    c = make_client()
    r = c.post("/v1/chat/completions", content=b'{"model": "oculi-builtin", ', headers={**bearer(keys["read"]), **JSON})
    assert r.status_code == 400
    err = _error_shape(r)
    assert err["type"] == "invalid_request_error"
    assert "JSON" in err["message"] and not err["message"].startswith("10"), err
    assert err.get("param") is None and set(err) >= {"message", "type", "param", "code"}, err
    r = c.post("/v1/embeddings", content=b"", headers={**bearer(keys["read"]), **JSON})
    assert r.status_code == 400 and "body" in _error_shape(r)["message"].lower()
    r = c.post("/api/v1/collections", content=b"nope", headers={**bearer(keys["write"]), **JSON})
    assert r.status_code == 400 and "JSON" in _error_shape(r)["message"]


def test_image_embed_with_plain_text_says_an_image_is_expected(make_client, keys):
    c = make_client()
    r = c.post("/v1/embeddings", json={"model": "oculi-image-embed", "input": "a photo of a cat"}, headers=bearer(keys["read"]))
    assert r.status_code == 400
    err = _error_shape(r)
    assert "data: URL" in err["message"] and "disabled" not in err["message"], err
    assert err.get("param") == "input"


# --- pages --------------------------------------------------------------------------------------
def test_host_header_is_never_reflected(make_client):
    c = make_client()
    for path in ("/", "/docs"):
        r = c.get(path, headers={"Host": "evil.example:666"})
        assert r.status_code == 200
        assert "evil.example" not in r.text, path
        assert 'href="static/app.css"' in r.text


# --- collections --------------------------------------------------------------------------------
def test_creating_an_existing_collection_is_409(store_client, keys):
    c = store_client
    h = bearer(keys["write"])
    assert c.post("/api/v1/collections", json={"name": "alpha"}, headers=h).status_code == 201
    r = c.post("/api/v1/collections", json={"name": "alpha"}, headers=h)
    assert r.status_code == 409
    err = _error_shape(r)
    assert err["type"] == "conflict_error" and "already exists" in err["message"]


def test_thumbnail_and_api_caching_headers_are_consistent(store_client, keys):
    c = store_client
    h = bearer(keys["write"])
    r = c.post("/api/v1/collections/alpha/images", files=[("images", ("a.png", IMG, "image/png"))], headers=h)
    assert r.status_code == 202
    job = r.json()["id"]
    for _ in range(400):
        if c.get(f"/api/v1/jobs/{job}", headers=h).json()["state"] == "done":
            break
        time.sleep(0.05)
    item = c.get("/api/v1/collections/alpha/items", headers=h).json()["items"][0]["id"]
    r = c.get(f"/api/v1/collections/alpha/items/{item}/thumbnail", headers=h)
    assert r.status_code == 200
    cc = r.headers.get_list("cache-control")
    assert len(cc) == 1 and "no-store" not in cc[0] and "private" in cc[0] and "max-age" in cc[0], cc
    r = c.get("/api/v1/collections", headers=h)
    assert r.headers.get_list("cache-control") == ["no-store"]


# --- files and keys -----------------------------------------------------------------------------
def test_server_databases_are_private(store_client, keys, settings):
    c = store_client
    h = bearer(keys["write"])
    c.post("/api/v1/collections/alpha/images", files=[("images", ("a.png", IMG, "image/png"))], headers=h)
    server = settings.home / "server"
    assert stat.S_IMODE(server.stat().st_mode) == 0o700
    assert stat.S_IMODE((server / "spool").stat().st_mode) == 0o700
    files = [p for p in server.iterdir() if ".db" in p.name]  # keys, jobs, footage and report jobs
    assert {"keys.db", "jobs.db", "footage_jobs.db", "keys.db-wal", "jobs.db-wal"} <= {p.name for p in files}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))


def test_existing_world_readable_databases_are_tightened(settings):
    from oculi.server.auth import KeyStore

    server = settings.home / "server"
    server.mkdir(parents=True)
    os.chmod(server, 0o755)
    (server / "keys.db").touch(mode=0o644)
    os.chmod(server / "keys.db", 0o644)
    ks = KeyStore(settings.home)
    ks.create("read")
    assert stat.S_IMODE(server.stat().st_mode) == 0o700
    assert stat.S_IMODE((server / "keys.db").stat().st_mode) == 0o600
    ks.close()


def test_unknown_and_known_key_ids_take_the_same_path(settings, monkeypatch):
    """An unknown id is compared against a dummy hash, so both refusals do the same work."""
    from oculi.server import auth

    ks = auth.KeyStore(settings.home)
    secret, info = ks.create("read")
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    wrong_secret = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    unknown_id = "oculi_" + "0" * 12 + secret[18:]
    assert ks.verify(wrong_secret) is None
    assert ks.verify(unknown_id) is None
    assert ks.verify(secret) is not None
    assert calls == [(32, 32)] * 3


# --- remote fetching ----------------------------------------------------------------------------
class DripServer:
    """A loopback HTTP server that sends its answer one byte at a time, ``interval`` apart.

    ``mode="body"`` sends the headers at once and drips a 100-byte body; ``mode="headers"``
    drips the status line and headers too. ``sent`` counts the bytes it got out before the
    client hung up.
    """

    def __init__(self, mode: str, interval: float = 0.1, total: int = 100) -> None:
        self.mode, self.interval, self.total = mode, interval, total
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.closed_by_client = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
            except OSError:
                pass
            head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {self.total}\r\n\r\n".encode()
            body = b"\x89PNG\r\n\x1a\n" + b"\0" * (self.total - 8)
            if self.mode == "body":
                conn.sendall(head)
                data = body
            else:
                data = head + body
            for i in range(len(data)):
                if self.done.is_set():
                    break
                try:
                    conn.sendall(data[i:i + 1])
                    self.sent += 1
                except OSError:
                    self.closed_by_client.set()
                    return
                time.sleep(self.interval)
                if _peer_closed(conn):
                    self.closed_by_client.set()
                    return

    def __enter__(self) -> "DripServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.sock.close()
        self.thread.join(10)


def _peer_closed(conn: socket.socket) -> bool:
    try:
        conn.setblocking(False)
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        finally:
            conn.setblocking(True)
            conn.settimeout(5)
    except OSError:
        return True


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_remote_fetch_deadline_bounds_the_whole_fetch(make_client, keys, mode):
    """A host dripping one byte per 0.1 s would take 10+ s; the 0.5 s limit cuts it off."""
    c = make_client(remote_images=True, remote_allow_hosts=["127.0.0.1"], remote_allow_private=True, remote_timeout_s=0.5)
    with DripServer(mode) as srv:
        r = c.post("/v1/chat/completions", headers=bearer(keys["read"]), json={
            "model": "oculi-builtin",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{srv.port}/x.png"}}]}],
        })
        assert r.status_code == 504, r.text
        assert _error_shape(r)["type"] == "timeout_error"
        assert srv.closed_by_client.wait(5)  # the server saw the client hang up ...
        assert srv.sent < srv.total  # ... long before it had sent everything
