"""Copy collections between stores (``oculi migrate --from SRC --to DST``), verified and resumable.

Everything a collection holds goes through the ``Store``/``Collection``/``BlobStore``
protocols, so any store can be the source or the destination: items (vectors, thumbnails and
observations included), file records, the footage record tables, the recorded models and vector
spaces, and the uploaded originals (whose locations, recorded as item and file paths, are rewritten to the
destination's).

Resumable: items already in the destination (same id) are not copied again, file and footage
records are upserts, blobs already there are skipped; a run that was interrupted is finished by
running it again. Verified: afterwards the row counts of every table and a SHA-256 over each
table's content in a canonical order must be equal on both sides (vectors are compared at the
precision both stores keep: text vectors as float32, image vectors as float16, which the embedded
store stores).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from oculi.core.errors import NotFoundError, OculiError
from oculi.store.base import Collection, FileRecord, Store, item_from_row
from oculi.store.records import RecordTable

MIGRATE_SCHEMA_VERSION = "1.1"
ITEM_BATCH = 500
#: Every stored item column, vectors and thumbnail included.
ALL_ITEM_COLUMNS = (
    "id", "sha256", "path", "name", "kind", "source_id", "frame_index", "timestamp", "width", "height", "format",
    "file_size", "time", "taken_at", "camera", "gps_lat", "gps_lon", "caption", "doc", "labels", "objects",
    "object_terms", "colours", "text", "track_ids", "observation", "text_vec", "image_vec", "thumbnail", "indexed_at",
)
_CHECKED_COLUMNS = tuple(c for c in ALL_ITEM_COLUMNS if c not in ("text_vec", "image_vec", "thumbnail", "path", "observation"))

ProgressFn = Callable[[str, str, int, int], None]  # (collection, phase, done, total)


class MigrationMismatch(OculiError):
    """The destination does not hold what the source holds after the copy."""


@dataclass
class CollectionMigration:
    name: str
    items_copied: int = 0
    items_present: int = 0
    files: int = 0
    records: dict[str, int] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_present: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    verified: bool = False
    mismatches: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "verified": self.verified, "items_copied": self.items_copied,
            "items_present": self.items_present, "files": self.files, "records": self.records,
            "blobs_copied": self.blobs_copied, "blobs_present": self.blobs_present, "counts": self.counts,
            "checksums": self.checksums, "mismatches": self.mismatches, "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass
class MigrationReport:
    source: str
    destination: str
    collections: list[CollectionMigration] = field(default_factory=list)
    elapsed_s: float = 0.0
    source_blobs: str = "store"
    destination_blobs: str = "store"

    @property
    def ok(self) -> bool:
        return all(c.verified for c in self.collections)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": MIGRATE_SCHEMA_VERSION, "source": self.source, "destination": self.destination,
            "source_blobs": self.source_blobs, "destination_blobs": self.destination_blobs,
            "ok": self.ok, "collections": [c.to_dict() for c in self.collections], "elapsed_s": round(self.elapsed_s, 3),
        }


def migrate(src: Store, dst: Store, collections: Sequence[str] | None = None, *,
            progress: ProgressFn | None = None) -> MigrationReport:
    """Copy ``collections`` (default: all) from ``src`` to ``dst`` and verify each copy.

    Raises:
        NotFoundError: a named collection is not in ``src``.
        InputError: source and destination are the same store.
        MigrationMismatch: a copy does not verify (the report is on the exception's ``report``);
            running again resumes and re-verifies.
    """
    from oculi.core.errors import InputError

    if src.url == dst.url:
        raise InputError(f"source and destination are the same store ({src.url})")
    t0 = time.monotonic()
    names = list(collections) if collections else src.names()
    for n in names:
        if not src.exists(n):
            raise NotFoundError(f"no collection named {n!r} in {src.url}")
    report = MigrationReport(source=src.url, destination=dst.url, source_blobs=blobs_url(src),
                             destination_blobs=blobs_url(dst))
    for n in names:
        report.collections.append(_migrate_one(src, dst, n, progress))
    report.elapsed_s = time.monotonic() - t0
    if not report.ok:
        bad = [c for c in report.collections if not c.verified]
        err = MigrationMismatch(
            f"the copy of {', '.join(repr(c.name) for c in bad)} does not match the source: "
            f"{'; '.join(m for c in bad for m in c.mismatches)[:400]}. Run the same command again to resume")
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report


def blobs_url(store: Store) -> str:
    """Where a store keeps uploads: ``store`` (its own folder or table) or its blob root's URL."""
    root = getattr(store, "blob_root", None)
    return root.url if root is not None else "store"


def _migrate_one(src: Store, dst: Store, name: str, progress: ProgressFn | None) -> CollectionMigration:
    t0 = time.monotonic()
    out = CollectionMigration(name=name)
    s = src.open_collection(name)
    d = dst.create_collection(name, exist_ok=True)
    say = (lambda phase, done, total: progress(name, phase, done, total)) if progress else (lambda *a: None)

    # blobs first: item and file paths that name a source blob are rewritten to the destination's
    sb, db = src.blobs(name), dst.blobs(name)
    moved: dict[str, str] = {}
    keys = list(sb.keys())
    for i, k in enumerate(keys):
        if db.exists(k):
            out.blobs_present += 1
        else:
            db.put(k, sb.get(k))
            out.blobs_copied += 1
        moved[sb.location(k)] = db.location(k)
        say("blobs", i + 1, len(keys))

    total = s.count()
    with d.writer(wait=True):
        d.set_models(s.models())
        spaces = s.vector_spaces()
        if spaces:  # the destination then refuses another embedder's vectors too
            mine = d.vector_spaces()
            if mine and mine != spaces:
                from oculi.core.errors import InputError

                raise InputError(f"collection {name!r} in {dst.url} holds vectors of other models ({mine}) than the "
                                 f"source's ({spaces}); migrate into a new collection")
            d.set_vector_spaces(spaces)
        have = d.item_ids()
        done = 0
        for rows in s.iter_items(list(ALL_ITEM_COLUMNS), batch_size=ITEM_BATCH):
            fresh = []
            for r in rows:
                if r["id"] in have:
                    out.items_present += 1
                    continue
                if r.get("path") in moved:
                    r = {**r, "path": moved[r["path"]]}
                fresh.append(item_from_row(r))
            if fresh:
                d.add_items(fresh)
                out.items_copied += len(fresh)
            done += len(rows)
            say("items", done, total)
        files = [FileRecord(moved.get(f.path, f.path), f.id, f.size, f.mtime_ns, f.seen_at) for f in s.file_states().values()]
        for i in range(0, len(files), 5000):
            d.upsert_files(files[i : i + 5000])
        out.files = len(files)
        say("files", len(files), len(files))
        for table in RecordTable:
            recs = s.query_records(table)
            for i in range(0, len(recs), 2000):
                d.upsert_records(recs[i : i + 2000])
            out.records[table.value] = len(recs)
            say(table.value, len(recs), len(recs))
        d.optimize()

    sums_s, counts_s = fingerprint(s, moved)
    sums_d, counts_d = fingerprint(d, {})
    out.counts = counts_d
    out.checksums = sums_d
    for k in counts_s:
        if counts_s[k] != counts_d.get(k):
            out.mismatches.append(f"{k}: {counts_s[k]} in the source, {counts_d.get(k)} in the destination")
        elif sums_s[k] != sums_d.get(k):
            out.mismatches.append(f"{k}: same count, different content")
    if s.vector_spaces() != d.vector_spaces():
        out.mismatches.append("vector spaces: the destination records other models than the source")
    out.verified = not out.mismatches
    out.elapsed_s = time.monotonic() - t0
    return out


def _vec_bytes(v: Any, dtype: Any) -> bytes:
    return np.asarray(v, dtype=np.float32).astype(dtype).tobytes()


def fingerprint(c: Collection, moved: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    """``({table: sha256}, {table: rows})`` of a collection's content, in a canonical order;
    ``moved`` maps blob locations to what they are called on the other side."""
    rows: list[tuple[str, str]] = []
    for batch in c.iter_items(list(ALL_ITEM_COLUMNS), batch_size=ITEM_BATCH):
        for r in batch:
            h = hashlib.sha256()
            plain = {k: (list(r[k]) if isinstance(r[k], (list, tuple)) else r[k]) for k in _CHECKED_COLUMNS}
            obs = r["observation"]
            plain["observation"] = json.loads(obs) if isinstance(obs, str) and obs else (obs or {})
            plain["path"] = moved.get(r["path"], r["path"])
            h.update(json.dumps(plain, sort_keys=True, default=str).encode())
            h.update(_vec_bytes(r["text_vec"], np.float32))
            h.update(_vec_bytes(r["image_vec"], np.float16))
            h.update(bytes(r["thumbnail"] or b""))
            rows.append((r["id"], h.hexdigest()))
    sums = {"items": _digest(sorted(rows))}
    counts = {"items": len(rows)}
    files = sorted((moved.get(f.path, f.path), f.id, int(f.size), int(f.mtime_ns)) for f in c.file_states().values())
    sums["files"], counts["files"] = _digest(files), len(files)
    for table in RecordTable:
        recs = sorted(json.dumps(r.to_row(), sort_keys=True, default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
                      for r in c.query_records(table))
        sums[table.value], counts[table.value] = _digest(recs), len(recs)
    return sums, counts


def _digest(rows: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()
