"""The footage record tables (sources, tracks, events) of a Lance collection.

One Lance table per ``RecordTable``, its Arrow schema derived from the record type's
backend-neutral ``COLUMNS`` (``oculi.store.records``); rows are written with ``merge_insert`` on
``id``, so writing a record again replaces it. ``LanceCollection`` inherits these methods; they
use its table cache (``_table``), its connection and its filter compiler.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa

from oculi.core.errors import InputError
from oculi.store.base import TABLE_FILTER_FIELDS, Filter
from oculi.store.integrity import TableRole, register_table_role
from oculi.store.lance_errors import guarded
from oculi.store.lance_session import committing, flock_or_holder
from oculi.store.records import RECORD_TYPES, ColumnType, RecordTable, record_type_of

_ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.STR: pa.string(), ColumnType.FLOAT: pa.float64(), ColumnType.INT: pa.int64(),
    ColumnType.STR_LIST: pa.list_(pa.string()), ColumnType.JSON: pa.string(), ColumnType.BYTES: pa.binary(),
}


def record_schema(table: RecordTable | str) -> pa.Schema:
    """The Arrow schema of a record table, from its record type's backend-neutral ``COLUMNS``."""
    cls = RECORD_TYPES[RecordTable(table)]
    return pa.schema([pa.field(name, _ARROW_TYPES[ct], nullable=name != "id") for name, ct in cls.COLUMNS.items()])


for _name, _rows, _how in (
    ("sources", "watched sources (files and streams, their resume checkpoints)",
     "re-created by watching the files again (`oculi watch`); a stream's past sessions cannot be"),
    ("tracks", "tracked objects of footage", "re-derived by watching the source again (`oculi watch --reprocess`)"),
    ("events", "footage events (appear, leave, zones, dwell, loitering, crowding)",
     "re-derived by watching the source again (`oculi watch --reprocess`)"),
):
    register_table_role(TableRole(_name, _rows, _how))


class LanceRecords:
    """Record-table methods of ``LanceCollection`` (see ``Collection`` in ``oculi.store.base``)."""

    _db: Any
    _tables: dict[str, Any]
    _tlock: Any
    _table: Callable[[str], Any]
    _create_table: Callable[[str, pa.Schema], Any]
    _compile_filter: Callable[[Filter | None, str], str | None]
    path: Path

    def _records(self, table: RecordTable | str) -> Any:
        """The Lance table of a record table, created (empty) on first use."""
        name = RecordTable(table).value
        t = self._table(name)
        if t is None:
            with self._tlock:
                t = self._table(name) or self._create_table(name, record_schema(name))
        return t

    @committing
    def upsert_records(self, records: Sequence[Any]) -> None:
        """Insert or replace records (all of one table) by id, in one commit."""
        if not records:
            return
        cls = record_type_of(records)
        t = self._records(cls.TABLE)
        latest = {r.id: r for r in records}
        rows = [r.to_row() for r in latest.values()]
        schema = record_schema(cls.TABLE)
        data = pa.table({f.name: [row[f.name] for row in rows] for f in schema}, schema=schema)
        t.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)

    @guarded("its footage records cannot be read")
    def query_records(
        self, table: RecordTable | str, filter: Filter | None = None, *, order_by: str | None = None,
        descending: bool = False, limit: int | None = None,
    ) -> list[Any]:
        """Records of ``table`` matching ``filter``, ordered by ``order_by`` then id."""
        name = RecordTable(table).value
        if order_by is not None and order_by not in TABLE_FILTER_FIELDS[name]:
            raise InputError(f"cannot order {name} by {order_by!r}; use one of {', '.join(sorted(TABLE_FILTER_FIELDS[name]))}")
        where = self._compile_filter(filter, name)  # a bad filter is an error even on an empty table
        if limit is not None and limit <= 0:
            return []
        t = self._table(name)
        if t is None:
            return []
        q = t.search()
        if where:
            q = q.where(where)
        tab = q.limit(None).to_arrow()
        if not tab.num_rows:
            return []
        keys = [(order_by, "descending" if descending else "ascending")] if order_by else []
        tab = tab.sort_by(keys + [("id", "ascending")])
        if limit is not None:
            tab = tab.slice(0, limit)
        cls = RECORD_TYPES[RecordTable(name)]
        return [cls.from_row(r) for r in tab.to_pylist()]

    @guarded("its footage records cannot be read")
    def count_records(self, table: RecordTable | str, filter: Filter | None = None) -> int:
        name = RecordTable(table).value
        where = self._compile_filter(filter, name)
        t = self._table(name)
        if t is None:
            return 0
        return int(t.count_rows(where) if where else t.count_rows())

    @committing
    def delete_records(self, table: RecordTable | str, filter: Filter) -> int:
        """Delete the records matching ``filter`` (a non-empty filter); returns how many."""
        name = RecordTable(table).value
        if not filter:
            raise InputError(f"delete_records on {name} needs a filter (refusing to delete everything)")
        t = self._table(name)
        if t is None:
            return 0
        where = self._compile_filter(filter, name)
        n = int(t.count_rows(where))
        if n:
            t.delete(where)
        return n

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: bool = False) -> Iterator[None]:
        """An exclusive named lock within the collection, across processes (``flock`` on a file
        under ``.locks/``; released by the OS if the holder dies). Independent of the writer lock.

        Raises:
            InputError: another process holds it (with ``wait=False``).
        """
        d = self.path / ".locks"
        d.mkdir(exist_ok=True)
        fd = os.open(d / f"{hashlib.sha256(name.encode()).hexdigest()[:24]}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            holder = flock_or_holder(fd, wait)
            if holder is not None:
                raise InputError(f"{name} is being processed by another process (pid {holder}); wait for it to finish")
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
