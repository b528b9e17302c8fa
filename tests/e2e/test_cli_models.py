"""`oculi models`, `--model` / `--config`, and a collection's vector spaces, end to end.

The CLI runs in-process with the deterministic fake perceiver (tests/search_fakes.py) and the
example plugin (examples/oculi-plugin-example) discovered through its entry point from a
``dist-info`` on ``sys.path``; one test runs a fresh interpreter to show discovery there too.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oculi.cli.common as cli_common
from oculi.config import Settings
from oculi.cli.main import app
from tests.plugin_dist import EXAMPLE_SRC, REPO, write_distribution
from tests.search_fakes import FAKE_BACKENDS, fake_env, write_png

CONFIG = """
[models.mean]
backend = "mean-colour"
[models.plain]
backend = "mean-colour"
colour_names = false
"""


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    (h / "oculi.toml").write_text(CONFIG, encoding="utf-8")
    return h


@pytest.fixture()
def cli(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(Settings().assets_dir))  # the real assets, before HOME moves
    monkeypatch.setenv("OCULI_HOME", str(home))
    monkeypatch.setenv("OCULI_BACKEND", json.dumps(FAKE_BACKENDS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(write_distribution(tmp_path / "site")))
    importlib.invalidate_caches()
    monkeypatch.setattr(cli_common, "_engine", None)
    runner = CliRunner()

    def run(*args: object):
        cli_common._engine = None  # each command as in a fresh process (the config is read again)
        return runner.invoke(app, [str(a) for a in args])

    return run


def test_models_lists_configured_models_with_health(cli, home: Path) -> None:
    r = cli("models", "--json", "--no-verify")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    by = {m["name"]: m for m in doc["models"]}
    assert set(by) == {"builtin", "mean", "plain"}
    assert by["mean"]["backend"] == "mean-colour" and by["mean"]["capabilities"] == ["answer", "describe", "embed_image"]
    assert by["mean"]["health"] == {"ok": True, "detail": "loaded"} and by["mean"]["source"] == str(home / "oculi.toml")
    assert by["builtin"]["ok"] and "assets" in doc and doc["config_files"] == [str(home / "oculi.toml")]
    assert doc["tasks"]["chat"] is None and doc["tasks"]["generate_image"] is None  # nothing pretends to chat
    types = {t["type"]: t for t in doc["backend_types"]}
    assert types["mean-colour"]["available"] and types["builtin"]["source"] == "builtin"
    # [tasks] routes caption to a model; a broken table is listed and exits 4
    (home / "oculi.toml").write_text(CONFIG + '[models.bad]\nbackend = "mean-colour"\nsize = "big"\n[tasks]\ncaption = "mean"\n')
    r = cli("models", "--json", "--no-verify", "--no-health")
    assert r.exit_code == 4, r.output
    by = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    assert by["mean"]["serves"] == ["describe"] and by["mean"]["health"] is None
    assert not by["bad"]["ok"] and "size" in by["bad"]["error"]
    r = cli("models", "--no-verify", "--no-health")
    assert r.exit_code == 4 and "model 'bad'" in r.output and "mean-colour" in r.output


def test_caption_and_ask_with_model(cli, tmp_path: Path) -> None:
    img = write_png(tmp_path / "red.png", (210, 30, 30))
    r = cli("caption", img, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == "builtin"
    r = cli("caption", img, "--model", "mean", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["caption"] == "A mostly red image (mean colour rgb(210, 30, 30))." and doc["model"] == "mean-colour:64"
    r = cli("caption", img, "--model", "plain")
    assert "An image whose mean colour is rgb(210, 30, 30)." in r.stdout
    r = cli("ask", img, "What colour is it?", "--model", "mean", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["answer"] == "Red." and json.loads(r.stdout)["model"] == "mean-colour:64"
    # unknown model: one line naming the configured ones, exit 4, no traceback
    r = cli("caption", img, "--model", "nope")
    assert r.exit_code == 4 and "no model named 'nope'" in r.output and "builtin, mean, plain" in r.output
    assert "Traceback" not in r.output
    # --config FILE adds models; a missing file is exit 4
    extra = tmp_path / "more.toml"
    extra.write_text('[models.third]\nbackend = "mean-colour"\n[tasks]\ncaption = "third"\n')
    r = cli("caption", img, "--config", extra, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == "mean-colour:64", r.output
    r = cli("--config", tmp_path / "missing.toml", "caption", img)
    assert r.exit_code == 4 and "missing.toml: no such file" in r.output


def test_collection_refuses_another_embedder_and_reindex(cli, home: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_png(photos / "red.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=1)
    write_png(photos / "blue.png", "blue", labels=[("lake", 0.9)], pattern=2)
    r = cli("index", photos, "-c", "lib", "--json")
    assert r.exit_code == 0, r.output
    stats = json.loads(cli("collections", "show", "lib", "--json").stdout)
    assert stats["vector_spaces"] == {"image": {"model": "fake", "dim": 192}, "text": {"model": "fake", "dim": 64}}
    # the mean-colour model embeds images (3-d): adding to or searching this collection with it is refused
    r = cli("index", photos, "-c", "lib", "--model", "mean")
    assert r.exit_code == 4, r.output
    assert "holds image vectors of fake (192-d)" in r.output and "mean-colour:64 (3-d)" in r.output
    assert "oculi index PATHS -c lib --reindex" in r.output
    r = cli("search", "red", "-c", "lib", "--model", "mean")
    assert r.exit_code == 4 and "--reindex" in r.output
    assert json.loads(cli("search", "red car", "-c", "lib", "--json").stdout)["results"]  # nothing lost
    # re-index with the new model: captions come from it, and the stored observation names it
    r = cli("index", photos, "-c", "lib", "--model", "mean", "--reindex", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 2, r.output
    stats = json.loads(cli("collections", "show", "lib", "--json").stdout)
    assert stats["vector_spaces"]["image"] == {"model": "mean-colour:64", "dim": 3}
    assert stats["models"]["describer"] == "mean-colour:64"
    res = json.loads(cli("search", "red", "-c", "lib", "--model", "mean", "--json").stdout)["results"]
    assert res[0]["caption"].startswith("A mostly red image") and res[0]["path"].endswith("red.png")
    assert res[0]["caption_model"] == "mean-colour:64"  # the search document says which model wrote it
    r = cli("search", "red", "-c", "lib")  # the old embedder is now the other model
    assert r.exit_code == 4 and "holds image vectors of mean-colour:64" in r.output
    # --reindex with a path that does not exist drops nothing
    r = cli("index", tmp_path / "nowhere", "-c", "lib", "--reindex")
    assert r.exit_code == 2
    assert json.loads(cli("collections", "show", "lib", "--json").stdout)["items"] == 2


def test_plugin_discovered_by_a_fresh_interpreter(home: Path, tmp_path: Path) -> None:
    img = write_png(tmp_path / "green.png", (40, 160, 50))
    env = fake_env(home)
    site = write_distribution(tmp_path / "site")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(EXAMPLE_SRC), str(REPO / "src"), str(REPO)])
    r = subprocess.run([sys.executable, "-m", "tests.run_cli_with_fakes", "caption", str(img), "--model", "mean", "--json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["caption"].startswith("A mostly green image")
