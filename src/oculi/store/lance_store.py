"""``LanceStore``: the embedded store's collections, one directory each under one root.

A collection directory appears by an atomic rename of a fully written temporary directory and is
dropped by renaming it away before deleting it. Listing never hides a damaged collection: one
that cannot be opened or fails the quick check (``lance_check.quick_verify``) is listed with
``status="damaged"``; one whose ``collection.json`` is garbled is still a collection (its tables
say so), so it can be checked, repaired and dropped.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import lancedb

from oculi.core.errors import InputError, NotFoundError, OculiError, StoreCorruptError
from oculi.store.base import STORE_SCHEMA_VERSION, CollectionInfo, validate_collection_name
from oculi.store.blobs import BlobRoot, BlobStore, DirectoryBlobStore, repair_blobs, verify_blobs
from oculi.store.integrity import (
    RECORD_FILE,
    RECORD_FORMAT,
    CollectionCheck,
    IntegrityRecord,
    RecordError,
    RepairReport,
    fsync_dir,
)
from oculi.store.lance_check import META_FILE, check_collection, quick_verify, read_meta, record_tables, table_dirs
from oculi.store.lance_session import dir_size, directory_lock, write_json_atomic

if TYPE_CHECKING:
    from oculi.store.lance import LanceCollection

log = logging.getLogger(__name__)


def _collection(d: Path) -> "LanceCollection":
    from oculi.store.lance import LanceCollection

    return LanceCollection(d, d.name)


class LanceStore:
    """Collections under one directory (``Settings.collections_dir``)."""

    def __init__(self, root: Path | str, *, blobs: "BlobRoot | None" = None) -> None:
        """``blobs``: where uploads' bytes go instead of each collection's ``blobs/`` folder
        (an S3-compatible bucket or a shared folder; ``oculi.store.blobs.open_blob_root``)."""
        self.root = Path(root)
        self.blob_root = blobs
        self._open: dict[str, LanceCollection] = {}
        self._lock = threading.Lock()

    def _dir(self, name: str) -> Path:
        return self.root / validate_collection_name(name)

    @staticmethod
    def _is_collection(d: Path) -> bool:
        """A collection directory: it has a description, or tables (even if the description is gone)."""
        return d.is_dir() and ((d / META_FILE).is_file() or bool(table_dirs(d)))

    def collection_dir(self, name: str) -> Path:
        """The directory of an existing collection (damaged or not). Raises ``NotFoundError``."""
        d = self._dir(name)
        if not self._is_collection(d):
            known = ", ".join(self.names()) or "none yet"
            raise NotFoundError(f"no collection named {name!r} (collections: {known}); create one with "
                                f"`oculi index PATH --collection {d.name}`")
        return d

    def forget(self, name: str) -> None:
        """Drop the cached handle of a collection (after its files changed under it)."""
        with self._lock:
            self._open.pop(name, None)

    def exists(self, name: str) -> bool:
        return self._is_collection(self._dir(name))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and self._is_collection(p))

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection with its size; a damaged one is listed as such (never as empty)."""
        out = []
        for n in self.names():
            d = self.root / n
            try:
                info = self.open_collection(n).info()
                try:
                    damage = quick_verify(d, IntegrityRecord.load(d / RECORD_FILE))
                except RecordError as e:
                    damage = []
                    info = replace(info, status="damaged", problem=f"its integrity record is damaged ({e})")
                if damage:
                    x = damage[0]
                    info = replace(info, status="damaged",
                                   problem=f"{x.path} ({x.kind}) is {x.problem}; run `oculi collections repair {n}`")
            except StoreCorruptError as e:
                info = self._damaged_info(d, str(e))
            except OculiError as e:  # e.g. written by a newer oculi
                info = self._damaged_info(d, str(e), status="unreadable")
            out.append(info)
        return out

    @staticmethod
    def _damaged_info(d: Path, problem: str, status: str = "damaged") -> CollectionInfo:
        meta, _ = read_meta(d)
        meta = meta or {}
        return CollectionInfo(name=d.name, items=None, files=None, bytes_on_disk=dir_size(d),
                              created_at=meta.get("created_at"), updated_at=meta.get("updated_at"),
                              schema_version=meta.get("schema_version"), path=str(d), status=status, problem=problem)

    def open_collection(self, name: str) -> LanceCollection:
        """Open a collection.

        Raises:
            NotFoundError: there is no such collection.
            StoreCorruptError: its description is unreadable (``oculi collections repair`` fixes it).
        """
        d = self._dir(name)
        with self._lock:
            c = self._open.get(d.name)
            if c is not None and (d / META_FILE).is_file():
                return c
        d = self.collection_dir(name)
        c = _collection(d)
        with self._lock:
            self._open[d.name] = c
        return c

    def check_collection(self, name: str, *, hashes: bool = True) -> CollectionCheck:
        """Verify one collection against its checksums and by reading it (``lance_check``).

        Holds the writer lock so that a concurrent write is not mistaken for damage.

        Raises:
            InputError: the collection is being written (check it when that finishes).
        """
        d = self.collection_dir(name)
        with directory_lock(d, d.name):
            res = check_collection(d, d.name, hashes=hashes)
            if self.blob_root is not None:  # uploads kept outside the folder: read and hash each one
                t0 = time.monotonic()
                verify_blobs(self.blob_root.collection(d.name), res, hashes=hashes, where=f"{self.blob_root.url}/{d.name}/")
                res.elapsed_s += time.monotonic() - t0
            return res

    def repair_collection(self, name: str) -> RepairReport:
        """Repair a damaged collection (``lance_repair``); a healthy one is left alone."""
        from oculi.store.lance_repair import repair_collection

        rep = repair_collection(self, name)
        if self.blob_root is not None:  # uploads kept outside the folder: damaged ones set aside there
            d = self.collection_dir(name)
            with directory_lock(d, d.name):
                repair_blobs(self.blob_root, d.name, rep)
        return rep

    def create_collection(self, name: str, *, exist_ok: bool = True) -> LanceCollection:
        d = self._dir(name)
        if self._is_collection(d):
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
                "created_at": now, "updated_at": now, "models": {}, "integrity": RECORD_FORMAT,
            })
            from oculi.store.lance import FILES, FILES_SCHEMA

            t = lancedb.connect(str(tmp)).create_table(FILES, schema=FILES_SCHEMA)
            rec = IntegrityRecord()
            record_tables(tmp, rec, {FILES: (int(t.version), 0)})
            rec.save(tmp / RECORD_FILE)
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
            fsync_dir(self.root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.open_collection(d.name)

    def drop_collection(self, name: str) -> None:
        """Delete a collection, damaged or not (a garbled collection.json does not block it)."""
        d = self.collection_dir(name)
        with directory_lock(d, d.name):
            trash = self.root / f".trash-{d.name}-{uuid.uuid4().hex[:8]}"
            os.rename(d, trash)
            fsync_dir(self.root)
        self.forget(d.name)
        shutil.rmtree(trash, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"lance://{self.root.resolve()}"

    def blobs(self, name: str) -> BlobStore:
        """The collection's ``blobs/`` folder (swept of temporary files by the writer, never of
        blobs), or its part of the blob root given to the store."""
        c = self.open_collection(name)
        if self.blob_root is not None:
            return self.blob_root.collection(c.name)
        return DirectoryBlobStore(c.path / "blobs")

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
