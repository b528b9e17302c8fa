"""The store interface: collections of indexed images, searchable by vector, keyword and filter.

A ``Store`` holds named ``Collection``\\ s. A collection has two kinds of record:

- ``ItemRecord`` — one per distinct image *content* (or one frame of a source at a timestamp):
  its stable id, the Observation perception made of it, the text document and caption written
  from that Observation, the two embeddings (sentence embedding of the document and the visual
  embedding), a JPEG thumbnail and metadata (size, capture time, camera, GPS).
- ``FileRecord`` — one per image file path that was indexed: which item it holds, and the size
  and modification time seen, so a re-run can skip unchanged files without reading them.

and three *record tables* for footage (``oculi.store.records``): ``sources`` (a video file or
stream) owning ``tracks`` and ``events`` with time ranges, and owning their keyframes, which are
items of kind ``frame``. A video file is never a ``FileRecord``: its frames belong to its source,
so pruning files cannot take them away. The record tables are read and written through four
generic methods (``upsert_records``, ``query_records``, ``count_records``, ``delete_records``)
over typed records, filtered with the same ``Filter`` as items.

Item ids are derived from content (``item_id``): the same bytes get the same id wherever they
are found, so evidence references survive renames and re-indexing. Two identical files are one
item with two file records (``oculi duplicates`` lists them as an exact group).

Filters are a small typed structure (``Filter``/``Condition``) that each backend compiles for
itself with proper literal escaping or bind parameters: no caller string is ever spliced into a
query. Implementations: ``oculi.store.lance.LanceStore`` (embedded, default) and
``oculi.store.pg_store.PgStore`` (PostgreSQL + pgvector, shared by any number of server
replicas); ``oculi.store.open_store`` picks one from ``Settings.store``. Every implementation
runs the same contract suite (``tests/store_contract.py``). Task code reaches a store only
through these two protocols and ``BlobStore``: no paths, no file locks.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from oculi.core.errors import InputError

if TYPE_CHECKING:
    from oculi.store.blobs import BlobStore
    from oculi.store.records import Record, RecordTable

#: Version of the on-disk collection layout. Bumped with an entry in the backend's migrations.
#: 1: items + files. 2: + the footage record tables (sources, tracks, events).
STORE_SCHEMA_VERSION = 2

#: Collection names: letters, digits, ``_ . -``; 1–64 characters; not starting with a dot.
COLLECTION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

DEFAULT_COLLECTION = "default"

#: Item columns returned by searches and ``fetch`` unless the caller names others (no vectors,
#: no thumbnail).
SEARCH_COLUMNS: tuple[str, ...] = (
    "id", "path", "name", "kind", "source_id", "frame_index", "timestamp", "width", "height", "format",
    "file_size", "time", "taken_at", "camera", "gps_lat", "gps_lon", "caption", "labels", "objects",
    "object_terms", "colours", "text", "observation",
)


def validate_collection_name(name: str) -> str:
    """Return ``name`` (stripped of surrounding blanks) or raise ``InputError`` saying what a
    valid name looks like: 1–64 of ``[A-Za-z0-9_.-]``, starting alphanumeric, no ``..``, so a
    name is never a path. The one check for the store, the CLI and the server."""
    n = name.strip() if isinstance(name, str) else ""
    if not COLLECTION_NAME_RE.fullmatch(n) or ".." in n:
        raise InputError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return n


# Observation.models keys naming the model that made an item's vectors of each kind: every item
# carries its collection's vector spaces (the dims are the columns'), so ``repair`` rebuilds them
# when the collection's own record of them (collection.json) is lost.
VECTOR_MODEL_KEYS = {"image": "image_vectors", "text": "text_vectors"}


def vector_models_of(spaces: Any) -> dict[str, str]:
    """The ``Observation.models`` entries recording ``spaces`` (``{"image": {"model", "dim"}, ...}``)."""
    return {VECTOR_MODEL_KEYS[k]: str(v["model"]) for k, v in (spaces or {}).items()
            if k in VECTOR_MODEL_KEYS and v and v.get("model")}


def spaces_from_item_models(models: Any, dims: dict[str, int | None]) -> dict[str, dict[str, Any]]:
    """The vector spaces an item's ``Observation.models`` records, with the stored vectors' sizes.

    Example:
        >>> spaces_from_item_models({"image_vectors": "transformers:clip", "classifier": "x"}, {"image": 512, "text": 384})
        {'image': {'model': 'transformers:clip', 'dim': 512}}
    """
    out: dict[str, dict[str, Any]] = {}
    for kind, key in VECTOR_MODEL_KEYS.items():
        model = (models or {}).get(key) if isinstance(models, dict) else None
        if isinstance(model, str) and model and dims.get(kind):
            out[kind] = {"model": model, "dim": int(dims[kind])}  # type: ignore[arg-type]
    return out


def item_id(sha256: str, frame_index: int | None = None) -> str:
    """Stable id of an item: the content hash (and, for a frame of footage, its index).

    Example:
        >>> item_id("ab" * 32)
        'abababababababababababababababab'
        >>> item_id("ab" * 32, frame_index=12)[:8] != item_id("ab" * 32)[:8]
        True
    """
    if frame_index is None:
        return sha256[:32]
    return hashlib.sha256(f"{sha256}:frame:{frame_index}".encode()).hexdigest()[:32]


class ItemKind(StrEnum):
    IMAGE = "image"
    FRAME = "frame"


@dataclass(frozen=True)
class ItemRecord:
    """One indexed image (or frame). Vectors are float32 and L2-normalised.

    Attributes:
        id: Stable id (``item_id``).
        sha256: Hash of the encoded file.
        path: Where it was (first) found; for uploads, the stored blob.
        name: Display name (file name, or the name given with an upload).
        kind: ``image`` or ``frame``.
        source_id / frame_index / timestamp: For a frame: which source, which frame, seconds in.
        width / height / format / file_size: Of the image.
        time: Capture time as epoch seconds: EXIF ``DateTimeOriginal`` when present, else the
            file's modification time (the value ``--after``/``--before`` compare).
        taken_at: EXIF capture time only (``None`` when the file has none).
        camera: "Make Model" from EXIF.
        gps_lat / gps_lon: Decimal degrees from EXIF.
        caption: The caption written from the observation.
        doc: The text document searched by keyword (caption, labels, objects, colours, OCR).
        labels: Classifier labels kept for filtering, best first.
        objects: Distinct detected object labels.
        object_terms: Object labels and "colour label" phrases (``red car``).
        colours: Dominant colour names of the whole image.
        text: OCR text, lines joined by newlines.
        track_ids: Track ids of objects (footage), for later use.
        observation: ``Observation.to_dict()`` (without the embedding).
        text_vec: Sentence embedding of the document, ``[Dt]``.
        image_vec: Visual embedding, ``[Di]``.
        thumbnail: JPEG bytes.
        indexed_at: Epoch seconds.
    """

    id: str
    sha256: str
    path: str
    name: str
    width: int
    height: int
    text_vec: np.ndarray
    image_vec: np.ndarray
    kind: str = ItemKind.IMAGE.value
    source_id: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None
    format: str | None = None
    file_size: int = 0
    time: float | None = None
    taken_at: float | None = None
    camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    caption: str = ""
    doc: str = ""
    labels: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    object_terms: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    text: str = ""
    track_ids: tuple[int, ...] = ()
    observation: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes = b""
    indexed_at: float = 0.0


@dataclass(frozen=True)
class FileRecord:
    """One indexed file path and what it held when last seen."""

    path: str
    id: str
    size: int
    mtime_ns: int
    seen_at: float = 0.0


@dataclass(frozen=True)
class Hit:
    """A search hit: the item's stored fields (no vectors unless asked) and the raw score.

    ``score`` is the backend's native measure: cosine *similarity* for vector search, BM25 for
    keyword search.
    """

    id: str
    score: float
    fields: dict[str, Any]
    ref: Any = field(default=None, compare=False)  # backend handle for a fast ``fetch`` (Lance: row id)


@dataclass(frozen=True)
class CollectionInfo:
    """What ``oculi collections`` lists.

    A damaged collection is listed with ``status="damaged"``, a one-line ``problem`` and
    ``items``/``files`` of ``None`` when they cannot be counted: never as an empty collection.
    """

    name: str
    items: int | None
    files: int | None
    bytes_on_disk: int
    created_at: float | None
    updated_at: float | None
    schema_version: int | None
    path: str
    status: str = "ok"
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "problem": self.problem,
            "items": self.items,
            "files": self.files,
            "bytes_on_disk": self.bytes_on_disk,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "schema_version": self.schema_version,
            "path": self.path,
        }


def item_from_row(row: dict[str, Any]) -> ItemRecord:
    """An ``ItemRecord`` from a stored row with every column (the observation as JSON text)."""
    import json

    d = dict(row)
    obs = d.get("observation")
    d["observation"] = json.loads(obs) if isinstance(obs, str) and obs else (obs or {})
    for k in ("labels", "objects", "object_terms", "colours", "track_ids"):
        d[k] = tuple(d.get(k) or ())
    d["text_vec"] = np.asarray(d["text_vec"], dtype=np.float32)
    d["image_vec"] = np.asarray(d["image_vec"], dtype=np.float32)
    d["thumbnail"] = bytes(d.get("thumbnail") or b"")
    names = set(ItemRecord.__dataclass_fields__)
    return ItemRecord(**{k: v for k, v in d.items() if k in names and v is not None or k in ("text_vec", "image_vec")})


# --- filters ------------------------------------------------------------------------------

class Op(StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    HAS = "has"  # list field contains the value
    GLOB = "glob"  # string field matches a shell glob (``*``, ``?``, ``[...]``)
    CONTAINS = "contains"  # string field contains the value (case-insensitive)


class FieldType(StrEnum):
    STR = "str"
    NUM = "num"
    LIST = "list"


#: Filterable columns and their types. Backends map these names to their own columns.
FILTER_FIELDS: dict[str, FieldType] = {
    "id": FieldType.STR,
    "sha256": FieldType.STR,
    "path": FieldType.STR,
    "name": FieldType.STR,
    "kind": FieldType.STR,
    "format": FieldType.STR,
    "camera": FieldType.STR,
    "source_id": FieldType.STR,
    "text": FieldType.STR,
    "caption": FieldType.STR,
    "width": FieldType.NUM,
    "height": FieldType.NUM,
    "file_size": FieldType.NUM,
    "time": FieldType.NUM,
    "taken_at": FieldType.NUM,
    "gps_lat": FieldType.NUM,
    "gps_lon": FieldType.NUM,
    "frame_index": FieldType.NUM,
    "timestamp": FieldType.NUM,
    "indexed_at": FieldType.NUM,
    "labels": FieldType.LIST,
    "objects": FieldType.LIST,
    "object_terms": FieldType.LIST,
    "colours": FieldType.LIST,
    "track_ids": FieldType.LIST,
}

#: Filterable columns of the footage record tables (``oculi.store.records``). A name means the
#: same type in every table it appears in, so one ``Condition`` validates for all of them.
RECORD_FILTER_FIELDS: dict[str, dict[str, FieldType]] = {
    "sources": {
        "id": FieldType.STR, "kind": FieldType.STR, "uri": FieldType.STR, "camera": FieldType.STR,
        "fingerprint": FieldType.STR, "status": FieldType.STR, "start_time": FieldType.NUM,
        "end_time": FieldType.NUM, "updated_at": FieldType.NUM,
    },
    "tracks": {
        "id": FieldType.STR, "source_id": FieldType.STR, "camera": FieldType.STR, "track_id": FieldType.NUM,
        "label": FieldType.STR, "colour": FieldType.STR, "start_time": FieldType.NUM, "end_time": FieldType.NUM,
        "score": FieldType.NUM, "zones": FieldType.LIST, "ongoing": FieldType.NUM,
    },
    "events": {
        "id": FieldType.STR, "source_id": FieldType.STR, "camera": FieldType.STR, "type": FieldType.STR,
        "start_time": FieldType.NUM, "end_time": FieldType.NUM, "track_id": FieldType.NUM, "label": FieldType.STR,
        "zone": FieldType.STR, "count": FieldType.NUM, "value": FieldType.NUM, "ongoing": FieldType.NUM,
    },
}

#: Every table's filterable columns: ``items`` (``FILTER_FIELDS``) and the record tables.
TABLE_FILTER_FIELDS: dict[str, dict[str, FieldType]] = {"items": FILTER_FIELDS, **RECORD_FILTER_FIELDS}

_ANY_FIELD: dict[str, FieldType] = {}
for _t in TABLE_FILTER_FIELDS.values():
    for _name, _ftype in _t.items():
        if _ANY_FIELD.setdefault(_name, _ftype) is not _ftype:  # pragma: no cover - a schema mistake
            raise TypeError(f"filter field {_name!r} has two types")


def check_filter_table(f: "Filter | None", table: str) -> None:
    """Raise ``InputError`` if a condition names a column ``table`` does not have."""
    known = TABLE_FILTER_FIELDS[table]
    for c in (f.conditions if f else ()):
        if c.field not in known:
            raise InputError(f"cannot filter {table} on {c.field!r}; filterable: {', '.join(sorted(known))}")


_OPS_FOR_TYPE: dict[FieldType, frozenset[Op]] = {
    FieldType.STR: frozenset({Op.EQ, Op.NE, Op.GLOB, Op.CONTAINS}),
    FieldType.NUM: frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE}),
    FieldType.LIST: frozenset({Op.HAS}),
}


@dataclass(frozen=True)
class Condition:
    """``field op value``; validated against the filterable fields of every table on
    construction (``FILTER_FIELDS`` for items, ``RECORD_FILTER_FIELDS`` for footage records) and
    against the table it is used on when compiled (``check_filter_table``)."""

    field: str
    op: Op
    value: str | float | int

    def __post_init__(self) -> None:
        ftype = _ANY_FIELD.get(self.field)
        if ftype is None:
            raise InputError(f"cannot filter on {self.field!r}; filterable: {', '.join(sorted(FILTER_FIELDS))}")
        op = Op(self.op)
        object.__setattr__(self, "op", op)
        if op not in _OPS_FOR_TYPE[ftype]:
            raise InputError(f"{self.field} does not support {op.value!r}")
        if ftype is FieldType.NUM:
            try:
                v = float(self.value)
            except (TypeError, ValueError):
                raise InputError(f"{self.field} needs a number, got {self.value!r}") from None
            if not math.isfinite(v):
                raise InputError(f"{self.field} needs a finite number, got {self.value!r}")
            object.__setattr__(self, "value", v)
        elif self.field == "track_ids":
            try:
                object.__setattr__(self, "value", int(self.value))
            except (TypeError, ValueError):
                raise InputError(f"track_ids needs an integer, got {self.value!r}") from None
        else:
            s = str(self.value)
            if "\x00" in s:
                raise InputError("filter values cannot contain NUL characters")
            object.__setattr__(self, "value", s)


@dataclass(frozen=True)
class Filter:
    """A conjunction of conditions (all must hold). Empty means no filter."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def to_dict(self) -> list[dict[str, Any]]:
        return [{"field": c.field, "op": c.op.value, "value": c.value} for c in self.conditions]


def glob_to_regex(glob: str) -> str:
    """Translate a shell glob to an anchored regular expression (``*`` also matches ``/``).

    Only regex metacharacters are escaped, so the result is valid for both Python's ``re`` and
    Rust's ``regex`` crate.

    Example:
        >>> glob_to_regex("*/holiday/*.jp?g")
        '^.*/holiday/.*\\\\.jp.g$'
    """
    out = ["^"]
    i, n = 0, len(glob)
    meta = set(".^$*+?()[]{}|\\")
    while i < n:
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
            else:
                body = glob[i + 1 : j]
                neg = body[:1] in ("!", "^")
                if neg:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
                out.append("[" + ("^" if neg else "") + body + "]")
                i = j
        elif c in meta:
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    out.append("$")
    return "".join(out)


# --- protocols -----------------------------------------------------------------------------

@runtime_checkable
class Collection(Protocol):
    """One named set of indexed images."""

    name: str

    # reading
    def count(self) -> int: ...
    def file_count(self) -> int: ...
    def info(self) -> CollectionInfo: ...
    def stats(self) -> dict[str, Any]: ...
    def item_ids(self) -> set[str]: ...
    def file_states(self) -> dict[str, FileRecord]: ...
    def get_items(self, ids: Sequence[str], *, columns: Sequence[str] | None = None) -> list[dict[str, Any]]: ...
    def thumbnail(self, item_id: str) -> bytes: ...
    def iter_items(self, columns: Sequence[str], *, batch_size: int = 10_000) -> Iterator[list[dict[str, Any]]]: ...
    def iter_vectors(self, column: str, *, batch_size: int = 10_000) -> Iterator[tuple[list[str], np.ndarray]]: ...

    # searching
    def vector_search(
        self, vector: np.ndarray, *, column: str, k: int, filter: Filter | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[Hit]: ...
    def keyword_search(
        self, query: str, *, k: int, filter: Filter | None = None, columns: Sequence[str] | None = None
    ) -> list[Hit]: ...
    def fetch(self, hits: Sequence[Hit], *, columns: Sequence[str] | None = None) -> dict[str, dict[str, Any]]: ...
    def neighbours(self, vectors: np.ndarray, *, column: str, k: int) -> list[tuple[int, str, float]]: ...
    def files_of(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Every indexed path of each item id (sorted)."""
        ...

    def models(self) -> dict[str, Any]:
        """Which models produced the stored observations and vectors (``set_models``)."""
        ...

    def vector_spaces(self) -> dict[str, dict[str, Any]]:
        """Which model made each kind of stored vector, and its size: ``{"image": {"model",
        "dim"}, "text": {...}}`` (empty before anything was stored). Indexing refuses vectors of
        another space (``oculi.tasks.index.spaces``)."""
        ...

    # writing (call inside ``writer()``)
    def writer(self, *, wait: bool = False) -> ContextManager[None]:
        """Hold the collection's writer lock: one writer per collection across every process
        sharing the store (a file lock for the embedded store, an advisory lock in PostgreSQL),
        any number of readers. Re-entrant for the holding thread.

        Raises:
            InputError: another writer holds it (with ``wait=False``).
        """
        ...

    def set_models(self, models: dict[str, Any]) -> None:
        """Record which models produced the stored observations and vectors."""
        ...

    def set_vector_spaces(self, spaces: dict[str, dict[str, Any]]) -> None:
        """Record the vector spaces of what is (about to be) stored."""
        ...

    def repoint_items(self, moves: dict[str, str]) -> None:
        """Set the display ``path`` (and ``name``) of items whose path was forgotten but which
        have other files: ``{item id: new path}``."""
        ...

    def add_items(self, items: Sequence[ItemRecord]) -> None: ...
    def update_items(self, items: Sequence[ItemRecord]) -> None: ...
    def upsert_files(self, files: Sequence[FileRecord]) -> None: ...
    def delete_files(self, paths: Sequence[str]) -> int: ...
    def delete_orphan_items(self) -> int:
        """Delete the items that no file record points to and that are not frames of a stored
        source; returns how many."""
        ...

    def optimize(self) -> Any:
        """Bring indexes up to date and compact; call inside ``writer()``. Returns what was done."""
        ...
    def ensure_space(self, items: int) -> None:
        """Raise ``StoreFullError`` unless ``items`` more items fit (called before perceiving them)."""
        ...

    # footage records (``oculi.store.records``): sources, tracks, events
    def upsert_records(self, records: Sequence[Record]) -> None:
        """Insert or replace records (all of one table) by ``id``, in one commit. Call inside
        ``writer()``. Writing the same record again leaves one copy."""
        ...

    def query_records(
        self, table: RecordTable | str, filter: Filter | None = None, *, order_by: str | None = None,
        descending: bool = False, limit: int | None = None,
    ) -> list[Any]:
        """Records of ``table`` matching ``filter`` (conditions on ``RECORD_FILTER_FIELDS[table]``),
        ordered by a filterable column (then by ``id``, so the order is stable), at most ``limit``.

        Raises:
            InputError: a condition or ``order_by`` names a column the table does not have.
        """
        ...

    def count_records(self, table: RecordTable | str, filter: Filter | None = None) -> int:
        """How many records of ``table`` match ``filter``."""
        ...

    def delete_records(self, table: RecordTable | str, filter: Filter) -> int:
        """Delete the records matching ``filter`` (never all: an empty filter is refused); returns
        how many. Call inside ``writer()``."""
        ...

    def lock(self, name: str, *, wait: bool = False) -> ContextManager[None]:
        """An exclusive named lock within the collection, across processes (e.g. one watcher per
        source), independent of the writer lock.

        Raises:
            InputError: another process holds it (with ``wait=False``).
        """
        ...


@runtime_checkable
class Store(Protocol):
    """A set of named collections."""

    #: Where the store lives, as ``--store`` takes it (``lance:///path``, ``postgresql://...``),
    #: with no password.
    url: str

    def list_collections(self) -> list[CollectionInfo]: ...
    def names(self) -> list[str]:
        """Collection names, sorted (cheaper than ``list_collections``: nothing is counted)."""
        ...
    def exists(self, name: str) -> bool: ...
    def create_collection(self, name: str, *, exist_ok: bool = True) -> Collection: ...
    def open_collection(self, name: str) -> Collection: ...
    def drop_collection(self, name: str) -> None:
        """Delete a collection, damaged or not (a garbled description must not block it)."""
        ...
    def blobs(self, name: str) -> "BlobStore":
        """Where the original bytes of the collection's uploads are kept (``oculi.store.blobs``)."""
        ...

    # integrity (``oculi.store.integrity``): damage is detected, reported and repaired, never
    # mistaken for emptiness
    def check_collection(self, name: str, *, hashes: bool = True) -> "Any":
        """Verify one collection (checksums, every version, every table read, every index);
        returns a ``CollectionCheck``. Never raises for damage."""
        ...
    def repair_collection(self, name: str) -> "Any":
        """Bring a damaged collection back to a readable, checksummed state; returns a
        ``RepairReport`` saying what was lost and which source files to re-index."""
        ...
