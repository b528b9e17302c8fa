"""The PostgreSQL store's local copies of blob rows (``local_path``, for readers that need a
file) stay within the same bound as the S3 cache: least recently used first, the database keeps
every blob."""

from __future__ import annotations

import hashlib
from pathlib import Path

from oculi.config import Settings
from oculi.store import open_store
from oculi.store.blobs import content_key
from tests.pgutil import pg_database


def test_pg_blob_copies_stay_within_the_cache_bound(pg_server: str, tmp_path: Path) -> None:
    mb = 1 << 20
    with pg_database(pg_server, "blobcache") as url:
        store = open_store(Settings(home=tmp_path / "home", store=url, s3_cache_mb=2))
        store.create_collection("clips")
        b = store.blobs("clips")
        blobs = {n: bytes([n]) * (mb - 1000) for n in range(1, 4)}  # just under 1 MB each
        keys = {n: content_key(hashlib.sha256(d).hexdigest(), ".mp4") for n, d in blobs.items()}
        for n, d in blobs.items():
            b.put(keys[n], d)

        def cached() -> set[int]:
            root = tmp_path / "home" / "cache" / "pg-blobs"
            names = {p.name for p in root.rglob("*.mp4")}
            return {n for n, k in keys.items() if Path(k).name in names}

        assert b.local_path(keys[1]).read_bytes() == blobs[1]
        assert b.local_path(keys[2]).read_bytes() == blobs[2]
        assert cached() == {1, 2}
        assert b.local_path(keys[1]).read_bytes() == blobs[1]  # used again: 2 is now the least recently used
        assert b.local_path(keys[3]).read_bytes() == blobs[3]  # 3 x ~1 MB do not fit in 2 MB: 2 goes
        assert cached() == {1, 3}
        assert b.get(keys[2]) == blobs[2] and b.local_path(keys[2]).read_bytes() == blobs[2]  # the database kept it
        assert cached() == {2, 3}
        store.close()
