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

Why this is crash-safe: every Lance write (append, merge, delete, index build, compaction)
writes new data files first and then commits a new table version by writing one manifest; a
process killed at any moment leaves the previous version intact and a few unreferenced files
(removed by a later cleanup). A collection directory appears by an atomic rename of a fully
written temporary directory, and is dropped by renaming it away before deleting it.

Indexes: a full-text (BM25) index on the document, built with the first batch and kept up to
date by ``optimize``; IVF-HNSW-SQ vector indexes on both vector columns once a collection holds
``ANN_MIN_ROWS`` items (below that an exact scan is faster than the index is useful; see
docs/SEARCH.md); a B-tree on ``id`` and label-list indexes on the filterable list columns once
it holds ``SCALAR_INDEX_MIN_ROWS``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

os.environ.setdefault("LANCE_LOG", "error")  # Lance's Rust logger warns on stderr otherwise
os.environ.setdefault("LANCEDB_LOG", "error")

import lancedb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from lancedb.index import FTS, BTree, IvfHnswSq, LabelList  # noqa: E402

from oculi.core.errors import InputError, NotFoundError, OculiError  # noqa: E402
from oculi.store.base import (  # noqa: E402
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
    validate_collection_name,
)
from oculi.store.lance_records import LanceRecords, record_schema  # noqa: E402
from oculi.store.records import RecordTable  # noqa: E402

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
#: Old table versions are removed by ``optimize`` once older than this.
CLEANUP_AFTER = timedelta(minutes=5)
#: Rows per ``IN (...)`` list in deletes and look-ups.
IN_CHUNK = 512

DEFAULT_COLUMNS = SEARCH_COLUMNS

def _create_record_tables(coll: "LanceCollection") -> None:
    for table in RecordTable:
        coll._records(table)


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


def compile_filter(f: Filter | None, table: str = ITEMS) -> str | None:
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

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(root, fn)).st_size
            except OSError:
                pass
    return total


def _vec_array(vectors: Sequence[np.ndarray], dim: int, dtype: Any) -> pa.FixedSizeListArray:
    np_dtype = np.float16 if dtype == pa.float16() else np.float32
    mat = np.zeros((len(vectors), dim), dtype=np_dtype)
    for i, v in enumerate(vectors):
        a = np.asarray(v, dtype=np.float32).reshape(-1)
        if a.shape[0] != dim:
            raise OculiError(f"vector has {a.shape[0]} dimensions; this collection stores {dim}")
        mat[i] = a
    return pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1), type=dtype), dim)


def _flock_or_holder(fd: int, wait: bool) -> str | None:
    """Take an exclusive ``flock`` on ``fd`` and write this process's pid into the file; when
    another process holds it (and ``wait`` is False) take nothing and return that pid's text."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        try:
            return os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        except OSError:
            return "?"
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return None


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.Lock())


# --- collection ----------------------------------------------------------------------------

class LanceCollection(LanceRecords):
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
        self._migrate_if_needed()

    # --- meta ---------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"collection {self.name!r} has no {META_FILE}; it is not an oculi collection") from None
        except (OSError, ValueError) as e:
            raise OculiError(f"collection {self.name!r}: cannot read {META_FILE} ({e})") from None
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
        with self._tlock:
            t = self._tables.get(name)
            if t is not None:
                return t
            if name == ITEMS and "text_dim" not in self._meta:
                return None
            try:
                t = self._db.open_table(name)
            except Exception:  # noqa: BLE001 - missing or never committed
                return None
            self._tables[name] = t
            return t

    def _files(self) -> Any:
        t = self._table(FILES)
        if t is None:
            with self._tlock:
                t = self._db.create_table(FILES, schema=FILES_SCHEMA, mode="overwrite")
                self._tables[FILES] = t
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
            t = self._db.create_table(ITEMS, schema=items_schema(text_dim, image_dim), mode="overwrite")
            self._tables[ITEMS] = t
            self._meta.update(text_dim=text_dim, image_dim=image_dim)
            self._write_meta()
            return t

    # --- reading ---------------------------------------------------------------------------
    def count(self) -> int:
        t = self._table(ITEMS)
        return 0 if t is None else int(t.count_rows())

    def file_count(self) -> int:
        t = self._table(FILES)
        return 0 if t is None else int(t.count_rows())

    def bytes_on_disk(self) -> int:
        return _dir_size(self.path)

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

    def indices(self) -> list[dict[str, Any]]:
        out = []
        for tname in (ITEMS, FILES, *(t.value for t in RecordTable)):
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

    def item_ids(self) -> set[str]:
        out: set[str] = set()
        for rows in self.iter_items(["id"]):
            out.update(r["id"] for r in rows)
        return out

    def file_states(self) -> dict[str, FileRecord]:
        t = self._table(FILES)
        if t is None:
            return {}
        tab = t.search().select(["path", "id", "size", "mtime_ns", "seen_at"]).limit(None).to_arrow()
        cols = [tab.column(c).to_pylist() for c in ("path", "id", "size", "mtime_ns", "seen_at")]
        return {p: FileRecord(p, i, s, m, a or 0.0) for p, i, s, m, a in zip(*cols)}

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

    def iter_items(self, columns: Sequence[str], *, batch_size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        t = self._table(ITEMS)
        if t is None:
            return
        reader = t.search().select(list(columns)).to_batches(batch_size)
        for batch in reader:
            if batch.num_rows:
                yield batch.to_pylist()

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
    @contextlib.contextmanager
    def writer(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the collection's writer lock (one writer per collection across processes).

        Raises:
            InputError: another process (or, with ``wait=False``, another thread) is writing.
        """
        if self._writer_owner == threading.get_ident():  # re-entrant for the holding thread
            yield
            return
        tlock = _process_lock(self.path)
        if not tlock.acquire(blocking=wait):
            raise InputError(f"collection {self.name!r} is being written by another job; try again when it finishes")
        fd = -1
        try:
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            holder = _flock_or_holder(fd, wait)
            if holder is not None:
                raise InputError(
                    f"collection {self.name!r} is being written by another process (pid {holder}); "
                    "wait for it to finish"
                )
            self._writer_owner = threading.get_ident()
            try:
                yield
            finally:
                self._writer_owner = None
                self._meta["updated_at"] = time.time()
                with contextlib.suppress(OSError):
                    self._write_meta()
        finally:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            tlock.release()

    def set_models(self, models: dict[str, str]) -> None:
        """Record which models produced the stored observations and vectors."""
        if self._meta.get("models") != models:
            self._meta["models"] = dict(models)
            self._write_meta()

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

    def update_items(self, items: Sequence[ItemRecord]) -> None:
        """Replace stored items (matched by id) in one commit; ids not stored are ignored."""
        if not items:
            return
        t = self._table(ITEMS)
        if t is None:
            return
        data = self._items_table(list({it.id: it for it in items}.values()), t.schema)
        t.merge_insert("id").when_matched_update_all().execute(data)

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

    def repoint_items(self, moves: dict[str, str]) -> None:
        """Set the display path of items whose path was forgotten but which have other files."""
        t = self._table(ITEMS)
        if t is None:
            return
        for iid, path in moves.items():
            t.update(where=f"id = {sql_str(iid)}", values={"path": path, "name": os.path.basename(path)})

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: bool = False) -> Iterator[None]:
        """An exclusive named lock within the collection, across processes (``flock`` on a file
        under ``.locks/``; released by the OS if the holder dies)."""
        safe = hashlib.sha256(name.encode()).hexdigest()[:24]
        d = self.path / ".locks"
        d.mkdir(exist_ok=True)
        fd = os.open(d / f"{safe}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            holder = _flock_or_holder(fd, wait)
            if holder is not None:
                raise InputError(f"{name} is being processed by another process (pid {holder}); wait for it to finish")
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # --- maintenance -------------------------------------------------------------------------
    def _create_fts(self, t: Any) -> None:
        t.create_index("doc", config=FTS(with_position=False, stem=True, remove_stop_words=True, ascii_folding=True),
                       replace=True)

    def optimize(self, *, force_ann: bool = False) -> dict[str, Any]:
        """Compact small fragments, bring indexes up to date, build the ANN/scalar indexes once the
        collection is big enough, and remove table versions older than ``CLEANUP_AFTER``."""
        done: dict[str, Any] = {}
        t = self._table(ITEMS)
        if t is not None:
            n = int(t.count_rows())
            have = self._index_names(t)
            if n and "doc" not in have:
                self._create_fts(t)
                done["fts"] = "built"
            if n >= ANN_MIN_ROWS or (force_ann and n >= 256):
                trained = self._meta.get("ann_trained_rows") or {}
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
            t.optimize(cleanup_older_than=CLEANUP_AFTER)
        f = self._table(FILES)
        if f is not None:
            if f.count_rows() >= SCALAR_INDEX_MIN_ROWS and "path" not in self._index_names(f):
                f.create_index("path", config=BTree(), replace=True)
            f.optimize(cleanup_older_than=CLEANUP_AFTER)
        for table in RecordTable:
            r = self._table(table.value)
            if r is not None:
                r.optimize(cleanup_older_than=CLEANUP_AFTER)
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


# --- store ---------------------------------------------------------------------------------

class LanceStore:
    """Collections under one directory (``Settings.collections_dir``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._open: dict[str, LanceCollection] = {}
        self._lock = threading.Lock()

    def _dir(self, name: str) -> Path:
        return self.root / validate_collection_name(name)

    def exists(self, name: str) -> bool:
        return (self._dir(name) / META_FILE).is_file()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / META_FILE).is_file())

    def list_collections(self) -> list[CollectionInfo]:
        out = []
        for n in self.names():
            try:
                out.append(self.open_collection(n).info())
            except OculiError as e:
                log.warning("skipping collection %s: %s", n, e)
        return out

    def open_collection(self, name: str) -> LanceCollection:
        d = self._dir(name)
        with self._lock:
            c = self._open.get(d.name)
            if c is not None and (d / META_FILE).is_file():
                return c
            if not (d / META_FILE).is_file():
                known = ", ".join(self.names()) or "none yet"
                raise NotFoundError(f"no collection named {name!r} (collections: {known}); create one with `oculi index PATH --collection {d.name}`")
            c = LanceCollection(d, d.name)
            self._open[d.name] = c
            return c

    def create_collection(self, name: str, *, exist_ok: bool = True) -> LanceCollection:
        d = self._dir(name)
        if (d / META_FILE).is_file():
            if not exist_ok:
                raise InputError(f"collection {d.name!r} already exists")
            return self.open_collection(d.name)
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep()
        tmp = self.root / f".tmp-{d.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            now = time.time()
            write_json_atomic(tmp / META_FILE, {
                "name": d.name, "schema_version": STORE_SCHEMA_VERSION, "store": "lance",
                "created_at": now, "updated_at": now, "models": {},
            })
            db = lancedb.connect(str(tmp))
            db.create_table(FILES, schema=FILES_SCHEMA)
            for table in RecordTable:
                db.create_table(table.value, schema=record_schema(table))
            (tmp / "blobs").mkdir()
            try:
                os.rename(tmp, d)  # atomic; fails if another process created it meanwhile
            except OSError:
                if not (d / META_FILE).is_file():
                    if d.exists() and not any(d.iterdir()):
                        d.rmdir()
                        os.rename(tmp, d)
                    else:
                        raise InputError(f"{d} exists and is not an oculi collection; move it away") from None
            _fsync_dir(self.root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.open_collection(d.name)

    def drop_collection(self, name: str) -> None:
        c = self.open_collection(name)
        with c.writer():
            trash = self.root / f".trash-{c.name}-{uuid.uuid4().hex[:8]}"
            os.rename(c.path, trash)
            _fsync_dir(self.root)
        with self._lock:
            self._open.pop(c.name, None)
        shutil.rmtree(trash, ignore_errors=True)

    def blob_dir(self, name: str) -> Path:
        return self.open_collection(name).path / "blobs"

    def _sweep(self) -> None:
        """Remove leftovers of creations/drops that were killed half-way (older than an hour)."""
        cutoff = time.time() - 3600
        for p in self.root.iterdir():
            if p.name.startswith((".tmp-", ".trash-")):
                try:
                    if p.name.startswith(".trash-") or p.stat().st_mtime < cutoff:
                        shutil.rmtree(p, ignore_errors=True)
                except OSError:
                    pass
