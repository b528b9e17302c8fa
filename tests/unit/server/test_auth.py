"""API keys: hashed storage, 401/403, scopes, revocation, no-auth only on loopback."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from oculi.server.auth import KeyStore, Scope
from tests.unit.server.conftest import bearer, png_bytes


def test_key_is_stored_hashed_and_verifies(settings):
    ks = KeyStore(settings.home)
    secret, info = ks.create("write", collection="alpha", name="ci")
    assert secret.startswith("oculi_") and info.key_id in secret
    raw = (settings.home / "server" / "keys.db").read_bytes()
    assert secret.split("_", 2)[2].encode() not in raw  # the secret is not on disk
    db = sqlite3.connect(settings.home / "server" / "keys.db")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
    p = ks.verify(secret)
    assert p is not None and p.scope == Scope.WRITE and p.collection == "alpha"
    assert ks.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None  # one character off
    assert ks.verify("oculi_000000000000_" + "x" * 43) is None  # unknown id
    assert ks.verify("") is None and ks.verify("Bearer nonsense") is None
    ks.revoke(info.key_id)
    assert ks.verify(secret) is None
    with pytest.raises(Exception):
        ks.revoke(info.key_id)


def test_bad_scope_and_collection_names_refused(settings):
    ks = KeyStore(settings.home)
    with pytest.raises(Exception, match="unknown scope"):
        ks.create("root")
    with pytest.raises(Exception, match="collection name"):
        ks.create("read", collection="../../etc")


def test_missing_and_bad_keys_get_401(make_client, keys):
    c = make_client()
    assert c.get("/healthz").status_code == 200  # health needs no key
    assert c.get("/readyz").status_code == 200
    for path in ("/api/v1/whoami", "/v1/models", "/api/v1/collections", "/api/v1/jobs", "/metrics"):
        r = c.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
    r = c.post("/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")})
    assert r.status_code == 401
    assert c.get("/v1/models", headers=bearer("oculi_aaaaaaaaaaaa_" + "b" * 43)).status_code == 401
    assert c.get("/v1/models", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    assert c.get("/v1/models", headers=bearer(keys["read"])).status_code == 200


def test_scopes_are_ordered(make_client, keys):
    c = make_client()
    me = c.get("/api/v1/whoami", headers=bearer(keys["read"])).json()
    assert me["scope"] == "read" and me["scopes"] == ["read"]
    assert c.get("/api/v1/whoami", headers=bearer(keys["write"])).json()["scopes"] == ["read", "write"]
    assert c.get("/api/v1/whoami", headers=bearer(keys["admin"])).json()["scopes"] == ["read", "write", "admin"]
    # metrics: admin only
    assert c.get("/metrics", headers=bearer(keys["read"])).status_code == 403
    assert c.get("/metrics", headers=bearer(keys["write"])).status_code == 403
    r = c.get("/metrics", headers=bearer(keys["admin"]))
    assert r.status_code == 200 and "oculi_http_requests_total" in r.text
    # the metrics name routes by template, never a collection name or a key
    assert "alpha" not in r.text and keys["admin"] not in r.text
    # read may run the models
    r = c.post("/api/v1/detect", files={"image": ("a.png", png_bytes(), "image/png")}, headers=bearer(keys["read"]))
    assert r.status_code == 200 and r.json()["objects"][0]["label"] == "dog"
    # a 403 says what scope is needed
    r = c.get("/metrics", headers=bearer(keys["write"]))
    assert r.json()["error"]["type"] == "permission_error" and "admin" in r.json()["error"]["message"]


def test_revoked_key_stops_working_on_a_running_server(make_client, keys, settings):
    c = make_client()
    assert c.get("/v1/models", headers=bearer(keys["read"])).status_code == 200
    KeyStore(settings.home).revoke(keys["read"].split("_")[1])
    assert c.get("/v1/models", headers=bearer(keys["read"])).status_code == 401


def test_no_auth_serves_only_loopback_hosts(make_client):
    c = make_client(auth=False)
    assert c.get("/api/v1/whoami").json()["scope"] == "admin"
    # a DNS-rebinding page reaches us with its own Host header: refused
    r = c.get("/api/v1/whoami", headers={"Host": "evil.example.com"})
    assert r.status_code == 403 and "alpha" not in r.text
    assert c.get("/api/v1/whoami", headers={"Host": "localhost:8000"}).status_code == 200
    assert c.get("/api/v1/whoami", headers={"Host": "[::1]:8000"}).status_code == 200


def test_cli_refuses_no_auth_off_loopback(home, monkeypatch):
    from oculi.cli.main import app

    monkeypatch.setenv("OCULI_HOME", str(home))
    r = CliRunner().invoke(app, ["serve", "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2
    assert "loopback" in r.output
    r = CliRunner().invoke(app, ["serve", "--allow-remote-images"])
    assert r.exit_code == 2


def test_cli_keys_create_list_revoke(home, monkeypatch):
    from oculi.cli.main import app

    monkeypatch.setenv("OCULI_HOME", str(home))
    runner = CliRunner()
    r = runner.invoke(app, ["keys", "create", "--scope", "write", "--collection", "alpha", "--name", "bob", "--json"])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.stdout)
    assert doc["key"].startswith("oculi_") and doc["scope"] == "write" and doc["collection"] == "alpha"
    r = runner.invoke(app, ["keys", "list", "--json"])
    listed = json.loads(r.stdout)["keys"]
    assert [k["key_id"] for k in listed] == [doc["key_id"]]
    assert doc["key"] not in r.stdout  # listing never shows secrets
    assert runner.invoke(app, ["keys", "revoke", doc["key_id"]]).exit_code == 0
    assert json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)["keys"] == []
    assert runner.invoke(app, ["keys", "revoke", "ffffffffffff"]).exit_code == 2
    assert runner.invoke(app, ["keys", "create", "--scope", "root"]).exit_code == 2
