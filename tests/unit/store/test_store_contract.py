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


def test_hnsw_build_settings_fit_the_graph_within_the_memory_there_is() -> None:
    from oculi.store.pg_store import REMOTE_BUILD_MEMORY_MAX, hnsw_build_settings, hnsw_graph_bytes

    gib = 1 << 30
    assert hnsw_graph_bytes(1_000_000, 384) > 10 * hnsw_graph_bytes(100_000, 384) - (600 << 20)
    assert hnsw_graph_bytes(100_000, 1280) > 2 * hnsw_graph_bytes(100_000, 384)
    local = hnsw_build_settings(1_000_000, 384, current_mem=64 << 20, local=True, available=16 * gib, cpus=4)
    assert local["maintenance_work_mem"] == hnsw_graph_bytes(1_000_000, 384)  # what the graph needs, no more
    assert local["max_parallel_maintenance_workers"] == 3  # one per core besides the leader
    tight = hnsw_build_settings(1_000_000, 1280, current_mem=64 << 20, local=True, available=4 * gib, cpus=2)
    assert tight["maintenance_work_mem"] == 2 * gib  # half of what is available
    remote = hnsw_build_settings(1_000_000, 384, current_mem=64 << 20, local=False, available=64 * gib, cpus=64)
    assert remote == {"maintenance_work_mem": REMOTE_BUILD_MEMORY_MAX, "max_parallel_maintenance_workers": -1}
    admin = hnsw_build_settings(1_000, 384, current_mem=8 * gib, local=False, available=0, cpus=None)
    assert admin["maintenance_work_mem"] == 8 * gib  # a larger server setting is kept


def test_pg_optimize_builds_hnsw_with_build_settings_that_end_with_the_build(
        pg_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The HNSW indexes are built and answer searches; the raised memory and worker settings
    were the build's own (the session is back to the server's); a graph that outgrows its
    memory is reported (forced here with 1 MB)."""
    import logging

    from oculi.store import open_store
    from oculi.store import pg_store
    from tests.store_contract import TD, item, vec

    with pg_database(pg_server, f"t_{uuid.uuid4().hex[:12]}") as url:
        c = open_store(url=url).create_collection("hnsw")
        items = [item(n) for n in range(600)]
        with c.writer():
            c.add_items(items)
            conn = c.store.conn()
            before = conn.execute("SHOW maintenance_work_mem").fetchone()[0], conn.execute(
                "SHOW max_parallel_maintenance_workers").fetchone()[0]
            assert c.optimize(force_ann=True) == {"text_vec": "built", "image_vec": "built"}
        assert sorted(ix["columns"][0] for ix in c.indices() if ix["type"] == "HNSW") == ["image_vec", "text_vec"]
        after = conn.execute("SHOW maintenance_work_mem").fetchone()[0], conn.execute(
            "SHOW max_parallel_maintenance_workers").fetchone()[0]
        assert after == before
        q = items[123].text_vec
        assert c.vector_search(q, column="text_vec", k=3)[0].id == items[123].id
        assert c.vector_search(items[45].image_vec, column="image_vec", k=3)[0].id == items[45].id

        d = open_store(url=url).create_collection("tight")
        with d.writer():
            d.add_items([item(n) for n in range(4000)])
            monkeypatch.setattr(pg_store, "ANN_COLUMNS", ("text_vec",))
            monkeypatch.setattr(pg_store, "hnsw_build_settings", lambda *a, **k: {
                "maintenance_work_mem": 1 << 20, "max_parallel_maintenance_workers": 0})
            with caplog.at_level(logging.WARNING, logger="oculi.store.pg_store"):
                assert d.optimize(force_ann=True) == {"text_vec": "built"}
        assert any("maintenance_work_mem" in r.getMessage() for r in caplog.records)
        assert [ix["columns"][0] for ix in d.indices() if ix["type"] == "HNSW"] == ["text_vec"]
        assert d.vector_search(vec(5, TD), column="text_vec", k=10)
        c.store.close()
        d.store.close()
