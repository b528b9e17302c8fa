"""The PostgreSQL + pgvector store: every collection in one database, shared by any number of
processes (``oculi serve`` replicas behind a load balancer, CLI runs, watchers).

Open it with ``oculi --store postgresql://user@host/db`` (or ``OCULI_STORE``, or ``store =`` in
``oculi.toml``). The database needs the ``vector`` extension (pgvector 0.6 or later); the store
creates it if the user may, and its tables on first use.

Layout (all names prefixed ``oculi_``)::

    oculi_meta              schema version of this layout
    oculi_collections       one row per collection: id, name, dims, models, times
    oculi_items_<id>        one table per collection (its vector columns have the collection's
                            dimensions): metadata, document (+ a generated tsvector), vectors,
                            thumbnail; HNSW indexes (cosine) on both vectors once it holds
                            ``ANN_MIN_ROWS`` items, GIN on the document and list columns
    oculi_files             (collection, path) -> item id, size, mtime
    oculi_sources / oculi_tracks / oculi_events
                            footage records (``oculi.store.records``), keyed by (collection, id)
    oculi_blobs             uploaded originals (``PgBlobStore``): every replica sees every upload
    oculi_jobs / oculi_job_items
                            the server's ingestion queue (``oculi.server.pg_jobs``)

Filtered vector search returns the number of rows asked for, which a plain HNSW scan with a
``WHERE`` does not (the filter is applied to the ``ef_search`` candidates after the scan):

- when the filter matches at most ``EXACT_MAX`` rows, the search is exact over those rows (a
  materialised filter, then a sort by distance: cheap, and exact);
- otherwise the HNSW scan runs with ``hnsw.iterative_scan`` (pgvector >= 0.8) or a raised
  ``hnsw.ef_search``; if it still returns fewer rows than asked for, the search is re-run exactly.

Writers: ``writer()`` is a PostgreSQL advisory lock per collection, held by a connection of its
own (released by the server if the process dies); ``lock(name)`` likewise. Every write is one
transaction, so a killed writer leaves the last committed state. PostgreSQL's WAL and page
checksums guard the data; ``check_collection`` reads every table and index.

A restarted server: every connection it ended is dropped and opened again on next use. A read
that met the lost connection runs once more on a fresh one; a write never does (it stopped
either before its commit, keeping nothing, or at it): it raises ``StoreUnavailableError``, as
does any call while the server is down (exit 7, HTTP 503). A writer whose lock went with the
old connection stops there rather than write without it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence, TypeVar

import numpy as np

from oculi.core.errors import InputError, NotFoundError, OculiError, StoreFullError, StoreUnavailableError
from oculi.store.base import (
    SEARCH_COLUMNS,
    STORE_SCHEMA_VERSION,
    TABLE_FILTER_FIELDS,
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
from oculi.store.blobs import BlobRoot, BlobStore, CacheBound, check_key, repair_blobs, verify_blobs
from oculi.store.integrity import CollectionCheck, RepairReport
from oculi.store.records import RECORD_TYPES, ColumnType, RecordTable, record_type_of

log = logging.getLogger(__name__)

#: Layout version of the ``oculi_*`` tables (``oculi_meta.schema_version``).
PG_LAYOUT_VERSION = 1
#: HNSW indexes are built by ``optimize`` once a collection holds this many items (below, an
#: exact scan is as fast); afterwards PostgreSQL keeps them up to date on every insert.
ANN_MIN_ROWS = 5_000
#: A filter matching at most this many rows is searched exactly (materialised, then sorted).
EXACT_MAX = 20_000
#: HNSW build and search parameters (pgvector defaults are m=16, ef_construction=64, ef_search=40).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 100
VECTOR_COLUMNS = ("text_vec", "image_vec")
#: The vector columns ``optimize`` builds HNSW indexes on (the image vector costs ~3.3x the text
#: vector's build; ``benchmarks/bench_store.py --ann text_vec`` indexes the text vector alone).
ANN_COLUMNS: tuple[str, ...] = VECTOR_COLUMNS
#: Upper bound on ``maintenance_work_mem`` for an HNSW build on a server on another machine (its
#: memory is unknown here; a larger server setting is kept). A server on this machine may use up
#: to ``LOCAL_BUILD_MEMORY_SHARE`` of the memory available now.
REMOTE_BUILD_MEMORY_MAX = 1 << 30
LOCAL_BUILD_MEMORY_SHARE = 0.5

_ITEM_COLUMNS: dict[str, str] = {
    "id": "text PRIMARY KEY", "sha256": "text", "path": "text", "name": "text", "kind": "text", "source_id": "text",
    "frame_index": "bigint", "timestamp": "double precision", "width": "integer", "height": "integer",
    "format": "text", "file_size": "bigint", "time": "double precision", "taken_at": "double precision",
    "camera": "text", "gps_lat": "double precision", "gps_lon": "double precision", "caption": "text",
    "doc": "text", "labels": "text[]", "objects": "text[]", "object_terms": "text[]", "colours": "text[]",
    "text": "text", "track_ids": "bigint[]", "observation": "text", "text_vec": "vector({td})",
    "image_vec": "vector({idim})", "thumbnail": "bytea", "indexed_at": "double precision",
}
ITEM_COLUMNS = tuple(_ITEM_COLUMNS)
_LIST_COLUMNS = ("labels", "objects", "object_terms", "colours", "track_ids")

_PG_TYPES = {
    ColumnType.STR: "text", ColumnType.FLOAT: "double precision", ColumnType.INT: "bigint",
    ColumnType.STR_LIST: "text[]", ColumnType.JSON: "text", ColumnType.BYTES: "bytea",
}

_SQL_OPS = {Op.EQ: "=", Op.NE: "<>", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}


def _q(name: str) -> str:
    """A quoted identifier (only ever our own column names, checked against the schema)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise InputError(f"not a column: {name!r}")
    return f'"{name}"'


def compile_filter(f: Filter | None, table: str = "items") -> tuple[str, list[Any]]:
    """``(sql, params)`` of a filter: every value a bind parameter, never spliced."""
    check_filter_table(f, table)
    if not f:
        return "", []
    known = TABLE_FILTER_FIELDS[table]
    parts: list[str] = []
    params: list[Any] = []
    for c in f.conditions:
        col = _q(c.field)
        ftype = known[c.field]
        if c.op is Op.HAS:
            elem = "bigint" if c.field == "track_ids" else "text"
            parts.append(f"{col} @> ARRAY[%s::{elem}]")
            params.append(int(c.value) if c.field == "track_ids" else str(c.value))
        elif c.op is Op.GLOB:
            parts.append(f"{col} ~ %s")
            params.append(glob_to_regex(str(c.value)))
        elif c.op is Op.CONTAINS:
            parts.append(f"strpos(lower({col}), lower(%s)) > 0")
            params.append(str(c.value))
        else:
            parts.append(f"{col} {_SQL_OPS[c.op]} %s")
            params.append(float(c.value) if ftype is FieldType.NUM else str(c.value))
    return " AND ".join(parts), params


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key."""
    return int.from_bytes(hashlib.sha256("\x00".join(("oculi", *parts)).encode()).digest()[:8], "big", signed=True)


def hnsw_graph_bytes(rows: int, dim: int, m: int = HNSW_M) -> int:
    """Memory pgvector's HNSW build needs to hold the whole graph (``maintenance_work_mem``).

    Per row: the float32 vector (4 bytes per dimension plus a header), the layer-0 neighbour list
    (2m candidates of 16 bytes) and the rarer upper layers, and the element itself (heap ids,
    offsets): ~(4·dim + 40·m + 256) bytes, plus 15% headroom. Past this pgvector keeps building
    on disk, many times slower ("hnsw graph no longer fits into maintenance_work_mem").
    """
    return int(1.15 * rows * (4 * dim + 40 * m + 256)) + (64 << 20)


def available_memory() -> int:
    """Bytes of memory available on this machine now (``MemAvailable``; 0 if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def hnsw_build_settings(rows: int, dim: int, *, current_mem: int, local: bool, available: int,
                        cpus: int | None) -> dict[str, int]:
    """``maintenance_work_mem`` (bytes) and ``max_parallel_maintenance_workers`` for one HNSW build.

    Memory: enough for the graph (``hnsw_graph_bytes``), never less than the server's own setting,
    and at most ``LOCAL_BUILD_MEMORY_SHARE`` of the available memory when the server runs on this
    machine (``REMOTE_BUILD_MEMORY_MAX`` otherwise); a parallel build's leader and workers hold
    the graph in one shared memory segment of this size, so it is sized to the graph, not to the
    cap (at 1M × 384-d: 2.7 GB asked, 2.4 GB peak for the whole server). Workers: on this machine one
    per core besides the leader (pgvector >= 0.6 builds HNSW in parallel); a remote server keeps
    its own setting (-1 here).

    Example:
        >>> s = hnsw_build_settings(1_000_000, 384, current_mem=64 << 20, local=True, available=16 << 30, cpus=2)
        >>> round(s["maintenance_work_mem"] / 2**30, 1), s["max_parallel_maintenance_workers"]
        (2.7, 1)
    """
    want = hnsw_graph_bytes(rows, dim)
    cap = int(LOCAL_BUILD_MEMORY_SHARE * available) if local and available > 0 else REMOTE_BUILD_MEMORY_MAX
    mem = max(current_mem, min(want, cap))
    workers = max(0, (cpus or 1) - 1) if local else -1
    return {"maintenance_work_mem": mem, "max_parallel_maintenance_workers": workers}


def redact(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1@", url)


#: SQLSTATEs of a session the server ended: shut down, crashed, or not yet accepting connections
#: (class 08, connection exceptions, counts as well; a client-side failure has no SQLSTATE).
_ENDED_STATES = ("57P01", "57P02", "57P03")

F = TypeVar("F", bound=Callable[..., Any])


def connection_lost(e: BaseException) -> bool:
    """Whether ``e`` says the connection is gone (the server stopped or restarted, the network
    dropped it), rather than that a statement failed."""
    psycopg = _pg()
    if not isinstance(e, psycopg.OperationalError):
        return False
    state = e.sqlstate
    return state is None or state.startswith("08") or state in _ENDED_STATES


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _store_of(obj: Any) -> "PgStore":
    return obj if isinstance(obj, PgStore) else obj.store


def _reads(fn: F) -> F:
    """A read: when the connection was lost (a restarted server) it runs once more on a fresh
    one; if that fails too, or the read was part of a transaction, ``StoreUnavailableError``."""

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        store = _store_of(self)
        try:
            return fn(self, *args, **kwargs)
        except _pg().OperationalError as e:
            if not connection_lost(e):
                raise
            if store.in_transaction():
                raise store.unavailable(e, "reading") from None
            store.drop_connection()
            log.warning("the connection to the PostgreSQL store %s was lost (%s); reading again on a new one",
                        store.url, _first_line(e))
        try:
            return fn(self, *args, **kwargs)
        except _pg().OperationalError as e:
            if connection_lost(e):
                raise store.unavailable(e, "reading") from None
            raise

    return run  # type: ignore[return-value]


def _writes(fn: F) -> F:
    """A write: a lost connection is ``StoreUnavailableError``, never a second try (the write
    may have been committed just before the connection went)."""

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        store = _store_of(self)
        if isinstance(self, PgCollection):
            self._check_writer_lock()
        try:
            return fn(self, *args, **kwargs)
        except _pg().OperationalError as e:
            if connection_lost(e):
                raise store.unavailable(e, "writing") from None
            raise

    return run  # type: ignore[return-value]


def _pg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency of oculi
        raise OculiError("the PostgreSQL store needs psycopg: pip install 'psycopg[binary]' pgvector") from None
    return psycopg


class PgConnection:
    """One long-lived connection shared by a component's threads under its own lock (job
    queues, API keys), opened again once the server ended it (a restart).

    ``execute`` runs a ``SELECT`` that met the ended connection once more on a new one; any
    other statement, and ``transaction`` (a cursor in one transaction), is never run twice: a
    lost connection raises ``StoreUnavailableError``, as does every call while the server is down.

    Args:
        connect: Opens a new connection (autocommit); raises ``StoreUnavailableError`` if it cannot.
        url: The server, for messages (without its password).
    """

    def __init__(self, connect: Callable[[], Any], url: str) -> None:
        self._connect = connect
        self.url = url
        self._c = connect()

    def _conn(self) -> Any:
        if self._c.closed or getattr(self._c, "broken", False):
            with contextlib.suppress(Exception):
                self._c.close()
            self._c = self._connect()
            log.info("connected again to the PostgreSQL store %s", self.url)
        return self._c

    def _lost(self, e: BaseException) -> StoreUnavailableError:
        with contextlib.suppress(Exception):
            self._c.close()
        return StoreUnavailableError(f"lost the connection to the PostgreSQL store {self.url}: {_first_line(e)}")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        retries = 1 if sql.lstrip()[:6].upper() == "SELECT" else 0
        while True:
            try:
                return self._conn().execute(sql, args)
            except _pg().OperationalError as e:
                if not connection_lost(e):
                    raise
                if not retries:
                    raise self._lost(e) from None
                retries -= 1
                self._c.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        try:
            c = self._conn()
            with c.transaction(), c.cursor() as cur:
                yield cur
        except _pg().OperationalError as e:
            if connection_lost(e):
                raise self._lost(e) from None
            raise

    def close(self) -> None:
        self._c.close()


class PgStore:
    """Collections in one PostgreSQL database (see the module doc).

    Args:
        url: ``postgresql://user[:password]@host[:port]/db`` (libpq URL; ``?host=/socket/dir`` works).
        home: This machine's oculi home: where blobs that a reader needs as a file are cached.
        blobs: Where uploads' bytes go when not in the ``oculi_blobs`` table (the default):
            an S3-compatible bucket or a shared folder (``oculi.store.blobs.open_blob_root``).
    """

    def __init__(self, url: str, *, home: Path | str | None = None, blobs: BlobRoot | None = None,
                 cache_bytes: int | None = None) -> None:
        self._url = url
        self.url = redact(url)
        self.home = Path(home) if home is not None else None
        self.blob_root = blobs
        #: the local copies ``local_path`` makes of blob rows (for the video decoder), bounded like the S3 cache
        self.cache = CacheBound(self._cache_base(), cache_bytes, "PostgreSQL blob cache")
        self._local = threading.local()
        self._conns: list[Any] = []
        self._clock = threading.Lock()
        self._ready = False
        self._open: dict[str, PgCollection] = {}
        self.iterative_scan = False
        #: Connections found lost so far, all threads (a writer compares it to notice a restart).
        self.lost_connections = 0

    # --- connections ---------------------------------------------------------------------------
    def connect(self, *, autocommit: bool = True) -> Any:
        """A new connection (vectors as numpy arrays). The caller closes it."""
        psycopg = _pg()
        try:
            conn = psycopg.connect(self._url, autocommit=autocommit, connect_timeout=10)
        except psycopg.OperationalError as e:
            raise self._cannot_connect(e) from None
        if self._ready:
            try:
                self._register(conn)
            except psycopg.OperationalError as e:  # the server went away between the two
                conn.close()
                raise self._cannot_connect(e) from None
        return conn

    def _cannot_connect(self, e: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"cannot connect to the PostgreSQL store {self.url}: {_first_line(e)}")

    @staticmethod
    def _register(conn: Any) -> None:
        from pgvector.psycopg import register_vector

        register_vector(conn)

    def conn(self) -> Any:
        """This thread's connection (autocommit; ``transaction()`` for several statements)."""
        self._setup()
        c = getattr(self._local, "conn", None)
        if c is not None and (c.closed or getattr(c, "broken", False)):  # the server ended it (a restart): a new one
            self.drop_connection()
            c = None
        if c is None:
            c = self.connect()
            try:
                c.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")  # per session: a search is one round trip
                if self.iterative_scan:
                    c.execute("SET hnsw.iterative_scan = relaxed_order")
            except _pg().OperationalError as e:
                c.close()
                if connection_lost(e):
                    raise self._cannot_connect(e) from None
                raise
            self._local.conn = c
            with self._clock:
                self._conns.append(c)
        return c

    def drop_connection(self) -> None:
        """Close and forget this thread's connection (it was lost); the next ``conn()`` opens one."""
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is None:
            return
        with self._clock:
            self.lost_connections += 1
            if c in self._conns:
                self._conns.remove(c)
        with contextlib.suppress(Exception):
            c.close()

    def in_transaction(self) -> bool:
        """Whether this thread is inside ``transaction()`` (a read there cannot run again alone)."""
        return getattr(self._local, "depth", 0) > 0

    def unavailable(self, e: BaseException, doing: str) -> StoreUnavailableError:
        """The error for a connection lost while ``doing``; this thread's connection is dropped."""
        self.drop_connection()
        if doing == "writing":
            return StoreUnavailableError(
                f"lost the connection to the PostgreSQL store {self.url} while writing ({_first_line(e)}); "
                "the write was kept whole or not at all: run it again once the server is back")
        return StoreUnavailableError(f"lost the connection to the PostgreSQL store {self.url} while {doing}: {_first_line(e)}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one transaction on this thread's connection; committed on success."""
        c = self.conn()
        psycopg = _pg()
        for w in getattr(self._local, "writers", ()):  # a reconnect must not write past a lost writer lock
            w._check_writer_lock()
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            with c.transaction(), c.cursor() as cur:
                yield cur
        except psycopg.errors.DiskFull:
            raise StoreFullError(f"the PostgreSQL store {self.url} is out of disk space; nothing of this write was kept") from None
        finally:
            self._local.depth -= 1

    def close(self) -> None:
        with self._clock:
            for c in self._conns:
                with contextlib.suppress(Exception):
                    c.close()
            self._conns.clear()
        self._local = threading.local()

    def _setup(self) -> None:
        if self._ready:
            return
        with self._clock:
            if self._ready:
                return
            try:
                with self.connect() as c:
                    self._create_schema(c)
                    self._register(c)
                    ver = c.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()[0]
            except _pg().OperationalError as e:
                if connection_lost(e):
                    raise self._cannot_connect(e) from None
                raise
            self.pgvector_version = tuple(int(x) for x in re.findall(r"\d+", ver)[:2])
            self.iterative_scan = self.pgvector_version >= (0, 8)
            self._ready = True

    def _create_schema(self, c: Any) -> None:
        psycopg = _pg()
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("schema"),))
            if c.execute("SELECT 1 FROM pg_extension WHERE extname='vector'").fetchone() is None:
                try:
                    c.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg.Error as e:
                    raise OculiError(
                        f"the PostgreSQL store {self.url} needs the pgvector extension: "
                        f"{str(e).strip().splitlines()[0]} (a superuser can run CREATE EXTENSION vector)"
                    ) from None
            c.execute("CREATE TABLE IF NOT EXISTS oculi_meta (key text PRIMARY KEY, value text NOT NULL)")
            row = c.execute("SELECT value FROM oculi_meta WHERE key='layout_version'").fetchone()
            if row is not None and int(row[0]) > PG_LAYOUT_VERSION:
                raise OculiError(f"the PostgreSQL store {self.url} was written by a newer oculi (layout {row[0]}); upgrade oculi")
            c.execute("""CREATE TABLE IF NOT EXISTS oculi_collections (
                id serial PRIMARY KEY, name text UNIQUE NOT NULL, created_at double precision,
                updated_at double precision, schema_version integer NOT NULL, text_dim integer,
                image_dim integer, models jsonb NOT NULL DEFAULT '{}'::jsonb, ann_rows integer)""")
            # which model made each kind of vector (model id + dimension); added after the first release
            c.execute("ALTER TABLE oculi_collections ADD COLUMN IF NOT EXISTS vector_spaces jsonb NOT NULL DEFAULT '{}'::jsonb")
            c.execute("""CREATE TABLE IF NOT EXISTS oculi_files (
                coll integer NOT NULL REFERENCES oculi_collections(id) ON DELETE CASCADE, path text NOT NULL,
                id text NOT NULL, size bigint, mtime_ns bigint, seen_at double precision, PRIMARY KEY (coll, path))""")
            c.execute("CREATE INDEX IF NOT EXISTS oculi_files_id ON oculi_files (coll, id)")
            for table in RecordTable:
                cols = RECORD_TYPES[table].COLUMNS
                defs = ", ".join(f"{_q(n)} {_PG_TYPES[t]}" for n, t in cols.items() if n != "id")
                c.execute(f"""CREATE TABLE IF NOT EXISTS oculi_{table.value} (
                    coll integer NOT NULL REFERENCES oculi_collections(id) ON DELETE CASCADE, id text NOT NULL,
                    {defs}, PRIMARY KEY (coll, id))""")
                if "start_time" in cols:
                    c.execute(f"CREATE INDEX IF NOT EXISTS oculi_{table.value}_start ON oculi_{table.value} (coll, start_time)")
            c.execute("""CREATE TABLE IF NOT EXISTS oculi_blobs (
                coll integer NOT NULL REFERENCES oculi_collections(id) ON DELETE CASCADE, key text NOT NULL,
                data bytea NOT NULL, created_at double precision, PRIMARY KEY (coll, key))""")
            c.execute("INSERT INTO oculi_meta VALUES ('layout_version', %s) ON CONFLICT (key) DO NOTHING",
                      (str(PG_LAYOUT_VERSION),))

    # --- collections -----------------------------------------------------------------------------
    def _row(self, name: str) -> tuple | None:
        return self.conn().execute(
            "SELECT id, name, created_at, updated_at, schema_version, text_dim, image_dim FROM oculi_collections WHERE name=%s",
            (name,),
        ).fetchone()

    @_reads
    def exists(self, name: str) -> bool:
        return self._row(validate_collection_name(name)) is not None

    @_reads
    def names(self) -> list[str]:
        return [r[0] for r in self.conn().execute("SELECT name FROM oculi_collections ORDER BY name").fetchall()]

    @_reads
    def list_collections(self) -> list[CollectionInfo]:
        return [self.open_collection(n).info() for n in self.names()]

    @_reads
    def open_collection(self, name: str) -> "PgCollection":
        n = validate_collection_name(name)
        row = self._row(n)
        if row is None:
            self._open.pop(n, None)
            raise NotFoundError(f"no collection named {n!r}")
        c = self._open.get(n)
        if c is None or c.cid != row[0]:
            c = self._open[n] = PgCollection(self, row[0], n)
        return c

    @_writes
    def create_collection(self, name: str, *, exist_ok: bool = True) -> "PgCollection":
        n = validate_collection_name(name)
        now = time.time()
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO oculi_collections (name, created_at, updated_at, schema_version) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                (n, now, now, STORE_SCHEMA_VERSION),
            )
            created = cur.fetchone() is not None
        if not created and not exist_ok:
            raise InputError(f"collection {n!r} already exists")
        return self.open_collection(n)

    @_writes
    def drop_collection(self, name: str) -> None:
        c = self.open_collection(name)
        with c.writer():
            with self.transaction() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {c.items_table}")
                cur.execute("DELETE FROM oculi_collections WHERE id=%s", (c.cid,))
        self._open.pop(c.name, None)
        if self.home is not None:
            import shutil

            shutil.rmtree(self._cache_dir(c.cid), ignore_errors=True)

    def _cache_base(self) -> Path:
        base = self.home if self.home is not None else Path(os.environ.get("TMPDIR", "/tmp")) / "oculi-blob-cache"
        return base / "cache" / "pg-blobs"

    def _cache_dir(self, cid: int) -> Path:
        return self._cache_base() / hashlib.sha256(self._url.encode()).hexdigest()[:12] / str(cid)

    @_reads
    def blobs(self, name: str) -> BlobStore:
        c = self.open_collection(name)
        if self.blob_root is not None:
            return self.blob_root.collection(c.name)
        return PgBlobStore(self, c.cid, c.name)

    # --- integrity -------------------------------------------------------------------------------
    @_reads
    def check_collection(self, name: str, *, hashes: bool = True) -> CollectionCheck:
        """Read every table of the collection and probe its indexes; PostgreSQL's WAL and page
        checksums guard the bytes (``hashes`` makes no difference here)."""
        t0 = time.monotonic()
        c = self.open_collection(name)
        chk = CollectionCheck(name=c.name, path=c.location)
        chk.notes.append("PostgreSQL guards the bytes (WAL, page checksums when enabled); every table and index was read")
        for table, n in c.table_counts().items():
            chk.tables[table] = {"rows": n, "ok": True}
        if self.blob_root is not None:  # uploads live outside the database: read and hash each one
            verify_blobs(self.blob_root.collection(c.name), chk, hashes=hashes, where=f"{self.blob_root.url}/{c.name}/")
        else:
            chk.blobs_checked = int(self.conn().execute("SELECT count(*) FROM oculi_blobs WHERE coll=%s", (c.cid,)).fetchone()[0])
        chk.elapsed_s = time.monotonic() - t0
        return chk

    @_writes
    def repair_collection(self, name: str) -> RepairReport:
        """Rebuild the collection's indexes (``REINDEX``); the rows are PostgreSQL's to keep."""
        t0 = time.monotonic()
        c = self.open_collection(name)
        rep = RepairReport(name=c.name)
        rep.before = self.check_collection(name)
        with c.writer():
            if c.has_items_table():
                self.conn().execute(f"REINDEX TABLE {c.items_table}")
                rep.actions.append(f"rebuilt the indexes of {c.items_table}")
            if self.blob_root is not None:  # uploads in a bucket: damaged ones set aside there
                repair_blobs(self.blob_root, c.name, rep)
        rep.elapsed_s = time.monotonic() - t0
        return rep


class PgBlobStore:
    """Uploaded originals as rows of ``oculi_blobs``; ``local_path`` caches one as a file."""

    def __init__(self, store: PgStore, cid: int, name: str) -> None:
        self.store = store
        self.cid = cid
        self.name = name

    def location(self, key: str) -> str:
        return f"{self.store.url}#{self.name}/blobs/{check_key(key)}"

    @_writes
    def put(self, key: str, data: bytes) -> str:
        with self.store.transaction() as cur:
            cur.execute("INSERT INTO oculi_blobs (coll, key, data, created_at) VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                        (self.cid, check_key(key), bytes(data), time.time()))
        return self.location(key)

    @_writes
    def put_stream(self, key: str, stream: BinaryIO) -> str:
        return self.put(key, stream.read())

    @_reads
    def get(self, key: str) -> bytes:
        row = self.store.conn().execute("SELECT data FROM oculi_blobs WHERE coll=%s AND key=%s",
                                        (self.cid, check_key(key))).fetchone()
        if row is None:
            raise NotFoundError(f"no blob {key!r} in collection {self.name!r}")
        return bytes(row[0])

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    @_reads
    def exists(self, key: str) -> bool:
        return self.store.conn().execute("SELECT 1 FROM oculi_blobs WHERE coll=%s AND key=%s",
                                         (self.cid, check_key(key))).fetchone() is not None

    @_writes
    def delete(self, key: str) -> None:
        self.store.conn().execute("DELETE FROM oculi_blobs WHERE coll=%s AND key=%s", (self.cid, check_key(key)))

    def keys(self, prefix: str = "") -> Iterator[str]:
        yield from self._keys(prefix)

    @_reads
    def _keys(self, prefix: str) -> list[str]:
        return [k for (k,) in self.store.conn().execute(
            "SELECT key FROM oculi_blobs WHERE coll=%s AND starts_with(key, %s) ORDER BY key", (self.cid, prefix)).fetchall()]

    @_reads
    def local_path(self, key: str) -> Path:
        from oculi.store.integrity import write_bytes_atomic

        dest = self.store._cache_dir(self.cid) / check_key(key)
        if dest.is_file():
            with contextlib.suppress(FileNotFoundError):  # evicted meanwhile by another process: fetched again below
                CacheBound.touch(dest)  # used now: the last to be evicted
                return dest
        data = self.get(key)
        self.store.cache.make_room(len(data), keep=dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data)
        return dest


class PgCollection:
    """One collection of a ``PgStore`` (the ``Collection`` protocol)."""

    def __init__(self, store: PgStore, cid: int, name: str) -> None:
        self.store = store
        self.cid = int(cid)
        self.name = name
        self.items_table = f"oculi_items_{self.cid}"
        self._writer_owner: int | None = None
        self._writer_conn: Any = None  # the connection holding the writer lock, while held
        self._writer_seen = 0  # store.lost_connections when the writer lock was last known held
        self._writer_depth = 0

    @property
    def location(self) -> str:
        return f"{self.store.url}#{self.name}"

    def _c(self) -> Any:
        return self.store.conn()

    def _meta(self) -> tuple:
        row = self._c().execute(
            "SELECT created_at, updated_at, schema_version, text_dim, image_dim, models, ann_rows FROM oculi_collections WHERE id=%s",
            (self.cid,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no collection named {self.name!r} (it was dropped)")
        return row

    @_reads
    def has_items_table(self) -> bool:
        return self._meta()[3] is not None

    # --- reading ---------------------------------------------------------------------------------
    @_reads
    def count(self) -> int:
        if not self.has_items_table():
            return 0
        return int(self._c().execute(f"SELECT count(*) FROM {self.items_table}").fetchone()[0])

    @_reads
    def file_count(self) -> int:
        return int(self._c().execute("SELECT count(*) FROM oculi_files WHERE coll=%s", (self.cid,)).fetchone()[0])

    @_reads
    def table_counts(self) -> dict[str, int]:
        out = {"items": self.count(), "files": self.file_count()}
        for t in RecordTable:
            out[t.value] = self.count_records(t)
        return out

    @_reads
    def bytes_on_disk(self) -> int:
        if not self.has_items_table():
            return 0
        return int(self._c().execute("SELECT pg_total_relation_size(%s)", (self.items_table,)).fetchone()[0])

    @_reads
    def info(self) -> CollectionInfo:
        created, updated, ver, *_ = self._meta()
        return CollectionInfo(
            name=self.name, items=self.count(), files=self.file_count(), bytes_on_disk=self.bytes_on_disk(),
            created_at=created, updated_at=updated, schema_version=ver, path=self.location,
        )

    @_reads
    def models(self) -> dict[str, Any]:
        return dict(self._meta()[5] or {})

    @_reads
    def indices(self) -> list[dict[str, Any]]:
        rows = self._c().execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = %s OR indexname LIKE 'oculi_%%' ORDER BY indexname",
            (self.items_table,),
        ).fetchall()
        out = []
        for table, name, ddl in rows:
            if table != self.items_table:
                continue
            kind = "HNSW" if "hnsw" in ddl else "GIN" if " gin " in ddl.lower() else "BTREE"
            cols = re.findall(r"\(\s*\"?([a-z_]+)", ddl.split(" USING ", 1)[-1])[:1]
            out.append({"table": "items", "name": name, "type": kind, "columns": cols})
        return out

    @_reads
    def stats(self) -> dict[str, Any]:
        info = self.info()
        doc: dict[str, Any] = info.to_dict()
        doc["bytes_per_item"] = round(info.bytes_on_disk / info.items) if info.items else None
        doc["indices"] = self.indices()
        m = self._meta()
        doc["text_dim"], doc["image_dim"], doc["models"] = m[3], m[4], dict(m[5] or {})
        doc["time_range"], doc["top_objects"], doc["top_labels"] = [None, None], {}, {}
        if self.has_items_table():
            c = self._c()
            doc["time_range"] = list(c.execute(f"SELECT min(time), max(time) FROM {self.items_table}").fetchone())
            doc["top_objects"] = dict(c.execute(
                f"SELECT o, count(*) AS n FROM {self.items_table}, unnest(objects) AS o GROUP BY o ORDER BY n DESC, o LIMIT 10"
            ).fetchall())
            doc["top_labels"] = dict(c.execute(
                f"SELECT labels[1] AS l, count(*) AS n FROM {self.items_table} WHERE cardinality(labels) > 0 "
                "GROUP BY l ORDER BY n DESC, l LIMIT 10"
            ).fetchall())
        return doc

    @_reads
    def item_ids(self) -> set[str]:
        if not self.has_items_table():
            return set()
        return {r[0] for r in self._c().execute(f"SELECT id FROM {self.items_table}").fetchall()}

    @_reads
    def file_states(self) -> dict[str, FileRecord]:
        rows = self._c().execute("SELECT path, id, size, mtime_ns, seen_at FROM oculi_files WHERE coll=%s", (self.cid,)).fetchall()
        return {p: FileRecord(p, i, s, m, a or 0.0) for p, i, s, m, a in rows}

    @_reads
    def files_of(self, ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if not ids:
            return out
        for p, i in self._c().execute("SELECT path, id FROM oculi_files WHERE coll=%s AND id = ANY(%s) ORDER BY path",
                                      (self.cid, list(ids))).fetchall():
            out.setdefault(i, []).append(p)
        return out

    @staticmethod
    def _cols(columns: Sequence[str] | None) -> list[str]:
        cols = list(columns or SEARCH_COLUMNS)
        if "id" not in cols:
            cols = ["id", *cols]
        for c in cols:
            if c not in _ITEM_COLUMNS:
                raise InputError(f"unknown item column {c!r}")
        return cols

    def _rows(self, cur: Any, cols: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for r in cur.fetchall():
            d = dict(zip(cols, r))
            for k in _LIST_COLUMNS:
                if k in d and d[k] is None:
                    d[k] = []
            for k in ("text_vec", "image_vec"):
                if k in d and d[k] is not None:
                    d[k] = np.asarray(d[k], dtype=np.float32)
            if "thumbnail" in d and d["thumbnail"] is not None:
                d["thumbnail"] = bytes(d["thumbnail"])
            out.append(d)
        return out

    def iter_items(self, columns: Sequence[str], *, batch_size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        if not self.has_items_table():
            return
        cols = self._cols(columns)
        sel = ", ".join(_q(c) for c in cols)
        last = ""
        while True:
            rows = self._items_after(sel, cols, last, batch_size)
            if not rows:
                return
            last = rows[-1]["id"]
            keep = [c for c in columns]
            yield [{k: r[k] for k in keep} for r in rows] if "id" not in columns else rows

    @_reads
    def _items_after(self, sel: str, cols: list[str], last: str, batch_size: int) -> list[dict[str, Any]]:
        """One batch of ``iter_items``: the rows after id ``last`` (each batch a read of its own)."""
        cur = self._c().execute(f"SELECT {sel} FROM {self.items_table} WHERE id > %s ORDER BY id LIMIT %s", (last, batch_size))
        return self._rows(cur, cols)

    def iter_vectors(self, column: str, *, batch_size: int = 10_000) -> Iterator[tuple[list[str], np.ndarray]]:
        if column not in VECTOR_COLUMNS:
            raise InputError(f"unknown vector column {column!r}")
        for rows in self.iter_items(["id", column], batch_size=batch_size):
            yield [r["id"] for r in rows], np.stack([r[column] for r in rows]).astype(np.float32, copy=False)

    @_reads
    def get_items(self, ids: Sequence[str], *, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        if not ids or not self.has_items_table():
            return []
        cols = self._cols(columns)
        cur = self._c().execute(f"SELECT {', '.join(_q(c) for c in cols)} FROM {self.items_table} WHERE id = ANY(%s)", (list(ids),))
        found = {r["id"]: r for r in self._rows(cur, cols)}
        return [found[i] for i in ids if i in found]

    @_reads
    def thumbnail(self, item_id: str) -> bytes:
        rows = self.get_items([item_id], columns=["id", "thumbnail"])
        if not rows or not rows[0]["thumbnail"]:
            raise NotFoundError(f"no item {item_id!r} in collection {self.name!r}")
        return rows[0]["thumbnail"]

    # --- searching -------------------------------------------------------------------------------
    @_reads
    def vector_search(self, vector: np.ndarray, *, column: str, k: int, filter: Filter | None = None,
                      columns: Sequence[str] | None = None) -> list[Hit]:
        """Nearest items by cosine similarity; with a filter, exactly ``min(k, matches)`` rows."""
        if column not in VECTOR_COLUMNS:
            raise InputError(f"unknown vector column {column!r}")
        where, params = compile_filter(filter)
        if k <= 0 or not self.has_items_table():
            return []
        cols = self._cols(columns)
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        from pgvector import Vector

        qv = Vector(q)
        sel = ", ".join(_q(c) for c in cols)
        t = self.items_table
        col = _q(column)
        if where:
            matches = self._c().execute(f"SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {where} LIMIT %s) s",
                                        (*params, EXACT_MAX + 1)).fetchone()[0]
            if matches <= EXACT_MAX:
                return self._exact(sel, cols, col, qv, where, params, k)
        want = int(k)
        sql = f"SELECT {sel}, ({col} <=> %s) AS _d FROM {t} {'WHERE ' + where if where else ''} ORDER BY {col} <=> %s LIMIT %s"
        args = (qv, *params, qv, want)
        if 2 * want <= HNSW_EF_SEARCH:
            hits = self._hits(self._c().execute(sql, args), cols)
        else:
            with self.store.transaction() as cur:
                cur.execute(f"SET LOCAL hnsw.ef_search = {min(1000, 2 * want)}")
                cur.execute(sql, args)
                hits = self._hits(cur, cols)
        if where and len(hits) < want:  # the filter ate the HNSW candidates: search those rows exactly
            hits = self._exact(sel, cols, col, qv, where, params, k)
        if self.store.iterative_scan and where:
            hits.sort(key=lambda h: -h.score)
        return hits

    def _exact(self, sel: str, cols: list[str], col: str, qv: Any, where: str, params: list[Any], k: int) -> list[Hit]:
        """The exact top ``k`` of the rows the filter keeps (their asked-for columns and the vector,
        materialised, then sorted). At 1M items a 1% filter is 10,000 rows on as many heap pages:
        reading them is the cost (~90 ms of a ~100 ms query from the OS cache with 128 MB
        ``shared_buffers``; docs/CAPACITY.md)."""
        with self.store.transaction() as cur:
            cur.execute("SET LOCAL enable_indexscan = off")  # no HNSW: an exact sort over the filtered rows
            cur.execute(
                f"WITH m AS MATERIALIZED (SELECT {sel}, {col} AS _v FROM {self.items_table} WHERE {where}) "
                f"SELECT {sel}, (_v <=> %s) AS _d FROM m ORDER BY _d LIMIT %s",
                (*params, qv, int(k)),
            )
            return self._hits(cur, cols)

    def _hits(self, cur: Any, cols: list[str]) -> list[Hit]:
        rows = self._rows(cur, [*cols, "_d"])
        out = []
        for r in rows:
            d = r.pop("_d")
            out.append(Hit(id=r["id"], score=1.0 - float(d), fields=r))
        return out

    @_reads
    def keyword_search(self, query: str, *, k: int, filter: Filter | None = None,
                       columns: Sequence[str] | None = None) -> list[Hit]:
        """Full-text search of the document (English stemming, stop words removed; any word may
        match, more matches rank higher). Words are matched, not parsed."""
        where, params = compile_filter(filter)
        if k <= 0 or not query.strip() or not self.has_items_table():
            return []
        cols = self._cols(columns)
        sel = ", ".join(_q(c) for c in cols)
        words = " ".join(re.findall(r"\w+", query))
        if not words:
            return []
        cur = self._c().execute(
            f"WITH q AS (SELECT replace(plainto_tsquery('english', %s)::text, '&', '|')::tsquery AS q) "
            f"SELECT {sel}, ts_rank_cd(doc_tsv, q.q) AS _d FROM {self.items_table}, q "
            f"WHERE doc_tsv @@ q.q {'AND ' + where if where else ''} ORDER BY _d DESC, id LIMIT %s",
            (words, *params, int(k)),
        )
        rows = self._rows(cur, [*cols, "_d"])
        return [Hit(id=r["id"], score=float(r.pop("_d")), fields=r) for r in rows]

    @_reads
    def fetch(self, hits: Sequence[Hit], *, columns: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.get_items(list(dict.fromkeys(h.id for h in hits)), columns=columns)}

    @_reads
    def neighbours(self, vectors: np.ndarray, *, column: str, k: int) -> list[tuple[int, str, float]]:
        out: list[tuple[int, str, float]] = []
        for i, v in enumerate(np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)):
            out.extend((i, h.id, h.score) for h in self.vector_search(v, column=column, k=k, columns=["id"]))
        return out

    # --- writing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _advisory(self, key: int, what: str, *, wait: bool) -> Iterator[Any]:
        """Hold an advisory lock on a connection of its own (yielded); it goes with the session."""
        conn = self.store.connect()
        try:
            try:
                if wait:
                    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                elif not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                    raise InputError(what)
            except _pg().OperationalError as e:
                if connection_lost(e):
                    raise self.store.unavailable(e, "taking a lock") from None
                raise
            yield conn
        finally:
            conn.close()  # the lock goes with the session

    @contextlib.contextmanager
    def writer(self, *, wait: bool = False) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer_owner == me:
            yield
            return
        with self._advisory(_lock_key("writer", str(self.cid)), f"collection {self.name!r} is being written by another "
                            "process; wait for it to finish", wait=wait) as conn:
            self._writer_owner, self._writer_conn, self._writer_seen = me, conn, self.store.lost_connections
            writers = self.store._local.__dict__.setdefault("writers", [])
            writers.append(self)
            try:
                yield
            finally:
                with contextlib.suppress(ValueError):
                    writers.remove(self)
                self._writer_owner = self._writer_conn = None
                with contextlib.suppress(Exception):
                    self._c().execute("UPDATE oculi_collections SET updated_at=%s WHERE id=%s", (time.time(), self.cid))

    def _check_writer_lock(self) -> None:
        """Inside ``writer()``, once a connection was found lost (the server may have restarted):
        make sure the writer lock's own connection, and so the lock, is still there."""
        if self._writer_owner != threading.get_ident() or self._writer_seen == self.store.lost_connections:
            return
        conn = self._writer_conn
        try:
            conn.execute("SELECT 1")
        except _pg().Error as e:
            raise StoreUnavailableError(
                f"the writer lock of collection {self.name!r} in the PostgreSQL store {self.store.url} went with its "
                f"connection ({_first_line(e)}); this write stopped: run it again") from None
        self._writer_seen = self.store.lost_connections

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: bool = False) -> Iterator[None]:
        with self._advisory(_lock_key("named", str(self.cid), name),
                            f"{name} is being processed by another process; wait for it to finish", wait=wait):
            yield

    @_writes
    def set_models(self, models: dict[str, Any]) -> None:
        self._c().execute("UPDATE oculi_collections SET models=%s::jsonb WHERE id=%s", (json.dumps(models), self.cid))

    @_reads
    def vector_spaces(self) -> dict[str, dict[str, Any]]:
        """Which model made each kind of stored vector, and its size (see ``Collection.vector_spaces``)."""
        row = self._c().execute("SELECT vector_spaces FROM oculi_collections WHERE id=%s", (self.cid,)).fetchone()
        if row is None:
            raise NotFoundError(f"no collection named {self.name!r} (it was dropped)")
        return {k: dict(v) for k, v in (row[0] or {}).items()}

    @_writes
    def set_vector_spaces(self, spaces: dict[str, dict[str, Any]]) -> None:
        spaces = {k: {"model": str(v["model"]), "dim": int(v["dim"])} for k, v in spaces.items()}
        self._c().execute("UPDATE oculi_collections SET vector_spaces=%s::jsonb WHERE id=%s", (json.dumps(spaces), self.cid))

    def ensure_space(self, items: int) -> None:
        """PostgreSQL reports a full disk itself (a write then raises ``StoreFullError``)."""

    def _ensure_items(self, cur: Any, text_dim: int, image_dim: int) -> None:
        cur.execute("SELECT text_dim, image_dim FROM oculi_collections WHERE id=%s FOR UPDATE", (self.cid,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"no collection named {self.name!r} (it was dropped)")
        if row[0] is not None:
            if (row[0], row[1]) != (text_dim, image_dim):
                raise InputError(
                    f"collection {self.name!r} stores {row[0]}-d text and {row[1]}-d image vectors, but the current "
                    f"models give {text_dim}-d and {image_dim}-d; index into a new collection"
                )
            return
        defs = ", ".join(f"{_q(n)} {t.format(td=text_dim, idim=image_dim)}" for n, t in _ITEM_COLUMNS.items())
        t = self.items_table
        cur.execute(f"CREATE TABLE IF NOT EXISTS {t} ({defs}, "
                    "doc_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(doc, ''))) STORED)")
        cur.execute(f"CREATE INDEX IF NOT EXISTS {t}_doc ON {t} USING gin (doc_tsv)")
        for c in ("objects", "object_terms", "labels", "colours"):
            cur.execute(f"CREATE INDEX IF NOT EXISTS {t}_{c} ON {t} USING gin ({_q(c)})")
        cur.execute(f"CREATE INDEX IF NOT EXISTS {t}_time ON {t} (time)")
        cur.execute(f"CREATE INDEX IF NOT EXISTS {t}_source ON {t} (source_id, time)")
        cur.execute("UPDATE oculi_collections SET text_dim=%s, image_dim=%s WHERE id=%s", (text_dim, image_dim, self.cid))

    @staticmethod
    def _item_values(it: ItemRecord) -> tuple:
        from pgvector import Vector

        vals = []
        for name in ITEM_COLUMNS:
            v = getattr(it, name)
            if name in _LIST_COLUMNS:
                v = [int(x) for x in v] if name == "track_ids" else [str(x) for x in v]
            elif name == "observation":
                v = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
            elif name in VECTOR_COLUMNS:
                v = Vector(np.asarray(v, dtype=np.float32).reshape(-1))
            elif name == "thumbnail":
                v = bytes(v)
            vals.append(v)
        return tuple(vals)

    def _write_items(self, items: Sequence[ItemRecord], *, update: bool) -> None:
        if not items:
            return
        uniq = list({it.id: it for it in items}.values()) if update else list({it.id: it for it in reversed(items)}.values())[::-1]
        first = uniq[0]
        cols = ", ".join(_q(c) for c in ITEM_COLUMNS)
        ph = ", ".join(["%s"] * len(ITEM_COLUMNS))
        if update:
            sets = ", ".join(f"{_q(c)} = %s" for c in ITEM_COLUMNS if c != "id")
            sql = f"UPDATE {self.items_table} SET {sets} WHERE id = %s"
        else:
            sql = f"INSERT INTO {self.items_table} ({cols}) VALUES ({ph}) ON CONFLICT (id) DO NOTHING"
        with self.store.transaction() as cur:
            if update and not self.has_items_table():
                return
            self._ensure_items(cur, int(np.asarray(first.text_vec).size), int(np.asarray(first.image_vec).size))
            for it in uniq:
                if (np.asarray(it.text_vec).size, np.asarray(it.image_vec).size) != (np.asarray(first.text_vec).size,
                                                                                     np.asarray(first.image_vec).size):
                    raise InputError("items of one write must have vectors of one size")
            rows = [self._item_values(it) for it in uniq]
            cur.executemany(sql, [(*r[1:], r[0]) for r in rows] if update else rows)

    @_writes
    def add_items(self, items: Sequence[ItemRecord]) -> None:
        """Insert items in one transaction; ids already present are skipped."""
        self._write_items(items, update=False)

    @_writes
    def update_items(self, items: Sequence[ItemRecord]) -> None:
        """Replace stored items by id in one transaction; ids not stored are ignored."""
        self._write_items(items, update=True)

    @_writes
    def upsert_files(self, files: Sequence[FileRecord]) -> None:
        if not files:
            return
        latest = {f.path: f for f in files}
        with self.store.transaction() as cur:
            cur.executemany(
                "INSERT INTO oculi_files (coll, path, id, size, mtime_ns, seen_at) VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (coll, path) DO UPDATE SET id=EXCLUDED.id, size=EXCLUDED.size, mtime_ns=EXCLUDED.mtime_ns, "
                "seen_at=EXCLUDED.seen_at",
                [(self.cid, f.path, f.id, int(f.size), int(f.mtime_ns), float(f.seen_at)) for f in latest.values()],
            )

    @_writes
    def delete_files(self, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM oculi_files WHERE coll=%s AND path = ANY(%s)", (self.cid, list(paths)))
            return int(cur.rowcount)

    @_writes
    def delete_orphan_items(self) -> int:
        if not self.has_items_table():
            return 0
        with self.store.transaction() as cur:
            cur.execute(
                f"DELETE FROM {self.items_table} i WHERE NOT EXISTS (SELECT 1 FROM oculi_files f WHERE f.coll=%s AND f.id=i.id) "
                "AND NOT (i.kind = 'frame' AND EXISTS (SELECT 1 FROM oculi_sources s WHERE s.coll=%s AND s.id=i.source_id))",
                (self.cid, self.cid),
            )
            return int(cur.rowcount)

    @_writes
    def repoint_items(self, moves: dict[str, str]) -> None:
        if not moves or not self.has_items_table():
            return
        with self.store.transaction() as cur:
            cur.executemany(f"UPDATE {self.items_table} SET path=%s, name=%s WHERE id=%s",
                            [(p, os.path.basename(p), i) for i, p in moves.items()])

    @_writes
    def optimize(self, *, force_ann: bool = False) -> dict[str, Any]:
        """Build the HNSW indexes once the collection is big enough (PostgreSQL keeps them up to
        date afterwards) and refresh the planner's statistics."""
        done: dict[str, Any] = {}
        if not self.has_items_table():
            return done
        n = self.count()
        have = {ix["name"] for ix in self.indices()}
        if n >= ANN_MIN_ROWS or (force_ann and n >= 2):
            dims = dict(zip(VECTOR_COLUMNS, self._meta()[3:5]))
            for col in ANN_COLUMNS:
                name = f"{self.items_table}_{col}_hnsw"
                if name not in have:
                    self._build_hnsw(name, col, n, int(dims[col]))
                    done[col] = "built"
        self._c().execute(f"ANALYZE {self.items_table}")
        return done

    def _build_hnsw(self, name: str, col: str, rows: int, dim: int) -> None:
        """``CREATE INDEX ... USING hnsw`` with memory for the whole graph and parallel workers
        (``hnsw_build_settings``), in a transaction of its own so the settings end with it.
        pgvector's notices (a graph that outgrew its memory) are logged as warnings."""
        c = self._c()
        host = c.info.host or ""
        local = host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
        current = int(c.execute("SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'").fetchone()[0])
        s = hnsw_build_settings(rows, dim, current_mem=current, local=local, available=available_memory(), cpus=os.cpu_count())
        log.info("building the HNSW index on %s.%s (%d rows, %d-d; maintenance_work_mem %d MB, %s parallel workers)",
                 self.name, col, rows, dim, s["maintenance_work_mem"] >> 20,
                 s["max_parallel_maintenance_workers"] if s["max_parallel_maintenance_workers"] >= 0 else "server's")

        def notice(diag: Any) -> None:
            log.warning("PostgreSQL, building %s: %s", name, diag.message_primary)

        c.add_notice_handler(notice)
        try:
            with self.store.transaction() as cur:
                cur.execute(f"SET LOCAL maintenance_work_mem = '{s['maintenance_work_mem'] >> 10}kB'")
                if s["max_parallel_maintenance_workers"] >= 0:
                    cur.execute(f"SET LOCAL max_parallel_maintenance_workers = {s['max_parallel_maintenance_workers']}")
                cur.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {self.items_table} USING hnsw ({_q(col)} vector_cosine_ops) "
                            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")
        finally:
            c.remove_notice_handler(notice)

    @_writes
    def ensure_indexes(self) -> list[str]:
        return sorted(self.optimize())

    # --- footage records -------------------------------------------------------------------------
    @_writes
    def upsert_records(self, records: Sequence[Any]) -> None:
        if not records:
            return
        cls = record_type_of(records)
        cols = list(cls.COLUMNS)
        names = ", ".join(["coll", *(_q(c) for c in cols)])
        ph = ", ".join(["%s"] * (len(cols) + 1))
        sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in cols if c != "id")
        latest = {r.id: r for r in records}
        with self.store.transaction() as cur:
            cur.executemany(
                f"INSERT INTO oculi_{cls.TABLE.value} ({names}) VALUES ({ph}) ON CONFLICT (coll, id) DO UPDATE SET {sets}",
                [(self.cid, *(r.to_row()[c] for c in cols)) for r in latest.values()],
            )

    @_reads
    def query_records(self, table: RecordTable | str, filter: Filter | None = None, *, order_by: str | None = None,
                      descending: bool = False, limit: int | None = None) -> list[Any]:
        name = RecordTable(table).value
        if order_by is not None and order_by not in TABLE_FILTER_FIELDS[name]:
            raise InputError(f"cannot order {name} by {order_by!r}; use one of {', '.join(sorted(TABLE_FILTER_FIELDS[name]))}")
        where, params = compile_filter(filter, name)
        if limit is not None and limit <= 0:
            return []
        cls = RECORD_TYPES[RecordTable(name)]
        cols = list(cls.COLUMNS)
        order = (f"{_q(order_by)} {'DESC' if descending else 'ASC'} NULLS {'FIRST' if descending else 'LAST'}, " if order_by else "") + "id"
        sql = f"SELECT {', '.join(_q(c) for c in cols)} FROM oculi_{name} WHERE coll=%s {'AND ' + where if where else ''} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._c().execute(sql, (self.cid, *params)).fetchall()
        return [cls.from_row(dict(zip(cols, r))) for r in rows]

    @_reads
    def count_records(self, table: RecordTable | str, filter: Filter | None = None) -> int:
        name = RecordTable(table).value
        where, params = compile_filter(filter, name)
        return int(self._c().execute(f"SELECT count(*) FROM oculi_{name} WHERE coll=%s {'AND ' + where if where else ''}",
                                     (self.cid, *params)).fetchone()[0])

    @_writes
    def delete_records(self, table: RecordTable | str, filter: Filter) -> int:
        name = RecordTable(table).value
        if not filter:
            raise InputError(f"delete_records on {name} needs a filter (refusing to delete everything)")
        where, params = compile_filter(filter, name)
        with self.store.transaction() as cur:
            cur.execute(f"DELETE FROM oculi_{name} WHERE coll=%s AND {where}", (self.cid, *params))
            return int(cur.rowcount)


__all__ = ["PgBlobStore", "PgCollection", "PgConnection", "PgStore", "compile_filter", "connection_lost", "hnsw_build_settings",
           "hnsw_graph_bytes", "redact"]
