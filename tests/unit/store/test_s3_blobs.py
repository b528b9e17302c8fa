"""Uploads in an S3-compatible bucket (``oculi.store.s3_blobs``) on a real S3 server on loopback
(``moto[server]``), beyond the store contract (which runs over S3 blobs too, in
``test_store_contract.py``): the setting, hostile names, a server that is down, damage found by
``collections check``, the download cache, and ``migrate`` into and out of a bucket."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.config import Settings
from oculi.core.errors import InputError, NotFoundError, StoreCorruptError, StoreUnavailableError
from oculi.store import open_store
from oculi.store.blobs import DirectoryBlobStore, content_key, open_blob_root, parse_blobs_url
from oculi.store.s3_blobs import S3BlobRoot, S3BlobStore
from tests.pgutil import pg_database
from tests.s3util import TEST_CREDENTIALS, make_bucket, s3_client, start_server
from tests.store_contract import files_for, item


def _key(data: bytes, ext: str = ".png") -> str:
    return content_key(hashlib.sha256(data).hexdigest(), ext)


def test_blobs_setting_from_env_toml_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("OCULI_BLOBS", "OCULI_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    home = tmp_path / "home"
    s = Settings(home=home)
    assert s.blobs is None and s.s3_endpoint is None and open_blob_root(s) is None  # default: in the store
    home.mkdir()
    (home / "oculi.toml").write_text('blobs = "s3://team-photos/oculi/prod"\n')
    root = open_blob_root(Settings(home=home))
    assert isinstance(root, S3BlobRoot) and (root.bucket, root.prefix, root.endpoint_url) == ("team-photos", "oculi/prod", None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")  # the standard variable...
    assert Settings(home=home).s3_endpoint == "http://minio:9000"
    monkeypatch.setenv("OCULI_S3_ENDPOINT", "http://other:9000")  # ...and oculi's own, which wins
    assert open_blob_root(Settings(home=home)).endpoint_url == "http://other:9000"  # type: ignore[union-attr]
    monkeypatch.setenv("OCULI_BLOBS", str(tmp_path / "shared"))  # the environment wins over the file
    store = open_store(Settings(home=home))
    store.create_collection("c")
    b = store.blobs("c")
    assert isinstance(b, DirectoryBlobStore) and b.root == tmp_path / "shared" / "c"
    monkeypatch.setenv("OCULI_BLOBS", "store")
    assert isinstance(open_store(Settings(home=home)).blobs("c"), DirectoryBlobStore)
    assert open_store(Settings(home=home)).blobs("c").root == home / "collections" / "c" / "blobs"  # type: ignore[attr-defined]
    (home / "oculi.toml").write_text("blobs = 3\n")
    monkeypatch.delenv("OCULI_BLOBS")
    with pytest.raises(ValueError, match="'blobs' must be a string"):
        Settings(home=home)


def test_cli_blobs_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oculi.cli.main import app

    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OCULI_BLOBS", raising=False)
    r = CliRunner().invoke(app, ["--blobs", "ftp://x/y", "collections", "--json"])
    assert r.exit_code == 2 and "unknown blob store 'ftp'" in r.output
    r = CliRunner().invoke(app, ["--blobs", "s3://Not_A_Bucket/x", "collections", "--json"])
    assert r.exit_code == 2 and "invalid S3 bucket name" in r.output
    r = CliRunner().invoke(app, ["collections", "--json"])  # the option lasts one invocation
    assert r.exit_code == 0


@pytest.mark.parametrize("url", ["s3://ab/x", "s3://UPPER/x", "s3://a..b/x", "s3://bucket/../etc", "s3://bucket/a/.hidden",
                                 "s3://bucket/a b", "s3://-bucket/x", "s3:///x", "gs://bucket/x"])
def test_hostile_blob_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        open_blob_root(Settings(home=tmp_path, read_config_files=False), url)


def test_parse() -> None:
    assert parse_blobs_url("s3://b/p/q/") == ("s3", "b/p/q")
    assert parse_blobs_url("file:///srv/blobs") == ("dir", "/srv/blobs")
    assert parse_blobs_url(" store ") == ("store", "")


def test_hostile_collection_names_never_become_object_keys(s3_blobs: str, tmp_path: Path) -> None:
    root = open_blob_root(Settings(home=tmp_path))
    for bad in ("..", "../other", "a/b", ".x", ""):
        with pytest.raises(InputError):
            root.collection(bad)  # type: ignore[union-attr]


def test_damage_is_found_by_check_and_refused_by_the_cache(s3_blobs: str, s3_server: str, tmp_path: Path) -> None:
    from oculi.cli.main import app

    store = open_store(url=f"lance://{tmp_path / 'c'}")
    store.create_collection("up")
    b = store.blobs("up")
    good, bad = b"\x89PNG good " * 30, b"\x89PNG will change " * 30
    b.put(_key(good), good)
    b.put(_key(bad), bad)
    r = CliRunner().invoke(app, ["--store", str(tmp_path / "c"), "collections", "check", "up", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["collections"][0]["blobs_checked"] == 2
    bucket, prefix = s3_blobs[len("s3://"):].split("/", 1)
    s3_client(s3_server).put_object(Bucket=bucket, Key=f"{prefix}/up/{_key(bad)}", Body=b"something else")  # behind oculi's back
    r = CliRunner().invoke(app, ["--store", str(tmp_path / "c"), "collections", "check", "up", "--json"])
    assert r.exit_code == 5, r.output
    [dmg] = json.loads(r.stdout)["collections"][0]["damage"]
    assert dmg["kind"] == "blob" and dmg["path"] == f"{s3_blobs}/up/{_key(bad)}" and "checksum" in dmg["problem"]
    with pytest.raises(StoreCorruptError, match="does not match its checksum"):
        b.local_path(_key(bad))
    assert b.local_path(_key(good)).read_bytes() == good
    assert [p.name for p in b.local_path(_key(good)).parent.iterdir()] == [Path(_key(good)).name]  # no temporary left
    # repair sets the changed object aside (its original cannot be re-derived) and says so
    r = CliRunner().invoke(app, ["--store", str(tmp_path / "c"), "collections", "repair", "up", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["lost_originals"] == [f"{s3_blobs}/up/{_key(bad)}"] and doc["before"]["damage"][0]["kind"] == "blob"
    assert doc["after"]["damage"] == []
    aside = s3_client(s3_server).get_object(Bucket=bucket, Key=f"{prefix}/.damaged/up/{_key(bad)}")["Body"].read()
    assert aside == b"something else" and list(b.keys()) == [_key(good)]
    r = CliRunner().invoke(app, ["--store", str(tmp_path / "c"), "collections", "check", "up", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["collections"][0]["blobs_checked"] == 1


def test_large_streams_are_multipart_and_never_put_twice(s3_blobs: str, s3_server: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from oculi.store import s3_blobs as mod

    monkeypatch.setattr(mod, "MULTIPART_BYTES", 5 * 1024 * 1024)  # S3's smallest part
    b = open_blob_root(Settings(home=tmp_path)).collection("videos")  # type: ignore[union-attr]
    data = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32)  # 12 MB: three parts
    key = content_key(hashlib.sha256(data).hexdigest(), ".mp4", folder="videos")
    where = b.put_stream(key, io.BytesIO(data))
    bucket = s3_blobs[len("s3://"):].split("/", 1)[0]
    head = s3_client(s3_server).head_object(Bucket=bucket, Key=where.split("/", 3)[3])
    assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-3")  # a three-part upload
    cached = b.local_path(key)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == key.split("/")[1].split(".")[0]
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary left
    # the upload filled the cache as it went: no GET was needed (an object changed behind oculi's
    # back would not be seen by a copy that came from a GET either; check reads the bucket)
    bucket_key = where.split("/", 3)[3]
    s3_client(s3_server).put_object(Bucket=bucket, Key=bucket_key, Body=b"changed")
    assert b.local_path(key).read_bytes() == data

    class NoRead(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise AssertionError("the stream of a blob that is there is not read")

    assert b.put_stream(key, NoRead()) == where


def test_a_server_that_is_down_is_one_clear_error_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oculi.cli.main import app
    from tests.search_fakes import fake_engine, write_png

    srv, endpoint = start_server()
    bucket = make_bucket(endpoint)
    for k, v in {**TEST_CREDENTIALS, "OCULI_S3_ENDPOINT": endpoint, "OCULI_BLOBS": f"s3://{bucket}"}.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    from oculi.library import Library

    lib = Library(fake_engine(home))
    a = write_png(tmp_path / "a.png", "red").read_bytes()
    assert lib.ingest("photos", [("a.png", a)]).added == 1
    srv.stop()
    try:
        b = write_png(tmp_path / "b.png", "blue").read_bytes()
        with pytest.raises(StoreUnavailableError, match=f"cannot reach the blob store s3://{bucket} at {endpoint}"):
            lib.ingest("photos", [("b.png", b)])
        assert lib.open("photos").count() == 1  # no item without its original
        with pytest.raises(StoreUnavailableError):
            lib.store.blobs("photos").get(_key(a))
        monkeypatch.setenv("OCULI_HOME", str(home))
        r = CliRunner().invoke(app, ["collections", "check", "photos"])
        assert r.exit_code == 7, r.output
        assert "cannot reach the blob store" in r.output and endpoint in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1
    finally:
        srv, _ = start_server(int(endpoint.rsplit(":", 1)[1]))  # back on the same port, with its buckets
    try:
        assert lib.store.blobs("photos").get(_key(a)) == a
        assert lib.ingest("photos", [("b.png", b)]).added == 1 and lib.open("photos").count() == 2
    finally:
        srv.stop()


def test_a_bucket_that_does_not_exist_or_refuses_says_so(s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in TEST_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    b = S3BlobRoot("no-such-bucket", "", endpoint_url=s3_server, cache_dir=tmp_path).collection("c")
    with pytest.raises(StoreUnavailableError, match="does not exist: create it"):
        b.put("ab/x.png", b"x")
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        list(b.keys())


def test_migrate_embedded_uploads_into_postgresql_with_an_s3_bucket_and_back(s3_blobs: str, pg_server: str,
                                                                          tmp_path: Path) -> None:
    """The configured blobs (here OCULI_BLOBS=s3://...) are the destination's; the source keeps
    its own (--from-blobs, default: store)."""
    from oculi.cli.main import app

    src = open_store(url=f"lance://{tmp_path / 'a'}", blobs="store")
    c = src.create_collection("photos")
    data = b"\x89PNG an uploaded original"
    where = src.blobs("photos").put(_key(data), data)
    items = [item(i) for i in range(5)] + [item(99, path=where, name="upload.png")]
    with c.writer():
        c.add_items(items)
        c.upsert_files(files_for(items))
    with pg_database(pg_server, f"m_{uuid.uuid4().hex[:12]}") as url:
        r = CliRunner().invoke(app, ["migrate", "--from", str(tmp_path / "a"), "--to", url, "--json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["source_blobs"] == "store" and doc["destination_blobs"] == s3_blobs
        assert doc["ok"] and doc["collections"][0]["blobs_copied"] == 1
        pg = open_store(url=url)
        assert isinstance(pg.blobs("photos"), S3BlobStore)
        path = pg.open_collection("photos").get_items([item(99).id])[0]["path"]
        assert path == f"{s3_blobs}/photos/{_key(data)}" and pg.blobs("photos").get(_key(data)) == data
        assert pg.check_collection("photos").blobs_checked == 1
        r = CliRunner().invoke(app, ["migrate", "--from", str(tmp_path / "a"), "--to", url, "--json"])  # resumes
        assert json.loads(r.stdout)["collections"][0]["blobs_present"] == 1
        # and out again, into an embedded store with its own folder
        r = CliRunner().invoke(app, ["migrate", "--from", url, "--from-blobs", s3_blobs, "--to", str(tmp_path / "b"),
                                     "--to-blobs", "store", "--json"])
        assert r.exit_code == 0, r.output
        back = open_store(url=f"lance://{tmp_path / 'b'}", blobs="store").open_collection("photos")
        assert Path(back.get_items([item(99).id])[0]["path"]).read_bytes() == data
        pg.close()


def test_dropping_a_collection_leaves_a_shared_bucket_alone(s3_blobs: str, tmp_path: Path) -> None:
    """Two stores (a migration's two sides, replicas) can name the same bucket: a drop in one
    must not take the other's uploads."""
    one = open_store(url=f"lance://{tmp_path / 'one'}")
    two = open_store(url=f"lance://{tmp_path / 'two'}")
    one.create_collection("photos")
    two.create_collection("photos")
    data = b"shared bytes"
    one.blobs("photos").put(_key(data), data)
    assert two.blobs("photos").exists(_key(data))
    one.drop_collection("photos")
    assert two.blobs("photos").get(_key(data)) == data
    with pytest.raises(NotFoundError):
        two.blobs("photos").get(_key(b"never put"))


def test_postgresql_store_with_s3_blobs_checks_and_repairs_them(s3_blobs: str, s3_server: str, pg_server: str) -> None:
    with pg_database(pg_server, f"r_{uuid.uuid4().hex[:12]}") as url:
        pg = open_store(url=url)
        pg.create_collection("up")
        b = pg.blobs("up")
        assert isinstance(b, S3BlobStore)
        data = b"\x89PNG in a bucket " * 40
        b.put(_key(data), data)
        assert pg.check_collection("up").ok and pg.check_collection("up").blobs_checked == 1
        assert pg.conn().execute("SELECT count(*) FROM oculi_blobs").fetchone()[0] == 0  # not in the database
        bucket, prefix = s3_blobs[len("s3://"):].split("/", 1)
        s3_client(s3_server).put_object(Bucket=bucket, Key=f"{prefix}/up/{_key(data)}", Body=b"truncated")
        chk = pg.check_collection("up")
        assert not chk.ok and [d.kind for d in chk.damage] == ["blob"]
        rep = pg.repair_collection("up")
        assert rep.lost_originals == [f"{s3_blobs}/up/{_key(data)}"] and len(rep.before.damage) == 1  # type: ignore[union-attr]
        assert pg.check_collection("up").ok and list(b.keys()) == []
        pg.close()


def test_the_download_cache_stays_within_its_bound_deleting_the_least_recently_used(
        s3_blobs: str, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCULI_S3_CACHE_MB", "3")
    settings = Settings(home=tmp_path / "home")
    assert settings.s3_cache_mb == 3 and Settings(home=tmp_path / "h2", s3_cache_mb=7).s3_cache_mb == 7
    with pytest.raises(ValueError):
        Settings(home=tmp_path / "h3", s3_cache_mb=-1)
    root = open_blob_root(settings)
    assert isinstance(root, S3BlobRoot) and root.cache_bytes == 3 << 20
    b = root.collection("up")
    mb = 1 << 20
    blobs = {n: bytes([n]) * mb + n.to_bytes(1, "big") * 10 for n in range(1, 6)}  # ~1 MB each
    keys = {n: _key(data, ".mp4") for n, data in blobs.items()}
    for n in (1, 2, 3, 4):
        b.put(keys[n], blobs[n])

    def cached() -> set[int]:
        return {n for n, k in keys.items() if b._cache_path(k).is_file()}

    def cache_size() -> int:
        return sum(p.stat().st_size for p in root.cache_root.rglob("*") if p.is_file())

    for n in (1, 2):
        assert b.local_path(keys[n]).read_bytes() == blobs[n]
    assert b.local_path(keys[1]).read_bytes() == blobs[1]  # used again: 2 is now the least recently used
    assert b.local_path(keys[3]).read_bytes() == blobs[3]  # 3 MB do not fit 1+2+3: 2 goes
    assert cached() == {1, 3} and cache_size() <= 3 << 20
    assert b.get(keys[2]) == blobs[2]  # the bucket keeps what the cache let go...
    assert b.local_path(keys[2]).read_bytes() == blobs[2]  # ...and it comes back on demand, 1 going now
    assert cached() == {2, 3} and cache_size() <= 3 << 20

    # an upload's copy is cached too, within the bound (3, used before 2, goes)
    b.put_stream(keys[5], io.BytesIO(blobs[5]))
    assert cached() == {2, 5} and cache_size() <= 3 << 20
    assert b.local_path(keys[5]).read_bytes() == blobs[5]

    # a file larger than the whole bound is still handed over (kept alone), the others make way
    root.cache_bytes = mb // 2
    assert b.local_path(keys[4]).read_bytes() == blobs[4]
    assert cached() == {4}
    assert {k for k in b.keys()} == set(keys.values())  # nothing left the bucket


def test_copies_another_process_cached_count_toward_the_bound(s3_blobs: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from oculi.store import blobs as blobmod

    monkeypatch.setattr(blobmod, "CACHE_RESCAN_S", 0.0)  # count the files on every download
    root = open_blob_root(Settings(home=tmp_path / "home", s3_cache_mb=2))
    b = root.collection("up")  # type: ignore[union-attr]
    data = b"\x00video" * (150 * 1024)  # ~0.9 MB
    b.put(_key(data, ".mp4"), data)
    other = root.cache_dir / "up" / "videos" / ("e" * 64 + ".mp4")  # type: ignore[union-attr]
    other.parent.mkdir(parents=True)
    other.write_bytes(b"\x01" * (1536 * 1024))  # 1.5 MB another process downloaded earlier
    os.utime(other, ns=(1, 1))
    assert b.local_path(_key(data, ".mp4")).read_bytes() == data
    assert not other.exists()  # 1.5 + 0.9 MB > 2 MB: the older copy made room
