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
from typing import TYPE_CHECKING

# before any module of this package imports Lance: its Rust logger warns on stderr otherwise
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("LANCEDB_LOG", "error")

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
    from oculi.store.lance import LanceStore

__all__ = [
    "DEFAULT_COLLECTION", "STORE_SCHEMA_VERSION", "Collection", "CollectionInfo", "Condition", "EventRecord",
    "EventType", "FileRecord", "Filter", "Hit", "ItemRecord", "Op", "RecordTable", "SourceRecord", "Store",
    "TrackRecord", "event_id", "item_id", "open_store", "source_id_for", "track_key", "validate_collection_name",
]


def open_store(settings: "Settings | None" = None) -> "LanceStore":
    """The store for these settings: the embedded LanceDB store under ``settings.collections_dir``.

    Nothing is created on disk until a collection is.
    """
    from oculi.config import Settings
    from oculi.store.lance import LanceStore

    s = settings or Settings()
    return LanceStore(s.collections_dir)
