"""Which store ``open_store`` opens: from ``url``, ``Settings.store``, ``OCULI_STORE``,
``store =`` in ``oculi.toml`` or ``oculi --store``; a plain path or ``lance://`` is embedded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.config import Settings
from oculi.core.errors import InputError
from oculi.store import open_store, parse_store_url
from oculi.store.lance import LanceStore
from oculi.store.pg_store import PgStore


def test_urls() -> None:
    assert parse_store_url(None) == ("lance", "")
    assert parse_store_url("/data/c") == ("lance", "/data/c")
    assert parse_store_url("lance:///data/c") == ("lance", "/data/c")
    assert parse_store_url("postgres://u@h/db") == ("postgresql", "postgresql://u@h/db")
    with pytest.raises(InputError, match="unknown store 's3'"):
        parse_store_url("s3://bucket/x")


def test_settings_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCULI_STORE", raising=False)
    home = tmp_path / "home"
    s = open_store(Settings(home=home))
    assert isinstance(s, LanceStore) and s.root == home / "collections"
    home.mkdir()
    (home / "oculi.toml").write_text('store = "postgresql://oculi:secret@db.example/oculi"\n')
    pg = open_store(Settings(home=home))
    assert isinstance(pg, PgStore) and pg.url == "postgresql://oculi@db.example/oculi"  # no password shown
    monkeypatch.setenv("OCULI_STORE", f"lance://{tmp_path / 'elsewhere'}")  # the environment wins over the file
    s = open_store(Settings(home=home))
    assert isinstance(s, LanceStore) and s.root == tmp_path / "elsewhere"
    (home / "oculi.toml").write_text("store = 3\n")
    monkeypatch.delenv("OCULI_STORE")
    with pytest.raises(ValueError, match="must be a string"):
        Settings(home=home)


def test_cli_store_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oculi.cli.main import app

    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OCULI_STORE", raising=False)
    other = tmp_path / "other"
    LanceStore(other).create_collection("there")
    r = CliRunner().invoke(app, ["--store", str(other), "collections", "--json"])
    assert r.exit_code == 0, r.output
    assert [c["name"] for c in json.loads(r.stdout)["collections"]] == ["there"]
    r = CliRunner().invoke(app, ["--store", "ftp://x", "collections", "--json"])
    assert r.exit_code == 2 and "unknown store" in r.output
    r = CliRunner().invoke(app, ["collections", "--json"])  # the option lasts one invocation
    assert r.exit_code == 0 and json.loads(r.stdout)["collections"] == []
