"""``oculi migrate``: embedded → PostgreSQL → embedded, verified, resumable after an interruption."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.core.errors import InputError, NotFoundError
from oculi.store import open_store
from oculi.store.blobs import content_key
from oculi.store import migrate as migrate_mod
from oculi.store.migrate import fingerprint, migrate
from tests.pgutil import pg_database
from tests.store_contract import event, files_for, item, source


def _fill(store, name: str = "photos", n: int = 40) -> None:
    c = store.create_collection(name)
    blobs = store.blobs(name)
    data = b"\x89PNG original bytes"
    where = blobs.put(content_key(hashlib.sha256(data).hexdigest(), ".png"), data)
    items = [item(i) for i in range(n)] + [item(999, path=where, name="upload.png")]
    src = source()
    with c.writer():
        c.add_items(items)
        c.upsert_files(files_for(items))
        c.set_models({"sentence": "minilm"})
        c.set_vector_spaces({"text": {"model": "minilm", "dim": 16}, "image": {"model": "effnet", "dim": 24}})
        c.upsert_records([src])
        c.upsert_records([event(src, "appear", 1_800_000_010.0)])


@pytest.fixture()
def pg_url(pg_server: str):
    with pg_database(pg_server, f"m_{uuid.uuid4().hex[:12]}") as url:
        yield url


def test_lance_to_pg_and_back_is_verified_and_blob_paths_follow(tmp_path: Path, pg_url: str) -> None:
    lance = open_store(url=f"lance://{tmp_path / 'a'}")
    _fill(lance)
    rep = migrate(lance, open_store(url=pg_url))
    assert rep.ok and rep.collections[0].items_copied == 41 and rep.collections[0].blobs_copied == 1
    assert rep.collections[0].counts == {"items": 41, "files": 41, "sources": 1, "tracks": 0, "events": 1}
    pg = open_store(url=pg_url)
    c = pg.open_collection("photos")
    assert c.models() == {"sentence": "minilm"}
    assert c.vector_spaces() == {"text": {"model": "minilm", "dim": 16}, "image": {"model": "effnet", "dim": 24}}
    up = c.get_items([item(999).id])[0]["path"]
    assert up.startswith("postgresql://") and pg.blobs("photos").get(up.rsplit("/blobs/", 1)[1]) == b"\x89PNG original bytes"
    # and back into a second embedded store: identical content to the original
    back = open_store(url=f"lance://{tmp_path / 'b'}")
    assert migrate(pg, back).ok
    sums_a, _ = fingerprint(lance.open_collection("photos"), {})
    sums_b, _ = fingerprint(back.open_collection("photos"), {})
    assert {k: v for k, v in sums_a.items() if k not in ("items", "files")} == \
           {k: v for k, v in sums_b.items() if k not in ("items", "files")}
    assert back.open_collection("photos").get_items([item(999).id])[0]["path"].endswith(".png")
    assert Path(back.open_collection("photos").get_items([item(999).id])[0]["path"]).read_bytes() == b"\x89PNG original bytes"


def test_an_interrupted_migration_resumes(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lance = open_store(url=f"lance://{tmp_path / 'a'}")
    _fill(lance, n=60)
    monkeypatch.setattr(migrate_mod, "ITEM_BATCH", 16)

    def stop_after_two_batches(name: str, phase: str, done: int, total: int) -> None:
        if phase == "items" and done >= 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(lance, open_store(url=pg_url), progress=stop_after_two_batches)
    assert 0 < open_store(url=pg_url).open_collection("photos").count() < 61
    rep = migrate(lance, open_store(url=pg_url))
    c = rep.collections[0]
    assert rep.ok and c.items_present >= 32 and c.items_copied + c.items_present == 61


def test_bad_requests(tmp_path: Path, pg_url: str) -> None:
    lance = open_store(url=f"lance://{tmp_path / 'a'}")
    _fill(lance, n=3)
    with pytest.raises(NotFoundError):
        migrate(lance, open_store(url=pg_url), ["nope"])
    with pytest.raises(InputError, match="same store"):
        migrate(lance, open_store(url=f"lance://{tmp_path / 'a'}"))
    assert open_store(url=pg_url).names() == []  # nothing was created


def test_cli_json_and_exit_codes(tmp_path: Path, pg_url: str) -> None:
    from oculi.cli.main import app

    lance = open_store(url=f"lance://{tmp_path / 'a'}")
    _fill(lance, n=5)
    _fill(lance, name="other", n=2)
    runner = CliRunner()
    r = runner.invoke(app, ["migrate", "--from", str(tmp_path / "a"), "--to", pg_url, "--collection", "photos", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == "1.1" and doc["ok"] and doc["source_blobs"] == doc["destination_blobs"] == "store" and [c["name"] for c in doc["collections"]] == ["photos"]
    assert doc["collections"][0]["counts"]["items"] == 6 and len(doc["collections"][0]["checksums"]["items"]) == 64
    assert open_store(url=pg_url).names() == ["photos"]
    r = runner.invoke(app, ["migrate", "--from", str(tmp_path / "a"), "--to", pg_url, "--json"])  # resumes, adds "other"
    doc = json.loads(r.stdout)
    by = {c["name"]: c for c in doc["collections"]}
    assert r.exit_code == 0 and by["photos"]["items_present"] == 6 and by["other"]["items_copied"] == 3
    r = runner.invoke(app, ["migrate", "--from", str(tmp_path / "a"), "--to", pg_url, "--collection", "nope"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["migrate", "--from", "s3://bucket", "--to", pg_url])
    assert r.exit_code == 2 and "unknown store" in r.output
