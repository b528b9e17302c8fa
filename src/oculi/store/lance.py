"""The embedded store: one LanceDB database per collection, no server.

Layout under ``Settings.collections_dir``::

    <name>/collection.json   schema version, dims, models, created/updated times
    <name>/items.lance/      one row per item: metadata, document, vectors, thumbnail
    <name>/files.lance/      one row per indexed file: path -> item id, size, mtime
    <name>/sources.lance/    footage: one row per watched video file or stream (``oculi.store.records``)
    <name>/tracks.lance/     footage: one row per tracked object
    <name>/events.lance/     footage: one row per event, with its time range
    <name>/.locks/           named locks (``LanceCollection.lock``: one watcher per source)
    <name>/blobs/            originals of images ingested as bytes (uploads)
    <name>/.lock             writer lock (one writer per collection, any number of readers)
    <name>/integrity.json    SHA-256 of every file each committed write added (``store.integrity``),
                             with ``integrity.json.journal`` for the writes since its last snapshot
    <name>/.damaged/         damaged files set aside by ``oculi collections repair`` (never deleted)

Why this is crash-safe: every Lance write (append, merge, delete, index build, compaction)
writes new data files first and then commits a new table version by writing one manifest; a
process killed at any moment leaves the previous version intact and a few unreferenced files
(removed by a later cleanup). A collection directory appears by an atomic rename of a fully
written temporary directory, and is dropped by renaming it away before deleting it.

Why damage is never mistaken for emptiness: a table whose directory holds data but cannot be
opened raises ``StoreCorruptError`` (naming ``oculi collections repair``); nothing is ever
created with ``mode="overwrite"``. After every committed write the files it added are hashed
into ``integrity.json``; ``optimize`` keeps every version from the one the record vouched for
before it ran, so repair always has a known-good version to go back to. The write session (lock,
checks on entry, checksums after each commit) is ``lance_session.WriteSession``; the store of
collections is ``lance_store.LanceStore``; check and repair are ``lance_check`` and
``lance_repair``.

Indexes: a full-text (BM25) index on the document, built with the first batch and kept up to
date by ``optimize``; IVF-HNSW-SQ vector indexes on both vector columns once a collection holds
``ANN_MIN_ROWS`` items (below that an exact scan is faster than the index is useful; see
docs/SEARCH.md); a B-tree on ``id`` and label-list indexes on the filterable list columns once
it holds ``SCALAR_INDEX_MIN_ROWS``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import lancedb  # (``oculi.store`` has set LANCE_LOG/LANCEDB_LOG before any Lance import)
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, BTree, IvfHnswSq, LabelList

from oculi.core.errors import InputError, NotFoundError, OculiError
from oculi.store.base import (
    TABLE_FILTER_FIELDS,
    SEARCH_COLUMNS,
    STORE_SCHEMA_VERSION,
    CollectionInfo,
    FieldType,
    FileRecord,
    Filter,
    Hit,
    ItemRecord,
    Op,
    check_filter_table,
    glob_to_regex,
)
from oculi.store.integrity import RECORD_FILE, IntegrityRecord
from oculi.store.lance_check import cleanup_window, forget_missing, read_meta, record_tables, table_dirs
from oculi.store.lance_errors import corrupt, guarded, store_error
from oculi.store.lance_records import LanceRecords, record_schema
from oculi.store.lance_session import (
    WriteSession,
    committing,
    dir_size,
    directory_lock,
    has_rows_data,
    has_versions,
    write_json_atomic,
)
from oculi.store.records import RecordTable

log = logging.getLogger(__name__)

META_FILE = "collection.json"
ITEMS = "items"
FILES = "files"

#: Vector indexes are built once a collection has this many items (exact scan below; Lance's
#: exact scan costs ~18 ms at 10k items on 2 cores, an HNSW search ~8 ms — docs/SEARCH.md).
ANN_MIN_ROWS = 10_000
#: Scalar indexes (id, list columns) are built once a collection has this many items.
SCALAR_INDEX_MIN_ROWS = 20_000
#: Retrain the vector index when the collection has grown this many times since training.
ANN_RETRAIN_GROWTH = 4.0
#: IVF partitions probed per query; HNSW candidate list size (at least 2 × k).
NPROBES = 24
HNSW_EF = 100
#: Items per IVF partition of the HNSW indexes (one graph per partition).
HNSW_PARTITION_ROWS = 250_000
#: Old table versions are removed by ``optimize`` once older than this (and than the restore point).
CLEANUP_AFTER = timedelta(minutes=5)
KEEP_ALL = timedelta(days=36500)
#: Rows per ``IN (...)`` list in deletes and look-ups.
IN_CHUNK = 512

DEFAULT_COLUMNS = SEARCH_COLUMNS

def _create_record_tables(coll: "LanceCollection") -> None:
    for table in RecordTable:
        coll._records(table)
    coll._note_write()


# Migrations from version v to v+1, applied in order on open (under the writer lock).
MIGRATIONS: dict[int, Callable[["LanceCollection"], None]] = {
    1: _create_record_tables,  # 1 -> 2: the footage record tables (sources, tracks, events)
}


def items_schema(text_dim: int, image_dim: int) -> pa.Schema:
    s = pa.string()
    return pa.schema([
        pa.field("id", s, nullable=False),
        pa.field("sha256", s),
        pa.field("path", s),
        pa.field("name", s),
        pa.field("kind", s),
        pa.field("source_id", s),
        pa.field("frame_index", pa.int64()),
        pa.field("timestamp", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("format", s),
        pa.field("file_size", pa.int64()),
        pa.field("time", pa.float64()),
        pa.field("taken_at", pa.float64()),
        pa.field("camera", s),
        pa.field("gps_lat", pa.float64()),
        pa.field("gps_lon", pa.float64()),
        pa.field("caption", s),
        pa.field("doc", s),
        pa.field("labels", pa.list_(s)),
        pa.field("objects", pa.list_(s)),
        pa.field("object_terms", pa.list_(s)),
        pa.field("colours", pa.list_(s)),
        pa.field("text", s),
        pa.field("track_ids", pa.list_(pa.int64())),
        pa.field("observation", s),
        pa.field("text_vec", pa.list_(pa.float32(), text_dim)),
        # float16 halves the largest column; cosine ranking is unaffected at this precision
        pa.field("image_vec", pa.list_(pa.float16(), image_dim)),
        pa.field("thumbnail", pa.binary()),
        pa.field("indexed_at", pa.float64()),
    ])


FILES_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("size", pa.int64()),
    pa.field("mtime_ns", pa.int64()),
    pa.field("seen_at", pa.float64()),
])


# --- SQL literals: every value that reaches a Lance filter goes through these ---------------

def sql_str(value: str) -> str:
    """A SQL string literal: single quotes doubled; NUL refused."""
    if "\x00" in value:
        raise InputError("filter values cannot contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


def sql_num(value: float) -> str:
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"not a finite number: {value!r}")
    return repr(v)


def sql_int(value: int) -> str:
    return str(int(value))


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sql_in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


INT_COLUMNS = frozenset({"width", "height", "file_size", "frame_index", "track_id", "count", "ongoing"})


def compile_filter(f: Filter | None, table: str = "items") -> str | None:
    """Compile a ``Filter`` on ``table`` to a Lance (DataFusion) SQL predicate with escaped literals.

    Raises:
        InputError: a condition names a column ``table`` does not have.
    """
    if not f:
        return None
    check_filter_table(f, table)
    fields = TABLE_FILTER_FIELDS[table]
    parts: list[str] = []
    for c in f.conditions:
        col = c.field
        ftype = fields[col]
        if ftype is FieldType.NUM:
            fv = float(c.value)
            if col in INT_COLUMNS:
                if fv.is_integer() and abs(fv) < 2**53:
                    v = sql_int(int(fv))
                else:
                    col, v = f"CAST({col} AS DOUBLE)", sql_num(fv)
            else:
                v = sql_num(fv)
            if c.op is Op.NE:
                parts.append(f"({col} IS NULL OR {col} <> {v})")
            else:
                parts.append(f"{col} {'=' if c.op is Op.EQ else c.op.value} {v}")
        elif ftype is FieldType.LIST:
            v = sql_int(int(c.value)) if col == "track_ids" else sql_str(str(c.value))
            parts.append(f"array_has({col}, {v})")
        elif c.op is Op.EQ:
            parts.append(f"{col} = {sql_str(str(c.value))}")
        elif c.op is Op.NE:
            parts.append(f"({col} IS NULL OR {col} <> {sql_str(str(c.value))})")
        elif c.op is Op.GLOB:
            parts.append(f"regexp_like({col}, {sql_str(glob_to_regex(str(c.value)))})")
        elif c.op is Op.CONTAINS:
            pat = "%" + _like_escape(str(c.value).lower()) + "%"
            parts.append(f"lower({col}) LIKE {sql_str(pat)} ESCAPE '\\'")
        else:  # pragma: no cover - Condition validates ops
            raise InputError(f"unsupported filter {c}")
    return " AND ".join(parts)


# --- helpers -------------------------------------------------------------------------------

def _vec_array(vectors: Sequence[np.ndarray], dim: int, dtype: Any) -> pa.FixedSizeListArray:
    np_dtype = np.float16 if dtype == pa.float16() else np.float32
    mat = np.zeros((len(vectors), dim), dtype=np_dtype)
    for i, v in enumerate(vectors):
        a = np.asarray(v, dtype=np.float32).reshape(-1)
        if a.shape[0] != dim:
            raise OculiError(f"vector has {a.shape[0]} dimensions; this collection stores {dim}")
        mat[i] = a
    return pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1), type=dtype), dim)


# --- collection ----------------------------------------------------------------------------

class LanceCollection(WriteSession, LanceRecords):
    """A collection stored as Lance tables in one directory. Thread-safe for readers."""

    _compile_filter = staticmethod(compile_filter)

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._meta = self._read_meta()
        self._db = lancedb.connect(str(path), read_consistency_interval=timedelta(0))
        self._tables: dict[str, Any] = {}
        self._tlock = threading.RLock()
        self._writer_owner: int | None = None
        self._record: IntegrityRecord | None = None  # loaded while writing
        self._wrote = False  # whether this write session committed anything
        self._swept_blobs = False
        self._item_bytes: float | None = None
        self._migrate_if_needed()

    # --- meta ---------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    def _read_meta(self) -> dict[str, Any]:
        meta, problem = read_meta(self.path)
        if meta is None:
            if problem == "missing" and not table_dirs(self.path):
                raise NotFoundError(f"collection {self.name!r} has no {META_FILE}; it is not an oculi collection")
            raise corrupt(self.name, f"its {META_FILE} is {problem}")
        version = int(meta.get("schema_version", 0))
        if version > STORE_SCHEMA_VERSION:
            raise InputError(
                f"collection {self.name!r} was written by a newer oculi (store schema {version}; this oculi reads "
                f"up to {STORE_SCHEMA_VERSION}); upgrade oculi to open it"
            )
        return meta

    def _write_meta(self) -> None:
        write_json_atomic(self.meta_path, self._meta)

    def _migrate_if_needed(self) -> None:
        version = int(self._meta.get("schema_version", 0))
        if version == STORE_SCHEMA_VERSION:
            return
        with self.writer(wait=True):
            self._meta = self._read_meta()
            version = int(self._meta.get("schema_version", 0))
            while version < STORE_SCHEMA_VERSION:
                step = MIGRATIONS.get(version)
                if step is None:
                    raise OculiError(f"collection {self.name!r}: no migration from store schema {version}")
                log.info("migrating collection %s from store schema %d", self.name, version)
                step(self)
                version += 1
                self._meta["schema_version"] = version
                self._write_meta()

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    # --- tables ---------------------------------------------------------------------------
    def _table(self, name: str) -> Any | None:
        """The open table, or ``None`` only when it was never written.

        Raises:
            StoreCorruptError: the table holds data but cannot be opened (never "empty").
        """
        with self._tlock:
            t = self._tables.get(name)
            if t is not None:
                return t
            tdir = self.path / f"{name}.lance"
            if not has_versions(tdir):
                expected = "text_dim" in self._meta and name in (ITEMS, FILES)
                if has_rows_data(tdir) or expected:
                    raise corrupt(self.name, f"its {name} table is missing or has no version left")
                return None
            try:
                t = self._db.open_table(name)
            except Exception as e:  # noqa: BLE001 - Lance reports damage as assorted exceptions
                raise store_error(e, self.name, self.path, f"its {name} table cannot be opened") from None
            vouched = self._vouched_version(name)
            if vouched is not None and int(t.version) < vouched:
                # the newest version's manifest is gone: Lance would quietly serve an older one
                raise corrupt(self.name, f"the latest version ({vouched}) of its {name} table is missing")
            self._tables[name] = t
            return t

    def _create_table(self, name: str, schema: pa.Schema) -> Any:
        """Create a table that was never written. Never overwrites: a directory holding data
        is damage, not an empty table."""
        tdir = self.path / f"{name}.lance"
        if tdir.exists():
            if has_versions(tdir) or has_rows_data(tdir):
                raise corrupt(self.name, f"its {name} table exists but cannot be used")
            shutil.rmtree(tdir)  # a creation killed before its first commit (no data in it)
        t = self._db.create_table(name, schema=schema, mode="create")
        self._tables[name] = t
        return t

    def _files(self) -> Any:
        t = self._table(FILES)
        if t is None:
            with self._tlock:
                t = self._create_table(FILES, FILES_SCHEMA)
        return t

    def _ensure_items(self, text_dim: int, image_dim: int) -> Any:
        with self._tlock:
            if "text_dim" in self._meta:
                if (self._meta["text_dim"], self._meta["image_dim"]) != (text_dim, image_dim):
                    raise InputError(
                        f"collection {self.name!r} stores {self._meta['text_dim']}-d text and "
                        f"{self._meta['image_dim']}-d image vectors, but the current models give {text_dim}-d and "
                        f"{image_dim}-d; index into a new collection"
                    )
                t = self._table(ITEMS)
                if t is not None:
                    return t
            # first write (or a creation that was killed before its first commit)
            t = self._table(ITEMS) or self._create_table(ITEMS, items_schema(text_dim, image_dim))
            self._meta.update(text_dim=text_dim, image_dim=image_dim)
            self._write_meta()
            return t

    # --- reading ---------------------------------------------------------------------------
    @guarded("its data cannot be read")
    def count(self) -> int:
        t = self._table(ITEMS)
        return 0 if t is None else int(t.count_rows())

    @guarded("its data cannot be read")
    def file_count(self) -> int:
        t = self._table(FILES)
        return 0 if t is None else int(t.count_rows())

    def bytes_on_disk(self) -> int:
        return dir_size(self.path)

    def info(self) -> CollectionInfo:
        return CollectionInfo(
            name=self.name,
            items=self.count(),
            files=self.file_count(),
            bytes_on_disk=self.bytes_on_disk(),
            created_at=self._meta.get("created_at"),
            updated_at=self._meta.get("updated_at"),
            schema_version=int(self._meta.get("schema_version", STORE_SCHEMA_VERSION)),
            path=str(self.path),
        )

    @guarded("its data cannot be read")
    def indices(self) -> list[dict[str, Any]]:
        out = []
        for tname in (ITEMS, FILES, *(r.value for r in RecordTable)):
            t = self._table(tname)
            if t is None:
                continue
            for ix in t.list_indices():
                out.append({"table": tname, "name": ix.name, "type": str(ix.index_type), "columns": list(ix.columns)})
        return out

    def _index_names(self, table: Any) -> dict[str, str]:
        return {ix.columns[0]: str(ix.index_type) for ix in table.list_indices()}

    def stats(self) -> dict[str, Any]:
        """Counts, disk use, indexes, capture-time range and the most frequent objects/labels."""
        info = self.info()
        doc: dict[str, Any] = info.to_dict()
        doc["bytes_per_item"] = round(info.bytes_on_disk / info.items) if info.items else None
        doc["indices"] = self.indices()
        doc["text_dim"] = self._meta.get("text_dim")
        doc["image_dim"] = self._meta.get("image_dim")
        doc["models"] = self._meta.get("models", {})
        doc["vector_spaces"] = self.vector_spaces()
        objects: dict[str, int] = {}
        labels: dict[str, int] = {}
        tmin = tmax = None
        for rows in self.iter_items(["objects", "labels", "time"]):
            for r in rows:
                for o in r["objects"] or ():
                    objects[o] = objects.get(o, 0) + 1
                for lab in (r["labels"] or ())[:1]:
                    labels[lab] = labels.get(lab, 0) + 1
                t = r["time"]
                if t is not None:
                    tmin = t if tmin is None else min(tmin, t)
                    tmax = t if tmax is None else max(tmax, t)
        doc["time_range"] = [tmin, tmax]
        doc["top_objects"] = dict(sorted(objects.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
        doc["top_labels"] = dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
        return doc

    @guarded("its data cannot be read")
    def item_ids(self) -> set[str]:
        out: set[str] = set()
        for rows in self.iter_items(["id"]):
            out.update(r["id"] for r in rows)
        return out

    @guarded("its data cannot be read")
    def file_states(self) -> dict[str, FileRecord]:
        t = self._table(FILES)
        if t is None:
            return {}
        tab = t.search().select(["path", "id", "size", "mtime_ns", "seen_at"]).limit(None).to_arrow()
        cols = [tab.column(c).to_pylist() for c in ("path", "id", "size", "mtime_ns", "seen_at")]
        return {p: FileRecord(p, i, s, m, a or 0.0) for p, i, s, m, a in zip(*cols)}

    @guarded("its data cannot be read")
    def files_of(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Every indexed path of each item id."""
        t = self._table(FILES)
        out: dict[str, list[str]] = {}
        if t is None or not ids:
            return out
        for i in range(0, len(ids), IN_CHUNK):
            chunk = list(ids[i : i + IN_CHUNK])
            tab = t.search().where(sql_in("id", chunk)).select(["path", "id"]).limit(None).to_arrow()
            for p, iid in zip(tab.column("path").to_pylist(), tab.column("id").to_pylist()):
                out.setdefault(iid, []).append(p)
        for v in out.values():
            v.sort()
        return out

    @guarded("its data cannot be read")
    def iter_items(self, columns: Sequence[str], *, batch_size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        t = self._table(ITEMS)
        if t is None:
            return
        reader = t.search().select(list(columns)).to_batches(batch_size)
        for batch in reader:
            if batch.num_rows:
                yield batch.to_pylist()

    @guarded("its data cannot be read")
    def iter_vectors(self, column: str, *, batch_size: int = 10_000) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(ids, matrix)`` batches of a vector column, as float32."""
        if column not in ("text_vec", "image_vec"):
            raise InputError(f"unknown vector column {column!r}")
        t = self._table(ITEMS)
        if t is None:
            return
        for batch in t.search().select(["id", column]).to_batches(batch_size):
            if not batch.num_rows:
                continue
            ids = batch.column("id").to_pylist()
            col = batch.column(column)
            dim = col.type.list_size
            mat = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
            yield ids, mat

    @guarded("its data cannot be read")
    def get_items(self, ids: Sequence[str], *, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        t = self._table(ITEMS)
        if t is None or not ids:
            return []
        cols = list(columns or DEFAULT_COLUMNS)
        if "id" not in cols:
            cols = ["id", *cols]
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), IN_CHUNK):
            chunk = list(ids[i : i + IN_CHUNK])
            for r in t.search().where(sql_in("id", chunk)).select(cols).limit(None).to_arrow().to_pylist():
                found[r["id"]] = r
        return [found[i] for i in ids if i in found]

    def thumbnail(self, item_id: str) -> bytes:
        """The item's JPEG thumbnail. Raises ``NotFoundError`` for an unknown id."""
        rows = self.get_items([item_id], columns=["id", "thumbnail"])
        if not rows or not rows[0]["thumbnail"]:
            raise NotFoundError(f"no item {item_id!r} in collection {self.name!r}")
        return bytes(rows[0]["thumbnail"])

    # --- searching ---------------------------------------------------------------------------
    @guarded("its data cannot be read")
    def vector_search(
        self,
        vector: np.ndarray,
        *,
        column: str,
        k: int,
        filter: Filter | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Nearest items by cosine similarity of ``column`` (``text_vec`` or ``image_vec``)."""
        if column not in ("text_vec", "image_vec"):
            raise InputError(f"unknown vector column {column!r}")
        t = self._table(ITEMS)
        if t is None or k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        cols = list(columns or DEFAULT_COLUMNS)
        builder = t.search(q, vector_column_name=column).distance_type("cosine").limit(int(k)).with_row_id(True)
        indexed = self._indexed_vector_columns(t)
        if column in indexed:
            builder = builder.nprobes(NPROBES)
            if "Hnsw" in indexed[column]:
                builder = builder.ef(max(HNSW_EF, 2 * int(k)))
        where = compile_filter(filter)
        if where:
            builder = builder.where(where, prefilter=True)
        tab = builder.select(cols + ["_distance"] if "_distance" not in cols else cols).to_arrow()
        return self._hits(tab, lambda d: 1.0 - float(d), "_distance")

    @guarded("its data cannot be read")
    def keyword_search(
        self, query: str, *, k: int, filter: Filter | None = None, columns: Sequence[str] | None = None
    ) -> list[Hit]:
        """BM25 over the document (stemmed, stop words removed). Words are matched, not parsed."""
        t = self._table(ITEMS)
        if t is None or k <= 0 or not query.strip():
            return []
        if "doc" not in self._index_names(t):
            return []
        cols = list(columns or DEFAULT_COLUMNS)
        builder = t.search(query, query_type="fts", fts_columns="doc").limit(int(k)).with_row_id(True)
        where = compile_filter(filter)
        if where:
            builder = builder.where(where, prefilter=True)
        tab = builder.select(cols + ["_score"] if "_score" not in cols else cols).to_arrow()
        return self._hits(tab, float, "_score")

    @staticmethod
    def _hits(tab: pa.Table, conv: Callable[[Any], float], score_col: str) -> list[Hit]:
        out = []
        for row in tab.to_pylist():
            s = row.pop(score_col)
            ref = row.pop("_rowid", None)
            out.append(Hit(id=row["id"], score=conv(s), fields=row, ref=ref))
        return out

    @guarded("its data cannot be read")
    def neighbours(self, vectors: np.ndarray, *, column: str, k: int) -> list[tuple[int, str, float]]:
        """Approximate ``k`` nearest items of each row of ``vectors``: ``(row, id, score)``."""
        t = self._table(ITEMS)
        if t is None or not len(vectors):
            return []
        builder = t.search(np.asarray(vectors, dtype=np.float32), vector_column_name=column).distance_type("cosine").limit(k)
        indexed = self._indexed_vector_columns(t)
        if column in indexed:
            builder = builder.nprobes(NPROBES)
        tab = builder.select(["id", "_distance"]).to_arrow()
        if "query_index" not in tab.column_names:  # a single query
            return [(0, i, 1.0 - d) for i, d in zip(tab.column("id").to_pylist(), tab.column("_distance").to_pylist())]
        return [(q, i, 1.0 - d) for q, i, d in zip(tab.column("query_index").to_pylist(), tab.column("id").to_pylist(),
                                                     tab.column("_distance").to_pylist())]

    @guarded("its data cannot be read")
    def fetch(self, hits: Sequence[Hit], *, columns: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Stored fields of search hits by id, read by row id (one random-access read).

        Searching with ``columns=["id"]`` and fetching the union of several searches' hits once
        is faster than materialising every column in each search. A row id that a compaction
        committed in between has moved is detected (its id differs) and read by id instead.
        """
        t = self._table(ITEMS)
        if t is None or not hits:
            return {}
        cols = list(columns or DEFAULT_COLUMNS)
        if "id" not in cols:
            cols = ["id", *cols]
        wanted = {h.id for h in hits}
        refs = list(dict.fromkeys(h.ref for h in hits if h.ref is not None))
        out: dict[str, dict[str, Any]] = {}
        if refs:
            try:
                for r in t.take_row_ids(refs).select(cols).to_arrow().to_pylist():
                    if r["id"] in wanted:
                        out[r["id"]] = r
            except Exception:  # noqa: BLE001 - stale row ids after a concurrent compaction
                log.debug("take by row id failed; reading by id", exc_info=True)
        missing = [i for i in dict.fromkeys(h.id for h in hits) if i not in out]
        if missing:
            for r in self.get_items(missing, columns=cols):
                out[r["id"]] = r
        return out

    def _indexed_vector_columns(self, t: Any) -> dict[str, str]:
        return {c: kind for c, kind in self._index_names(t).items() if c.endswith("_vec")}

    # --- writing -------------------------------------------------------------------------------
    def vector_spaces(self) -> dict[str, dict[str, Any]]:
        """Which model made each kind of stored vector, and its size:
        ``{"image": {"model", "dim"}, "text": {"model", "dim"}}``. A collection written before
        this was recorded by the built-in model gets its spaces from the models it recorded."""
        spaces = {k: dict(v) for k, v in (self._meta.get("vector_spaces") or {}).items()}
        models = self._meta.get("models") or {}
        if not spaces and "text_dim" in self._meta and "classifier" in models:
            spaces = {"image": {"model": f"builtin/{models['classifier']}", "dim": self._meta.get("image_dim")},
                      "text": {"model": "builtin/all-minilm-l6-v2", "dim": self._meta.get("text_dim")}}
        return spaces

    def set_vector_spaces(self, spaces: dict[str, dict[str, Any]]) -> None:
        """Record the vector spaces of what is (about to be) stored (``oculi.tasks.index.spaces``
        refuses another model's vectors before this is called)."""
        spaces = {k: {"model": str(v["model"]), "dim": int(v["dim"])} for k, v in spaces.items()}
        if self._meta.get("vector_spaces") != spaces:
            self._meta["vector_spaces"] = spaces
            self._write_meta()

    def models(self) -> dict[str, Any]:
        return dict(self._meta.get("models") or {})

    def set_models(self, models: dict[str, Any]) -> None:
        """Record which models produced the stored observations and vectors."""
        if self._meta.get("models") != models:
            self._meta["models"] = dict(models)
            self._write_meta()

    @committing
    def add_items(self, items: Sequence[ItemRecord]) -> None:
        """Append items in one commit. Ids already present are skipped (no duplicates)."""
        if not items:
            return
        first = items[0]
        t = self._ensure_items(int(np.asarray(first.text_vec).size), int(np.asarray(first.image_vec).size))
        schema = t.schema
        seen: set[str] = set()
        uniq = []
        for it in items:
            if it.id not in seen:
                seen.add(it.id)
                uniq.append(it)
        data = self._items_table(uniq, schema)
        fresh = t.count_rows() == 0
        (
            t.merge_insert("id")
            .when_not_matched_insert_all()
            .execute(data)
        )
        if fresh or "doc" not in self._index_names(t):
            self._create_fts(t)

    def _items_table(self, items: Sequence[ItemRecord], schema: pa.Schema) -> pa.Table:
        text_t = schema.field("text_vec").type
        image_t = schema.field("image_vec").type
        cols: dict[str, Any] = {}
        plain = [f.name for f in schema if f.name not in ("text_vec", "image_vec", "observation", "labels", "objects",
                                                          "object_terms", "colours", "track_ids")]
        for name in plain:
            cols[name] = [getattr(it, name) for it in items]
        for name in ("labels", "objects", "object_terms", "colours", "track_ids"):
            cols[name] = [list(getattr(it, name)) for it in items]
        cols["observation"] = [json.dumps(it.observation, ensure_ascii=False, separators=(",", ":")) for it in items]
        cols["text_vec"] = _vec_array([it.text_vec for it in items], text_t.list_size, text_t.value_type)
        cols["image_vec"] = _vec_array([it.image_vec for it in items], image_t.list_size, image_t.value_type)
        return pa.table({f.name: cols[f.name] for f in schema}, schema=schema)

    @committing
    def update_items(self, items: Sequence[ItemRecord]) -> None:
        """Replace stored items (matched by id) in one commit; ids not stored are ignored."""
        if not items:
            return
        t = self._table(ITEMS)
        if t is None:
            return
        data = self._items_table(list({it.id: it for it in items}.values()), t.schema)
        t.merge_insert("id").when_matched_update_all().execute(data)

    @committing
    def upsert_files(self, files: Sequence[FileRecord]) -> None:
        """Insert or replace file records by path, in one commit."""
        if not files:
            return
        t = self._files()
        latest: dict[str, FileRecord] = {f.path: f for f in files}
        data = pa.table(
            {
                "path": [f.path for f in latest.values()],
                "id": [f.id for f in latest.values()],
                "size": [int(f.size) for f in latest.values()],
                "mtime_ns": [int(f.mtime_ns) for f in latest.values()],
                "seen_at": [float(f.seen_at) for f in latest.values()],
            },
            schema=FILES_SCHEMA,
        )
        t.merge_insert("path").when_matched_update_all().when_not_matched_insert_all().execute(data)

    @committing
    def delete_files(self, paths: Sequence[str]) -> int:
        t = self._table(FILES)
        if t is None or not paths:
            return 0
        n = 0
        for i in range(0, len(paths), IN_CHUNK):
            chunk = list(paths[i : i + IN_CHUNK])
            where = sql_in("path", chunk)
            n += t.count_rows(where)
            t.delete(where)
        return n

    @committing
    def delete_orphan_items(self) -> int:
        """Delete items that no file record points to any more and that are not frames of a
        stored source (a source owns its keyframes); returns how many."""
        t = self._table(ITEMS)
        if t is None:
            return 0
        referenced = {f.id for f in self.file_states().values()}
        sources = {r.id for r in self.query_records(RecordTable.SOURCES)}
        orphans: list[str] = []
        for rows in self.iter_items(["id", "kind", "source_id"]):
            for r in rows:
                if r["id"] in referenced or (r["kind"] == "frame" and r["source_id"] in sources):
                    continue
                orphans.append(r["id"])
        orphans.sort()
        for i in range(0, len(orphans), IN_CHUNK):
            t.delete(sql_in("id", orphans[i : i + IN_CHUNK]))
        return len(orphans)

    @committing
    def repoint_items(self, moves: dict[str, str]) -> None:
        """Set the display path of items whose path was forgotten but which have other files."""
        t = self._table(ITEMS)
        if t is None:
            return
        for iid, path in moves.items():
            t.update(where=f"id = {sql_str(iid)}", values={"path": path, "name": os.path.basename(path)})

    # --- maintenance -------------------------------------------------------------------------
    def _create_fts(self, t: Any) -> None:
        t.create_index("doc", config=FTS(with_position=False, stem=True, remove_stop_words=True, ascii_folding=True),
                       replace=True)

    def optimize(self, *, force_ann: bool = False) -> dict[str, Any]:
        """Compact small fragments, bring indexes up to date, build the ANN/scalar indexes once the
        collection is big enough, and remove old table versions.

        Versions are removed once older than ``CLEANUP_AFTER`` *and* older than the restore
        point: the latest version when ``optimize`` started, which the integrity record vouches
        for. So a later damaged version can always be rolled back to a complete, checksummed
        one. Files no version references (left by a write that was killed or hit a full disk)
        are removed too: the caller holds the writer lock, so no write is in progress. The
        files the cleanup removed are dropped from the record, the new ones added.
        """
        try:
            return self._optimize(force_ann)
        except OculiError:
            raise
        except (RuntimeError, OSError, ValueError) as e:
            raise store_error(e, self.name, self.path, "compacting it failed") from None

    def _optimize(self, force_ann: bool) -> dict[str, Any]:
        rec = self._load_record()
        before = set(rec.files)
        restore_points: dict[str, int] = {}
        tables = (ITEMS, FILES, *(r.value for r in RecordTable))
        for name in tables:
            tt = self._table(name)
            if tt is not None:
                restore_points[name] = int(tt.version)
                rec.tables.setdefault(name, {})["fallback_version"] = restore_points[name]
        done = self._build_indexes(force_ann)
        locked = self._writer_owner == threading.get_ident()  # no write of ours or anyone's in flight
        for name in tables:
            tt = self._table(name)
            if tt is None:
                continue
            # compaction and index updates first, removing nothing; then the removal alone, with a
            # window computed just before it, so the restore point cannot age out in between
            tt.optimize(cleanup_older_than=KEEP_ALL)
            tt.optimize(cleanup_older_than=cleanup_window(tt.list_versions(), restore_points.get(name), CLEANUP_AFTER),
                        delete_unverified=locked)
        forget_missing(self.path, rec, before)
        record_tables(self.path, rec, self._versions())
        rec.save(self.path / RECORD_FILE)  # a new snapshot: the journal folded in, removed files forgotten
        self._wrote = True
        return done

    def ensure_indexes(self) -> list[str]:
        """Build the indexes this collection should have and lacks (after a repair went back to
        a version without them). Returns the columns indexed."""
        done = self._build_indexes(False)
        if done:
            self._note_write()
        return sorted(done)

    def _build_indexes(self, force_ann: bool) -> dict[str, Any]:
        done: dict[str, Any] = {}
        t = self._table(ITEMS)
        if t is not None:
            n = int(t.count_rows())
            have = self._index_names(t)
            if n and "doc" not in have:
                self._create_fts(t)
                done["doc"] = "built"
            trained = self._meta.get("ann_trained_rows") or {}
            if n >= ANN_MIN_ROWS or (force_ann and n >= 256) or (trained and n >= 256):
                for col in ("text_vec", "image_vec"):
                    grown = col in have and n >= ANN_RETRAIN_GROWTH * max(1, int(trained.get(col, n)))
                    if col not in have or grown:
                        self._create_ann(t, col, n)
                        trained[col] = n
                        done[col] = "built"
                self._meta["ann_trained_rows"] = trained
                self._write_meta()
            if n >= SCALAR_INDEX_MIN_ROWS:
                for col, cfg in (("id", BTree()), ("objects", LabelList()), ("object_terms", LabelList()),
                                 ("labels", LabelList()), ("colours", LabelList())):
                    if col not in have:
                        t.create_index(col, config=cfg, replace=True)
                        done[col] = "built"
        f = self._table(FILES)
        if f is not None:
            if f.count_rows() >= SCALAR_INDEX_MIN_ROWS and "path" not in self._index_names(f):
                f.create_index("path", config=BTree(), replace=True)
                done["path"] = "built"
        return done

    def _create_ann(self, t: Any, column: str, n: int) -> None:
        """IVF-HNSW over 8-bit scalar-quantised vectors, one HNSW graph per ~250k items.

        Chosen by measurement (docs/SEARCH.md): at 10k items an HNSW-SQ search takes ~6-8 ms
        against ~18 ms for Lance's exact scan and ~14 ms for IVF-PQ with re-ranking, and it
        builds fast; IVF-PQ training on the float16 visual vectors took minutes even at 10k.
        """
        parts = max(1, round(n / HNSW_PARTITION_ROWS))
        log.info("building IVF-HNSW-SQ index on %s (%d rows, %d partitions)", column, n, parts)
        t.create_index(column, config=IvfHnswSq(distance_type="cosine", num_partitions=parts), replace=True)


from oculi.store.lance_store import LanceStore  # noqa: E402  (re-exported: the store of these collections)

__all__ = ["LanceCollection", "LanceStore", "compile_filter", "directory_lock", "items_schema", "write_json_atomic"]
