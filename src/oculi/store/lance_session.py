"""The write session of a Lance collection: one writer, damage refused, every commit checksummed.

``LanceCollection`` gets these from ``WriteSession``:

- ``writer()``: the collection's writer lock (threads of this process, then other processes,
  through ``directory_lock``); on entry temporary files of killed writes are removed, the files
  the latest versions need are checked against the integrity record (sizes and end markers),
  a damaged index is rebuilt (derived data) and any other damage refuses the write
  (``StoreCorruptError``) before anything is written;
- ``@committing`` write methods: Lance's failures become ``StoreCorruptError`` or
  ``StoreFullError``; after each commit the files it added are hashed into the record
  (``IntegrityRecord.append``);
- ``ensure_space``: the free-space check made before perceiving a batch;
- ``rebuild_indexes``: drop and rebuild indexes with their usual configuration.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from lancedb.index import BTree, LabelList

from oculi.core.errors import InputError, OculiError
from oculi.store.integrity import (
    QUARANTINE_DIR,
    RECORD_FILE,
    RECORD_FORMAT,
    IntegrityRecord,
    RecordError,
    ensure_free_space,
    remove_leftovers,
    write_bytes_atomic,
)
from oculi.store.lance_check import quick_verify, record_tables, table_dirs
from oculi.store.lance_errors import corrupt, store_error

log = logging.getLogger(__name__)


#: Bytes a new item takes on disk before the collection has its own average (thumbnail ~15 kB,
#: vectors ~4 kB, observation and document ~3 kB, plus index and manifest growth).
ITEM_BYTES_GUESS = 40_000
#: Free space kept in reserve beyond the estimate (manifests, index deltas, integrity record).
SPACE_RESERVE = 4 << 20


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write a JSON file atomically (no temporary file is left behind if the disk is full)."""
    write_bytes_atomic(path, json.dumps(doc, indent=2, sort_keys=True).encode("utf-8"))


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(root, fn)).st_size
            except OSError:
                pass
    return total


def has_versions(tdir: Path) -> bool:
    vdir = tdir / "_versions"
    return vdir.is_dir() and any(p.name.endswith(".manifest") for p in vdir.iterdir())


def has_rows_data(tdir: Path) -> bool:
    """Whether a table directory holds data, deletion or index files (anything worth keeping)."""
    return any((tdir / d).is_dir() and any((tdir / d).iterdir()) for d in ("data", "_deletions", "_indices"))


def flock_or_holder(fd: int, wait: bool) -> str | None:
    """Take an exclusive ``flock`` on ``fd`` and write this process's pid into the file; when
    another process holds it (and ``wait`` is False) take nothing and return that pid's text."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        try:
            return os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        except OSError:
            return "?"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return None


@contextlib.contextmanager
def directory_lock(path: Path, name: str, *, wait: bool = False) -> Iterator[None]:
    """The writer lock of a collection directory (threads of this process, then other processes).

    Raises:
        InputError: another process (or, with ``wait=False``, another thread) is writing.
    """
    key = str(path.resolve())
    me = threading.get_ident()
    if _LOCK_OWNERS.get(key) == me:  # re-entrant for the holding thread (repair, then its writes)
        yield
        return
    tlock = _process_lock(path)
    if not tlock.acquire(blocking=wait):
        raise InputError(f"collection {name!r} is being written by another job; try again when it finishes")
    fd = -1
    try:
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        holder = flock_or_holder(fd, wait)
        if holder is not None:
            raise InputError(
                f"collection {name!r} is being written by another process (pid {holder}); wait for it to finish"
            )
        _LOCK_OWNERS[key] = me
        try:
            yield
        finally:
            _LOCK_OWNERS.pop(key, None)
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        tlock.release()


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_LOCK_OWNERS: dict[str, int] = {}  # collection path -> thread holding its writer lock
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.Lock())


def committing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A write method: Lance failures become oculi errors (damage or a full disk); after it
    commits, the files it added are checksummed into the integrity record."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            out = fn(self, *args, **kwargs)
        except OculiError:
            raise
        except (RuntimeError, OSError, ValueError) as e:
            rows = len(args[0]) if args and hasattr(args[0], "__len__") else 0
            needed = int(rows * (self._item_bytes or ITEM_BYTES_GUESS)) + SPACE_RESERVE
            raise store_error(e, self.name, self.path, "writing to it failed", needed=needed) from None
        self._note_write()
        return out

    return wrapper


class WriteSession:
    """The write-session half of ``LanceCollection`` (see the module docstring). Expects
    ``path``, ``name``, ``_meta``, ``_tables``, ``_tlock``, ``_writer_owner``, ``_table``,
    ``_write_meta``, ``_create_fts``, ``_create_ann`` and ``count`` from the collection."""

    path: Path
    name: str
    _meta: dict[str, Any]
    _tables: dict[str, Any]
    _tlock: Any
    _writer_owner: int | None
    _record: IntegrityRecord | None = None
    _wrote: bool = False
    _swept_blobs: bool = False
    _item_bytes: float | None = None

    @contextlib.contextmanager
    def writer(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the collection's writer lock (one writer per collection across processes).

        On entry: temporary files left by a killed write or a full disk are removed; the files
        the latest versions need are checked against the integrity record (sizes; cheap); a
        damaged index is rebuilt (it is derived data), any other damage is refused.

        Raises:
            InputError: another process (or, with ``wait=False``, another thread) is writing.
            StoreCorruptError: the collection is damaged (``oculi collections repair`` fixes it).
        """
        if self._writer_owner == threading.get_ident():  # re-entrant for the holding thread
            yield
            return
        with directory_lock(self.path, self.name, wait=wait):
            self._writer_owner = threading.get_ident()
            try:
                # the uploads folder can hold 100k files: swept once per process, the rest every time
                skip = (QUARANTINE_DIR, "blobs") if self._swept_blobs else (QUARANTINE_DIR,)
                remove_leftovers(self.path, skip=skip)
                self._swept_blobs = True
                self._record = self._load_record()
                self._verify_before_writing()  # refuses a damaged collection before anything is written
            except BaseException:
                self._writer_owner = None
                self._record = None
                raise
            self._wrote = False
            try:
                yield
            finally:
                self._writer_owner = None
                self._record = None
                self._item_bytes = None
                if self._wrote:  # a refused or empty write session changes nothing, not even the date
                    self._meta["updated_at"] = time.time()
                    with contextlib.suppress(OSError, OculiError):
                        self._write_meta()

    # --- integrity ---------------------------------------------------------------------------
    def _load_record(self) -> IntegrityRecord:
        if self._record is not None:
            return self._record
        try:
            rec = IntegrityRecord.load(self.path / RECORD_FILE)
        except RecordError as e:
            raise corrupt(self.name, f"its integrity record ({RECORD_FILE}) is damaged: {e}") from None
        if rec is None and self._meta.get("integrity"):
            raise corrupt(self.name, f"its integrity record ({RECORD_FILE}) is missing")
        return rec if rec is not None else IntegrityRecord()  # a collection from before checksums

    def _note_write(self) -> None:
        """Record the files the last committed write added (SHA-256) and each table's version."""
        rec = self._load_record()
        versions = self._versions()
        added = record_tables(self.path, rec, versions)
        rec.append(self.path / RECORD_FILE, added, {t: rec.tables[t] for t in versions})
        self._wrote = True
        self._record = rec if self._writer_owner is not None else None
        if not self._meta.get("integrity"):  # from now on a missing record is damage, not an old collection
            self._meta["integrity"] = RECORD_FORMAT
            self._write_meta()

    def _versions(self) -> dict[str, tuple[int, int]]:
        """``{table: (latest version, rows)}`` of the open tables."""
        with self._tlock:
            return {name: (int(t.version), int(t.count_rows())) for name, t in self._tables.items()}

    def _verify_before_writing(self) -> None:
        damage = quick_verify(self.path, self._load_record())
        other = [d for d in damage if d.kind != "index"]
        if other:
            d = other[0]
            raise corrupt(self.name, f"{d.path} ({d.kind}) is {d.problem}")
        if damage:
            self.rebuild_indexes({d.table or "items" for d in damage}, reason="damaged")

    def rebuild_indexes(self, tables: set[str] | None = None, *, only: set[str] | None = None,
                        reason: str = "requested") -> list[str]:
        """Drop and rebuild the indexes of ``tables`` (default: all; ``only``: just these index
        names) with their usual configuration. Indexes are derived data: nothing is lost.
        Returns the names rebuilt."""
        rebuilt: list[str] = []
        for name in sorted(tables or set(table_dirs(self.path))):
            t = self._table(name)
            if t is None:
                continue
            for ix in list(t.list_indices()):
                if only is not None and ix.name not in only:
                    continue
                col = ix.columns[0]
                log.log(logging.INFO if reason == "repair" else logging.WARNING,
                        "collection %s: rebuilding the %s index of %s (%s)", self.name, ix.name, name, reason)
                t.drop_index(ix.name)
                self._create_index(t, col, str(ix.index_type))
                rebuilt.append(ix.name)
        if rebuilt:
            self._note_write()
        return rebuilt

    def _create_index(self, t: Any, column: str, index_type: str) -> None:
        kind = index_type.upper()
        if "FTS" in kind or "INVERTED" in kind:
            self._create_fts(t)
        elif "IVF" in kind or "HNSW" in kind or "PQ" in kind:
            self._create_ann(t, column, int(t.count_rows()))
        elif "LABEL" in kind:
            t.create_index(column, config=LabelList(), replace=True)
        else:
            t.create_index(column, config=BTree(), replace=True)

    def ensure_space(self, items: int) -> None:
        """Raise ``StoreFullError`` unless the disk has room for ``items`` more items.

        Called before perceiving a batch, so a full disk stops indexing before any perception
        is done that could not be saved. The estimate is this collection's bytes per item
        (``ITEM_BYTES_GUESS`` until it holds 50), plus ``SPACE_RESERVE``.
        """
        if self._item_bytes is None:
            n = self.count()
            size = sum(dir_size(d) for d in table_dirs(self.path).values())
            self._item_bytes = size / n if n >= 50 else float(ITEM_BYTES_GUESS)
        ensure_free_space(self.path, int(items * self._item_bytes) + SPACE_RESERVE)

    def _vouched_version(self, name: str) -> int | None:
        """The table version the integrity record vouches for (``None`` without a readable record)."""
        try:
            rec = self._record or IntegrityRecord.load(self.path / RECORD_FILE)
        except RecordError:
            return None
        v = (rec.tables.get(name) or {}).get("version") if rec else None
        return int(v) if v is not None else None

