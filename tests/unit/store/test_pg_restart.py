"""A ``PgStore`` outlives a restart of its PostgreSQL server: the real server (``pgserver``) is
stopped and started again on the same data folder and socket under one store object."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli.main import app
from oculi.core.errors import StoreUnavailableError
from oculi.store.pg_store import PgStore
from tests.pgutil import pg_database
from tests.store_contract import TD, files_for, item, vec


def _ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_reads_and_writes_work_again_after_a_restart_and_nothing_stored_is_lost(pg_restartable, tmp_path: Path) -> None:
    with pg_database(pg_restartable.url, "restart") as url:
        store = PgStore(url, home=tmp_path)
        coll = store.create_collection("photos")
        first = [item(n) for n in range(6)]
        with coll.writer():
            coll.add_items(first)
            coll.upsert_files(files_for(first))
        before = _ids(coll.vector_search(vec(3, TD), column="text_vec", k=4))
        assert len(before) == 4
        conn_before = store.conn()

        # a restart while the connection sits idle: the next read meets the dead connection and
        # runs again on a new one, transparently
        pg_restartable.stop()
        pg_restartable.start()
        assert _ids(coll.vector_search(vec(3, TD), column="text_vec", k=4)) == before
        assert store.conn() is not conn_before
        assert coll.keyword_search("coffee", k=10)  # another read on the new connection

        # a write that meets a dead connection is not run again: it says the store is away, and
        # the same call made again once the connection is back stores it once
        pg_restartable.stop()
        pg_restartable.start()
        more = [item(n) for n in range(6, 9)]
        with pytest.raises(StoreUnavailableError, match="while writing") as err:
            coll.add_items(more)
        assert "postgresql://" in str(err.value) and "\n" not in str(err.value)
        coll.add_items(more)
        coll.add_items(more)  # ids already stored are skipped: nothing twice
        coll.upsert_files(files_for(more))

        assert coll.count() == 9 and coll.file_count() == 9
        assert coll.item_ids() == {it.id for it in first + more}
        assert _ids(coll.vector_search(vec(3, TD), column="text_vec", k=1)) == [item(3).id]
        assert _ids(coll.vector_search(vec(7, TD), column="text_vec", k=1)) == [item(7).id]
        store.close()


def test_while_the_server_is_down_every_call_is_store_unavailable_naming_the_url(pg_restartable, tmp_path: Path) -> None:
    with pg_database(pg_restartable.url, "down") as url:
        store = PgStore(url, home=tmp_path)
        coll = store.create_collection("photos")
        coll.add_items([item(1), item(2)])
        pg_restartable.stop()
        for call in (lambda: coll.count(), lambda: coll.vector_search(vec(1, TD), column="text_vec", k=2),
                     lambda: store.names(), lambda: coll.add_items([item(3)]), lambda: list(coll.iter_items(["id"]))):
            with pytest.raises(StoreUnavailableError) as err:
                call()
            msg = str(err.value)
            assert "\n" not in msg and store.url in msg, msg
        r = CliRunner().invoke(app, ["--store", url, "collections", "list"])
        assert r.exit_code == 7, r.output  # StoreUnavailableError's exit code
        assert f"cannot connect to the PostgreSQL store {store.url}" in r.output
        pg_restartable.start()
        assert coll.count() == 2
        assert sorted(r["id"] for rows in coll.iter_items(["id"]) for r in rows) == sorted([item(1).id, item(2).id])
        store.close()


def test_a_writer_whose_lock_went_with_a_restart_stops_instead_of_writing_unlocked(pg_restartable, tmp_path: Path) -> None:
    with pg_database(pg_restartable.url, "writer") as url:
        store = PgStore(url, home=tmp_path)
        coll = store.create_collection("photos")
        other = PgStore(url, home=tmp_path)  # another process, as far as the locks go
        with coll.writer():
            coll.add_items([item(1)])
            pg_restartable.stop()
            pg_restartable.start()
            with pytest.raises(StoreUnavailableError, match="while writing"):
                coll.add_items([item(2)])  # the connection the restart ended
            with pytest.raises(StoreUnavailableError, match="writer lock"):
                coll.add_items([item(2)])  # a new connection, but the writer lock is gone
            # meanwhile another writer may take the lock: that is why this one stopped
            with other.open_collection("photos").writer():
                pass
        with coll.writer():  # taken again afresh, writes go on
            coll.add_items([item(2)])
            pg_restartable.stop()
            pg_restartable.start()
            assert coll.count() == 2  # a read finds the connection gone and reads again on a new one...
            with pytest.raises(StoreUnavailableError, match="writer lock"):
                coll.add_items([item(3)])  # ...but a write on it would be one without the lock
        with coll.writer():
            coll.add_items([item(3)])
        assert coll.count() == 3
        other.close()
        store.close()
