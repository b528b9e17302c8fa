"""Store integrity, independent of the backend: checksums of what was written, reports of damage.

The model is PostgreSQL's data checksums plus ``amcheck``, and SQLite's ``integrity_check``:
every committed write records the SHA-256 of each file it added in a per-collection
*integrity record*; ``collections check`` re-hashes them, opens and scans every table and
reports, per collection, which file of which kind is damaged and what that affects;
``collections repair`` puts damaged files aside (never deletes them), brings the collection back
to a readable state and says exactly what was lost and what was re-derived. A collection that
cannot be read is an error that names the fix, never an empty collection.

This module holds what every store implementation shares: file kinds, the record, the report
types, the roles of the tables (what a lost row means and how it is re-derived), leftover
temporary files and free-space checks. ``oculi.store.lance_check`` implements check and repair
for the embedded LanceDB store.

Cost, measured (benchmarks/bench_integrity.py): SHA-256 runs at ~790 MB/s on the reference
2-core Xeon (SHA-NI); see docs/SEARCH.md "Recovery" for the cost per write and per check.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable

from oculi.core.errors import StoreFullError
from oculi.core.types import SCHEMA_VERSION

log = logging.getLogger(__name__)

RECORD_FILE = "integrity.json"
#: Writes since the last snapshot, one checksummed JSON line each (see ``IntegrityRecord``).
JOURNAL_SUFFIX = ".journal"
#: Journal lines after which the next write folds them into a new snapshot.
JOURNAL_MAX_LINES = 256
RECORD_FORMAT = 1
HASH_ALGORITHM = "sha256"
#: Where repair puts damaged files (inside the collection directory; never deleted by oculi).
QUARANTINE_DIR = ".damaged"


class FileKind(StrEnum):
    """What a stored file is, for reports (``check --json`` ``damage[].kind``)."""

    META = "meta"  # collection.json: name, schema version, vector sizes, models, dates
    RECORD = "integrity-record"  # integrity.json: the checksums themselves
    MANIFEST = "manifest"  # one table version
    DATA = "data"  # rows of a table (a fragment)
    DELETION = "deletion"  # which rows of a fragment were deleted
    INDEX = "index"  # full-text, vector or scalar index
    TRANSACTION = "transaction"  # the log of how a version was made (not needed to read it)
    BLOB = "blob"  # the original bytes of an uploaded image
    TABLE = "table"  # a table as a whole (it cannot be opened or scanned)


@dataclass(frozen=True)
class TableRole:
    """What a table's rows are and how lost ones come back (one entry per table name).

    New tables (footage: sources, tracks, events) register theirs with ``register_table_role``;
    ``check`` and ``repair`` treat every table of a collection the same way (manifests, files,
    checksums, reading, indexes, restore points) and use the role only to say what a loss
    means. Re-deriving lost rows is per table: items come back by re-indexing the sources their
    file rows name, file rows from the items; a new table's lost rows are reported in
    ``RepairReport.rows_lost`` and come back when its sources are indexed again.
    """

    name: str
    rows_are: str  # plural noun phrase: "items (observation, vectors, thumbnail)"
    rederive: str  # how lost rows come back, for the report
    derived_from_sources: bool = True  # re-running indexing on the source files restores them


TABLE_ROLES: dict[str, TableRole] = {}


def register_table_role(role: TableRole) -> TableRole:
    TABLE_ROLES[role.name] = role
    return role


register_table_role(TableRole("items", "items (observation, caption, vectors, thumbnail)",
                              "re-indexed from their source files when these are still on disk"))
register_table_role(TableRole("files", "file records (path → item)",
                              "rebuilt from the items' paths; the next index run re-hashes those files",
                              derived_from_sources=False))


def table_role(name: str) -> TableRole:
    return TABLE_ROLES.get(name) or TableRole(name, f"rows of the {name} table", "re-indexed from their sources")


# --- hashing and the record ---------------------------------------------------------------------

def hash_file(path: Path) -> str:
    """SHA-256 of a file's contents (hex)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, HASH_ALGORITHM).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One recorded file: what it held when it was written."""

    size: int
    sha256: str
    kind: str
    table: str | None = None
    version: int | None = None  # the table version current when the file was recorded

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "kind": self.kind, "table": self.table, "version": self.version}


class RecordError(ValueError):
    """The integrity record is unreadable or fails its own checksum."""


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class IntegrityRecord:
    """Checksums of every file a collection's committed writes added, plus each table's state.

    Stored as a snapshot, ``integrity.json`` in the collection directory, written atomically
    (temporary file, fsync, rename, fsync of the directory) and checksummed itself
    (``checksum`` is the SHA-256 of the canonical JSON of everything else), plus a journal,
    ``integrity.json.journal``: one line per write since the snapshot, holding only what that
    write added, with its own checksum, appended and fsynced. So a write costs what it added, not
    the size of the whole record (a 100k-image run makes thousands of writes); every
    ``JOURNAL_MAX_LINES`` writes, and at each ``optimize``, the journal is folded into a new
    snapshot. A torn last line (a crash while appending) is ignored — that write is then
    "not yet checksummed", and the next write records its files — any other bad line or a bad
    snapshot is a damaged record, detected rather than trusted.

    Attributes:
        files: ``{path relative to the collection: FileEntry}``.
        tables: ``{table: {"version": latest vouched version, "rows": rows then,
            "fallback_version": the version kept as the restore point}}``.
    """

    files: dict[str, FileEntry] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_at: float = 0.0
    journal_lines: int = 0

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": RECORD_FORMAT,
            "algorithm": HASH_ALGORITHM,
            "updated_at": self.updated_at,
            "tables": self.tables,
            "files": {k: v.to_dict() for k, v in sorted(self.files.items())},
        }
        doc["checksum"] = hashlib.sha256(_canonical(doc)).hexdigest()
        return doc

    @classmethod
    def from_doc(cls, doc: Any) -> "IntegrityRecord":
        if not isinstance(doc, dict) or "checksum" not in doc:
            raise RecordError("not an integrity record")
        body = {k: v for k, v in doc.items() if k != "checksum"}
        if hashlib.sha256(_canonical(body)).hexdigest() != doc["checksum"]:
            raise RecordError("the record fails its own checksum")
        if body.get("format") != RECORD_FORMAT or body.get("algorithm") != HASH_ALGORITHM:
            raise RecordError(f"unknown record format {body.get('format')!r}/{body.get('algorithm')!r}")
        try:
            files = {k: FileEntry(int(v["size"]), str(v["sha256"]), str(v["kind"]), v.get("table"), v.get("version"))
                     for k, v in body["files"].items()}
            return cls(files, dict(body["tables"]), float(body.get("updated_at") or 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RecordError(f"malformed record ({e})") from None

    @classmethod
    def load(cls, path: Path) -> "IntegrityRecord | None":
        """The record at ``path`` (snapshot and journal); ``None`` when there is none.

        Raises:
            RecordError: the snapshot or a journal line (other than a torn last one) is damaged.
        """
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise RecordError(f"cannot be read ({e.strerror or e})") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RecordError("not valid JSON") from None
        rec = cls.from_doc(doc)
        rec._replay(journal_path(path))
        return rec

    def _replay(self, jpath: Path) -> None:
        try:
            lines = jpath.read_bytes().split(b"\n")
        except FileNotFoundError:
            return
        except OSError as e:
            raise RecordError(f"its journal cannot be read ({e.strerror or e})") from None
        if lines and not lines[-1]:
            lines.pop()
        for i, line in enumerate(lines):
            try:
                doc = json.loads(line.decode("utf-8"))
                body = {k: v for k, v in doc.items() if k != "checksum"}
                if hashlib.sha256(_canonical(body)).hexdigest() != doc.get("checksum"):
                    raise ValueError("checksum")
                for k, v in body["files"].items():
                    self.files[k] = FileEntry(int(v["size"]), str(v["sha256"]), str(v["kind"]), v.get("table"),
                                              v.get("version"))
                for t, st in body["tables"].items():
                    self.tables.setdefault(t, {}).update(st)
                self.updated_at = float(body.get("at") or self.updated_at)
            except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
                if i == len(lines) - 1:
                    log.info("ignoring a torn last line of %s (a write interrupted while recording)", jpath)
                    break
                raise RecordError(f"line {i + 1} of its journal is damaged") from None
            self.journal_lines += 1

    def save(self, path: Path) -> None:
        """Write a new snapshot (atomically) and drop the journal it folds in."""
        self.updated_at = time.time()
        write_bytes_atomic(path, json.dumps(self.to_doc(), indent=1, sort_keys=True).encode())
        try:
            journal_path(path).unlink()
        except FileNotFoundError:
            pass
        self.journal_lines = 0
        fsync_dir(path.parent)

    def append(self, path: Path, added: dict[str, FileEntry], tables: dict[str, dict[str, Any]]) -> None:
        """Record one write: a journal line with what it added (or a new snapshot every
        ``JOURNAL_MAX_LINES`` lines, or when there is no snapshot yet)."""
        if self.journal_lines >= JOURNAL_MAX_LINES or not path.exists():
            self.save(path)
            return
        self.updated_at = time.time()
        body = {"files": {k: v.to_dict() for k, v in sorted(added.items())}, "tables": tables, "at": self.updated_at}
        body["checksum"] = hashlib.sha256(_canonical(body)).hexdigest()
        line = json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        jpath = journal_path(path)
        try:
            fd = os.open(jpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full(path.parent, len(line)) from None
            raise
        self.journal_lines += 1


def journal_path(record_path: Path) -> Path:
    return record_path.with_name(record_path.name + JOURNAL_SUFFIX)


def fsync_dir(path: Path) -> None:
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


TMP_SUFFIX = ".tmp"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that it is either the old or the new contents, never a mix.

    The temporary file is removed if the write fails (a full disk leaves nothing behind).

    Raises:
        StoreFullError: the disk is full.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise disk_full(path.parent, len(data)) from None
        raise
    fsync_dir(path.parent)


# --- reports ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Damage:
    """One damaged thing: which file (or table), what kind, what is wrong, what it affects.

    Attributes:
        path: Relative to the collection directory.
        kind: A ``FileKind`` value.
        table: The table it belongs to (``None`` for collection.json, the record, blobs).
        problem: What is wrong: ``missing``, ``truncated``, ``changed since written``, ``unreadable``...
        affects: What that means, in words (which rows, index or version).
        versions: Table versions that reference it.
        latest: Whether the latest version is affected (reads fail or return wrong data).
        rows: Rows affected (when known).
    """

    path: str
    kind: str
    problem: str
    affects: str
    table: str | None = None
    versions: tuple[int, ...] = ()
    latest: bool = True
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "table": self.table, "problem": self.problem,
                "affects": self.affects, "versions": list(self.versions), "latest": self.latest, "rows": self.rows}


@dataclass
class CollectionCheck:
    """The result of checking one collection."""

    name: str
    path: str
    damage: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    files_checked: int = 0
    bytes_checked: int = 0
    blobs_checked: int = 0
    elapsed_s: float = 0.0
    skipped: str | None = None  # why it was not checked (being written)

    @property
    def ok(self) -> bool:
        return not self.damage and self.skipped is None

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "ok" if not self.damage else "damaged"

    def summary(self) -> str:
        """One line: ``ok`` or the first damage in words."""
        if self.ok:
            return "ok"
        d = self.damage[0]
        more = f" (+{len(self.damage) - 1} more)" if len(self.damage) > 1 else ""
        return f"{d.kind} file {d.path} {d.problem}: {d.affects}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "skipped": self.skipped, "path": self.path,
            "damage": [d.to_dict() for d in self.damage], "notes": list(self.notes), "tables": self.tables,
            "files_checked": self.files_checked, "bytes_checked": self.bytes_checked,
            "blobs_checked": self.blobs_checked, "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass
class CheckReport:
    """``oculi collections check``: every collection checked (or the one named)."""

    collections: list[CollectionCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.collections)

    @property
    def damaged(self) -> list[str]:
        return [c.name for c in self.collections if c.damage]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "ok": self.ok, "damaged": self.damaged,
                "collections": [c.to_dict() for c in self.collections]}


@dataclass
class RepairReport:
    """What ``oculi collections repair`` did, and what could not be brought back.

    Attributes:
        actions: What was done, in order, in words.
        restored_versions: ``{table: version}`` rolled back to (the last good one).
        rows_lost: ``{table: rows}`` removed from the tables because their files were damaged
            (before re-derivation).
        rebuilt_indexes: Index names rebuilt.
        reindex_paths: Source files whose items were lost and which are still on disk (the task
            layer re-indexes them; ``rederived`` counts those done).
        lost_paths: Source files whose items were lost and which are gone: not recoverable.
        lost_unknown: Rows lost whose source is not known (their file records were lost too).
        lost_originals: Uploaded originals (under ``blobs/``) that were damaged and set aside.
        quarantine: Where the damaged files were put (relative to the collection), if anywhere.
    """

    name: str
    before: CollectionCheck | None = None
    after: CollectionCheck | None = None
    actions: list[str] = field(default_factory=list)
    restored_versions: dict[str, int] = field(default_factory=dict)
    rows_lost: dict[str, int] = field(default_factory=dict)
    rebuilt_indexes: list[str] = field(default_factory=list)
    reindex_paths: list[str] = field(default_factory=list)
    rederived: int = 0
    rederive_failed: list[dict[str, str]] = field(default_factory=list)
    lost_paths: list[str] = field(default_factory=list)
    lost_unknown: int = 0
    lost_originals: list[str] = field(default_factory=list)
    quarantine: str | None = None
    elapsed_s: float = 0.0

    @property
    def nothing_to_do(self) -> bool:
        return not self.actions and not self.reindex_paths

    @property
    def ok(self) -> bool:
        return self.after is None or self.after.ok

    @property
    def lost_anything(self) -> bool:
        return bool(self.lost_paths or self.lost_unknown or self.rederive_failed or self.lost_originals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "name": self.name, "status": "ok" if self.ok else "damaged",
            "nothing_to_do": self.nothing_to_do, "actions": list(self.actions),
            "restored_versions": dict(self.restored_versions), "rows_lost": dict(self.rows_lost),
            "rebuilt_indexes": list(self.rebuilt_indexes), "rederived": self.rederived,
            "rederive_failed": list(self.rederive_failed), "lost_paths": list(self.lost_paths),
            "lost_unknown": self.lost_unknown, "lost_originals": list(self.lost_originals),
            "quarantine": self.quarantine,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None, "elapsed_s": round(self.elapsed_s, 3),
        }


# --- leftovers, quarantine, free space ----------------------------------------------------------

def is_leftover_temp(name: str) -> bool:
    """A temporary file of an interrupted write: ours (``.x.<hex>.tmp``), Lance's staged
    manifests (``N.manifest-<uuid>``) and object_store's staged uploads (``file#N``)."""
    if name.endswith(TMP_SUFFIX):
        return True
    if ".manifest-" in name:
        return True
    base, sep, tail = name.rpartition("#")
    return bool(sep and base and tail.isdigit())


def find_leftovers(root: Path, *, skip: Iterable[str] = (QUARANTINE_DIR,)) -> list[Path]:
    """Temporary files left under ``root`` by writes that were killed or hit a full disk."""
    skipped = set(skip)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skipped]
        out.extend(Path(dirpath) / f for f in filenames if is_leftover_temp(f))
    return out


def remove_leftovers(root: Path, *, skip: Iterable[str] = (QUARANTINE_DIR,)) -> int:
    """Delete leftover temporary files (call only while holding the collection's writer lock)."""
    n = 0
    for p in find_leftovers(root, skip=skip):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    if n:
        log.info("removed %d leftover temporary file(s) under %s", n, root)
    return n


def quarantine(root: Path, relpath: str, qdir: Path) -> Path | None:
    """Move ``root/relpath`` to ``qdir/relpath`` (same filesystem: a rename). Returns the new path."""
    src = root / relpath
    if not src.exists() and not src.is_symlink():
        return None
    dest = qdir / relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    return dest


def new_quarantine_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return root / QUARANTINE_DIR / f"{stamp}-{uuid.uuid4().hex[:6]}"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_full(path: Path, needed: int | None = None, free: int | None = None) -> StoreFullError:
    """The one error for a full disk: names the path and how much free space is needed."""
    if free is None:
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            free = None
    need = f"about {human_bytes(needed)} free is needed" if needed else "more free space is needed"
    have = f" ({human_bytes(free)} free now)" if free is not None else ""
    return StoreFullError(
        f"the disk holding {path} is full: {need}{have}. What was already indexed is saved; free some "
        "space (or move OCULI_HOME) and run the same command again",
        path=str(path), needed=needed, free=free,
    )


def ensure_free_space(path: Path, needed: int) -> None:
    """Raise ``StoreFullError`` unless ``path``'s filesystem has ``needed`` bytes free."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return
    if free < needed:
        raise disk_full(path, needed, free)


def is_disk_full(e: BaseException) -> bool:
    """Whether an exception (ours, the OS's or Lance's) says the disk is full."""
    if isinstance(e, StoreFullError):
        return True
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    msg = str(e)
    return "No space left on device" in msg or "os error 28" in msg or "Disk quota exceeded" in msg
