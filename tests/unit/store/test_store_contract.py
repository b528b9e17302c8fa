"""The store contract (``tests/store_contract.py``) run against every store: the embedded
LanceDB store and PostgreSQL + pgvector (a real server the tests start from the ``pgserver``
package: PostgreSQL 16 with pgvector, no system install), each with its own blobs and with its
uploads in an S3-compatible bucket (``OCULI_BLOBS=s3://...``; a real S3 server on loopback from
the ``moto[server]`` package)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.pgutil import pg_database
from tests.store_contract import StoreContract


class TestLanceStore(StoreContract):
    @pytest.fixture()
    def store_url(self, tmp_path: Path) -> str:
        return f"lance://{tmp_path / 'collections'}"


class TestPgStore(StoreContract):
    @pytest.fixture()
    def store_url(self, pg_server: str) -> Iterator[str]:
        with pg_database(pg_server, f"t_{uuid.uuid4().hex[:12]}") as url:
            yield url


class TestLanceStoreS3Blobs(StoreContract):
    @pytest.fixture()
    def store_url(self, tmp_path: Path, s3_blobs: str) -> str:
        return f"lance://{tmp_path / 'collections'}"


class TestPgStoreS3Blobs(StoreContract):
    @pytest.fixture()
    def store_url(self, pg_server: str, s3_blobs: str) -> Iterator[str]:
        with pg_database(pg_server, f"t_{uuid.uuid4().hex[:12]}") as url:
            yield url


def test_pg_filtered_hnsw_search_falls_back_to_exact_when_the_filter_eats_the_candidates(
        pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the HNSW path (as if the filter matched more than ``EXACT_MAX`` rows): a filter
    that keeps 2% of the rows still yields k rows, the true nearest ones."""
    import numpy as np

    from oculi.store import Condition, Filter, Op, open_store
    from oculi.store import pg_store
    from tests.store_contract import TD, files_for, item, vec

    monkeypatch.setattr(pg_store, "EXACT_MAX", 0)
    with pg_database(pg_server, f"t_{uuid.uuid4().hex[:12]}") as url:
        c = open_store(url=url).create_collection("many")
        items = [item(n, objects=("cat",) if n % 50 == 0 else ("cup",)) for n in range(1000)]
        with c.writer():
            c.add_items(items)
            c.upsert_files(files_for(items))
            c.optimize(force_ann=True)
        assert any(ix["type"] == "HNSW" for ix in c.indices())
        q = vec(77, TD)
        hits = c.vector_search(q, column="text_vec", k=15, filter=Filter((Condition("objects", Op.HAS, "cat"),)))
        cats = sorted((it for it in items if "cat" in it.objects), key=lambda it: -float(np.dot(it.text_vec, q)))
        assert [h.id for h in hits] == [it.id for it in cats[:15]]
        unfiltered = c.vector_search(q, column="text_vec", k=10)
        assert len(unfiltered) == 10 and unfiltered[0].score >= unfiltered[-1].score
        c.store.close()
