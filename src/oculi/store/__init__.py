"""Collections of indexed images: the store interface and its embedded LanceDB implementation.

Example:
    >>> from oculi import Settings
    >>> from oculi.store import open_store
    >>> store = open_store(Settings(home="/tmp/oculi-home"))  # doctest: +SKIP
    >>> [c.name for c in store.list_collections()]  # doctest: +SKIP
    ['default']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

# before any module of this package imports Lance: its Rust logger warns on stderr otherwise
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("LANCEDB_LOG", "error")

from oculi.core.errors import InputError
from oculi.store.base import (
    DEFAULT_COLLECTION,
    STORE_SCHEMA_VERSION,
    Collection,
    CollectionInfo,
    Condition,
    FileRecord,
    Filter,
    Hit,
    ItemRecord,
    Op,
    Store,
    item_id,
    validate_collection_name,
)
from oculi.store.records import (
    EventRecord,
    EventType,
    RecordTable,
    SourceRecord,
    TrackRecord,
    event_id,
    source_id_for,
    track_key,
)

if TYPE_CHECKING:
    from oculi.config import Settings

__all__ = [
    "DEFAULT_COLLECTION", "STORE_SCHEMA_VERSION", "Collection", "CollectionInfo", "Condition", "EventRecord",
    "EventType", "FileRecord", "Filter", "Hit", "ItemRecord", "Op", "RecordTable", "SourceRecord", "Store",
    "TrackRecord", "event_id", "item_id", "open_store", "parse_store_url", "source_id_for", "track_key", "validate_collection_name",
]


def open_store(settings: "Settings | None" = None, *, url: str | None = None, blobs: str | None = None) -> Store:
    """The store named by ``url`` or ``settings.store``; the embedded store under
    ``settings.collections_dir`` when neither names one.

    - a plain path or ``lance://PATH``: the embedded LanceDB store (one folder per collection);
    - ``postgresql://user[:password]@host[:port]/db`` (or ``postgres://``): PostgreSQL with the
      pgvector extension (``oculi.store.pg_store``), shared by any number of processes.

    Uploads' bytes go where ``blobs`` or ``settings.blobs`` says, whichever the store:
    ``store`` (the default: the collection's folder, or PostgreSQL's blob table), a folder, or
    ``s3://bucket/prefix`` (see ``oculi.store.blobs``). Nothing is created on disk until a
    collection is.

    Raises:
        InputError: an unknown scheme.
    """
    from oculi.config import Settings
    from oculi.store.blobs import open_blob_root

    s = settings or Settings()
    target = url if url is not None else s.store
    kind, where = parse_store_url(target)
    root = open_blob_root(s, blobs)
    if kind == "postgresql":
        from oculi.store.pg_store import PgStore

        return PgStore(where, home=s.home, blobs=root, cache_bytes=s.s3_cache_mb << 20)
    from oculi.store.lance import LanceStore

    return LanceStore(Path(where) if where else s.collections_dir, blobs=root)


def parse_store_url(target: str | None) -> tuple[str, str]:
    """``(kind, where)`` of a store URL: ``("lance", path or "")`` or ``("postgresql", url)``.

    Example:
        >>> parse_store_url("lance:///data/oculi")
        ('lance', '/data/oculi')
        >>> parse_store_url("postgres://u@db/oculi")
        ('postgresql', 'postgresql://u@db/oculi')
    """
    t = (target or "").strip()
    if not t:
        return "lance", ""
    if t.startswith(("postgresql://", "postgres://")):
        return "postgresql", "postgresql://" + t.split("://", 1)[1]
    if t.startswith("lance://"):
        return "lance", t[len("lance://"):]
    if "://" in t:
        hint = " (an S3 bucket holds uploads' bytes, not collections: --blobs / OCULI_BLOBS)" if t.startswith("s3://") else ""
        raise InputError(f"unknown store {t.split('://', 1)[0]!r}: use a path, lance://PATH or postgresql://user@host/db{hint}")
    return "lance", t
