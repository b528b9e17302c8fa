"""Damaged collections through the CLI: the failures issue 7 reproduced, now detected, reported
and repaired (`oculi collections check / repair`), with the fake perceiver of tests/search_fakes.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oculi.cli.common as cli_common
from oculi.cli.main import app
from oculi.core.errors import StoreCorruptError
from oculi.store.lance_manifest import read_versions
from tests.search_fakes import FAKE_BACKENDS, PALETTE, write_png

N = 12
DAMAGED = StoreCorruptError.exit_code  # 5


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OCULI_BACKEND", json.dumps(FAKE_BACKENDS))
    monkeypatch.setenv("OCULI_FAKE_LOG", str(tmp_path / "perceived.log"))
    monkeypatch.setattr(cli_common, "_engine", None)
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture()
def indexed(cli, tmp_path: Path) -> Path:
    """A folder of N images indexed into collection "lib"; returns the collection directory."""
    for i in range(N):
        write_png(tmp_path / "photos" / f"img{i:02d}.png", list(PALETTE)[i % len(PALETTE)], pattern=i + 1,
                  labels=[("tabby", 0.8)], text=[f"word{i}"])
    r = cli("index", tmp_path / "photos", "-c", "lib")
    assert r.exit_code == 0, r.output
    return tmp_path / "home" / "collections" / "lib"


def perceived(tmp_path: Path) -> int:
    log = tmp_path / "perceived.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def newest_manifest(coll: Path, table: str = "items") -> Path:
    return sorted((coll / f"{table}.lance" / "_versions").glob("*.manifest"))[0]  # V2 names sort newest first


def items_data_file(coll: Path) -> Path:
    m = read_versions(coll / "items.lance", newest_only=True).latest
    return coll / "items.lance" / m.fragments[0].data_files[0]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name not in (".lock", "latest_version_hint.json")}


def clean(text: str) -> bool:
    return "lance error" not in text.lower() and ".rs:" not in text and "Traceback" not in text


def search_ids(cli, query: str = "tabby") -> list[str]:
    r = cli("search", query, "-c", "lib", "--json", "--top-k", N)
    assert r.exit_code == 0, r.output
    return [x["id"] for x in json.loads(r.stdout)["results"]]


def test_truncated_newest_manifest_is_an_error_not_an_empty_collection(cli, indexed: Path, tmp_path: Path) -> None:
    before = search_ids(cli)
    assert len(before) == N
    m = newest_manifest(indexed)
    m.write_bytes(m.read_bytes()[:100])
    r = cli("collections", "--json")  # listed as damaged, not as 0 items, not hidden
    assert r.exit_code == 0
    (info,) = json.loads(r.stdout)["collections"]
    assert info["status"] == "damaged" and info["items"] is None and "oculi collections repair lib" in info["problem"]
    r = cli("search", "tabby", "-c", "lib")
    assert r.exit_code == DAMAGED and "collection 'lib' is damaged" in r.output and "oculi collections repair lib" in r.output
    assert clean(r.output) and "no results" not in r.output
    stored = files_under(indexed)
    seen = perceived(tmp_path)
    r = cli("index", tmp_path / "photos", "-c", "lib")
    assert r.exit_code == DAMAGED and clean(r.output)
    assert perceived(tmp_path) == seen, "perception ran again on a collection that could not be read"
    assert files_under(indexed) == stored, "index wrote into (or over) a damaged collection"
    r = cli("collections", "check", "lib", "--json")
    assert r.exit_code == DAMAGED
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["damaged"] == ["lib"]
    (d,) = doc["collections"][0]["damage"]
    assert d["kind"] == "manifest" and d["latest"] and "last good one" in d["affects"]
    r = cli("collections", "repair", "lib")
    assert r.exit_code == 0, r.output
    assert "went back to version" in r.output and "lost: nothing" in r.output
    assert sorted(search_ids(cli)) == sorted(before)
    r = cli("collections", "repair", "lib")
    assert r.exit_code == 0 and "nothing to repair" in r.output
    assert cli("collections", "check").exit_code == 0


def test_truncated_data_file_is_repaired_by_reindexing_the_sources(cli, indexed: Path, tmp_path: Path) -> None:
    before = search_ids(cli)
    f = items_data_file(indexed)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    for args in (("search", "tabby", "-c", "lib"), ("collections", "show", "lib"), ("duplicates", "-c", "lib")):
        r = cli(*args)
        assert r.exit_code == DAMAGED and "oculi collections repair lib" in r.output and clean(r.output), (args, r.output)
    seen = perceived(tmp_path)
    r = cli("collections", "repair", "lib", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["status"] == "ok" and rep["rows_lost"] == {"items": N} and rep["rederived"] == N
    assert rep["lost_paths"] == [] and rep["lost_unknown"] == 0 and rep["quarantine"].startswith(".damaged/")
    assert (indexed / rep["quarantine"] / f.relative_to(indexed)).is_file()  # set aside, not deleted
    assert perceived(tmp_path) - seen == N
    assert sorted(search_ids(cli)) == sorted(before)
    assert cli("collections", "repair", "lib").output.strip().endswith("nothing to repair")


def test_files_whose_sources_are_gone_are_reported_lost(cli, indexed: Path, tmp_path: Path) -> None:
    f = items_data_file(indexed)
    f.unlink()
    gone = tmp_path / "photos" / "img03.png"
    gone.unlink()
    r = cli("collections", "repair", "lib", "--json")
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["lost_paths"] == [str(gone)] and rep["rederived"] == N - 1
    r = cli("collections", "repair", "lib")
    assert "nothing to repair" in r.output


def test_silent_4k_overwrite_is_found_by_check(cli, indexed: Path) -> None:
    f = items_data_file(indexed)
    data = bytearray(f.read_bytes())
    mid = len(data) // 2 - 2048
    data[mid : mid + 4096] = random.Random(3).randbytes(4096)
    f.write_bytes(bytes(data))
    r = cli("collections")  # same size and end marker: only the checksums can tell
    assert r.exit_code == 0
    r = cli("collections", "check", "--json")
    assert r.exit_code == DAMAGED
    (d,) = json.loads(r.stdout)["collections"][0]["damage"]
    assert d["kind"] == "data" and "checksum mismatch" in d["problem"] and d["rows"] == N
    r = cli("collections", "check")
    assert "damaged" in r.output and "fix: oculi collections repair lib" in r.output
    r = cli("collections", "repair", "lib", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rederived"] == N
    assert cli("collections", "check").exit_code == 0


def test_reindexing_rebuilds_a_damaged_full_text_index(cli, indexed: Path, tmp_path: Path) -> None:
    for p in (indexed / "items.lance" / "_indices").rglob("*.lance"):
        p.write_bytes(p.read_bytes()[:10])
    r = cli("search", "word3", "-c", "lib")
    assert r.exit_code == DAMAGED and clean(r.output)
    seen = perceived(tmp_path)
    r = cli("index", tmp_path / "photos", "-c", "lib")
    assert r.exit_code == 0, r.output
    assert perceived(tmp_path) == seen  # the index is derived data: rebuilt without perceiving anything
    r = cli("search", "word3", "-c", "lib", "--json", "--top-k", 1)
    assert r.exit_code == 0 and json.loads(r.stdout)["results"][0]["path"].endswith("img03.png")


def test_garbled_collection_json_is_listed_repaired_and_droppable(cli, indexed: Path, tmp_path: Path) -> None:
    (indexed / "collection.json").write_text("{garbage")
    r = cli("collections", "--json")
    (info,) = json.loads(r.stdout)["collections"]
    assert info["name"] == "lib" and info["status"] == "damaged" and "collection.json" in info["problem"]
    r = cli("collections")
    assert "lib" in r.output and "damaged" in r.output
    r = cli("collections", "repair", "lib")
    assert r.exit_code == 0 and "rebuilt collection.json" in r.output
    meta = json.loads((indexed / "collection.json").read_text())
    assert meta["text_dim"] == 64 and meta["image_dim"] == 192 and meta["models"] == {"fake": "1", "describer": "builtin"}
    assert len(search_ids(cli)) == N
    (indexed / "collection.json").write_text("")
    r = cli("collections", "drop", "lib", "--yes")
    assert r.exit_code == 0 and not indexed.exists()


def test_leftover_temporary_files_are_reported_then_removed_by_the_next_write(cli, indexed: Path, tmp_path: Path) -> None:
    left = [indexed / ".collection.json.0123abcd.tmp", indexed / "items.lance" / "_versions" / "9.manifest-1b2c",
            indexed / "items.lance" / "data" / "abc.lance#3", indexed / "blobs" / "ab" / ".x.jpg.99.tmp"]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    r = cli("collections", "check", "lib", "--json")
    assert r.exit_code == 0  # not damage
    assert any("temporary file" in n for n in json.loads(r.stdout)["collections"][0]["notes"])
    write_png(tmp_path / "photos" / "new.png", "blue", pattern=99)
    assert cli("index", tmp_path / "photos", "-c", "lib").exit_code == 0
    assert not any(p.exists() for p in left)
