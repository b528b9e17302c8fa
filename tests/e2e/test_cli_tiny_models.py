"""The CLI with user-brought ``transformers`` models: tiny random-weight folders built in the test
(a LLaVA-style VLM and a CLIP) configured in ``oculi.toml`` and used through ``--model`` and
``[tasks]`` for caption, ask, zero-shot classify (``[tasks] classify``), indexing (the stored caption is written by the
VLM and names it) and search (the CLIP's vectors: an image finds itself first). Perception for
indexing is the deterministic fake perceiver (tests/search_fakes.py), so no built-in assets are needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oculi.cli.common as cli_common
from oculi.cli.main import app
from tests.search_fakes import FAKE_BACKENDS, write_png

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.tiny_models import build_tiny_clip, build_tiny_llava

    root = tmp_path_factory.mktemp("tiny-models")
    return {"vlm": build_tiny_llava(root / "tiny-llava"), "clip": build_tiny_clip(root / "tiny-clip")}


@pytest.fixture()
def cli(folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "oculi.toml").write_text(
        f'[models.vlm]\nbackend = "transformers"\npath = "{folders["vlm"]}"\ndevice = "cpu"\nmax_new_tokens = 8\n'
        f'[models.clip]\nbackend = "transformers"\npath = "{folders["clip"]}"\nkind = "clip"\n'
        '[tasks]\ndescribe = "vlm"\nembed_image = "clip"\nembed_text = "clip"\nclassify = "clip"\n', encoding="utf-8")
    monkeypatch.setenv("OCULI_HOME", str(home))
    monkeypatch.setenv("OCULI_BACKEND", json.dumps({"observe": FAKE_BACKENDS["observe"]}))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: object):
        cli_common._engine = None
        return runner.invoke(app, [str(a) for a in args])

    return run


def test_caption_ask_classify_with_brought_models(cli, tmp_path: Path) -> None:
    img = write_png(tmp_path / "red.png", "red", objects=[{"label": "car", "colour": "red"}])
    r = cli("caption", img, "--model", "vlm", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["model"] == "transformers:tiny-llava" and doc["caption"].strip()
    r = cli("ask", img, "what colour is this ?", "--model", "vlm", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["answer"].strip() and doc["model"] == "transformers:tiny-llava" and 0 < doc["confidence"] <= 1
    r = cli("classify", img, "--labels", "cat,dog,car", "--json")  # [tasks] classify = "clip"
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout)["scores"]
    assert sorted(s["label"] for s in scores) == ["car", "cat", "dog"] and abs(sum(s["score"] for s in scores) - 1) < 1e-3
    r2 = cli("classify", img, "--labels", "cat,dog,car", "--model", "clip", "--json")
    assert r2.exit_code == 0 and json.loads(r2.stdout)["scores"] == scores, r2.output
    r = cli("caption", img, "--model", "clip")  # an embedder cannot caption: exit 4, naming what it serves
    assert r.exit_code == 4 and "classify" in r.output


def test_index_and_search_with_a_brought_embedder_and_describer(cli, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i, colour in enumerate(("red", "blue", "green"), 1):
        write_png(photos / f"{colour}.png", colour, labels=[("thing", 0.9)], pattern=i)
    r = cli("index", photos, "-c", "tiny", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 3
    stats = json.loads(cli("collections", "show", "tiny", "--json").stdout)
    assert stats["vector_spaces"]["image"] == {"model": "transformers:tiny-clip", "dim": 16}
    assert stats["models"]["describer"] == "transformers:tiny-llava"
    r = cli("search", "--image", photos / "blue.png", "-c", "tiny", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert res[0]["path"].endswith("blue.png")  # the same image's CLIP vector is its own nearest
    assert res[0]["caption_model"] == "transformers:tiny-llava" and res[0]["caption"].strip()
    r = cli("search", "a red cat", "-c", "tiny", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) >= 1, r.output


def test_repair_of_a_garbled_collection_json_keeps_a_brought_embedders_space(cli, folders: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    """collection.json holds which model made the vectors; a garbled one is rebuilt by repair from
    the tables, and the items' own record of their vectors' models: the collection still refuses
    another embedder's vectors (here the same weights under another name: another model id)."""
    photos = tmp_path / "photos"
    for i, colour in enumerate(("red", "blue"), 1):
        write_png(photos / f"{colour}.png", colour, labels=[("thing", 0.9)], pattern=i)
    assert cli("index", photos, "-c", "tiny", "--json").exit_code == 0
    want = json.loads(cli("collections", "show", "tiny", "--json").stdout)["vector_spaces"]
    assert want["image"] == {"model": "transformers:tiny-clip", "dim": 16}
    meta = tmp_path / "home" / "collections" / "tiny" / "collection.json"
    meta.write_bytes(bytes(b ^ 0x5A for b in meta.read_bytes()))  # garbled, same size
    r = cli("collections", "repair", "tiny", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(cli("collections", "show", "tiny", "--json").stdout)["vector_spaces"] == want
    other = tmp_path / "other-clip"
    other.symlink_to(folders["clip"], target_is_directory=True)
    toml = tmp_path / "home" / "oculi.toml"
    toml.write_text(toml.read_text().replace(str(folders["clip"]), str(other)), encoding="utf-8")
    write_png(photos / "green.png", "green", labels=[("thing", 0.9)], pattern=3)
    r = cli("index", photos, "-c", "tiny")
    assert r.exit_code == 4 and "transformers:tiny-clip" in r.output and "--reindex" in r.output, r.output
