"""Repair a damaged Lance collection: set damage aside, go back to what is good, say what was lost.

Order of work (under the collection's writer lock; nothing is ever deleted, damaged files are
moved to ``<collection>/.damaged/<time>/`` with their relative paths):

1. Temporary files of interrupted writes are removed.
2. ``check_collection`` finds the damage; every damaged file is set aside.
3. Per table: if the newest version's manifest was damaged, Lance now opens the one before it —
   the last good version. If files of the latest version are gone, the table is brought to
   whichever keeps more rows: the latest version without the fragments that lost their files,
   or the newest older version whose files are all intact (``optimize`` always keeps the
   version it started from, so after a compaction the pre-compaction version is there).
   Versions that can no longer be read are set aside too. A table with no readable version
   left is set aside whole and starts empty.
4. Damaged indexes are dropped and rebuilt (derived data: nothing is lost).
5. ``collection.json`` is rebuilt from the tables when it was unreadable; lost file records
   are rebuilt from the items; file records whose items were lost are listed: still on disk →
   ``reindex_paths`` (the task layer re-indexes them), gone → ``lost_paths`` (and forgotten).
6. The integrity record is written afresh and the collection is checked again.

A second repair finds nothing to do.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from oculi.store.base import VECTOR_MODEL_KEYS, spaces_from_item_models
from oculi.store.integrity import (
    RECORD_FILE,
    FileKind,
    IntegrityRecord,
    RepairReport,
    journal_path,
    new_quarantine_dir,
    quarantine,
    remove_leftovers,
    table_role,
)
from oculi.store.lance_check import META_FILE, TABLE_SUFFIX, check_collection, record_tables, table_dirs
from oculi.store.lance_manifest import FragmentRef, Manifest, read_versions
from oculi.store.lance_session import directory_lock, has_versions

if TYPE_CHECKING:
    from oculi.store.lance import LanceStore

log = logging.getLogger(__name__)


class _Aside:
    """Moves damaged paths into one quarantine folder, created on first use."""

    def __init__(self, root: Path, report: RepairReport) -> None:
        self.root = root
        self.report = report
        self.qdir: Path | None = None

    def __call__(self, rel: str) -> bool:
        if self.qdir is None:
            self.qdir = new_quarantine_dir(self.root)
            self.report.quarantine = os.path.relpath(self.qdir, self.root)
        return quarantine(self.root, rel, self.qdir) is not None


def repair_collection(store: "LanceStore", name: str) -> RepairReport:
    """Repair collection ``name`` of a ``LanceStore``; see the module docstring."""
    t0 = time.monotonic()
    root = store.collection_dir(name)
    rep = RepairReport(name=root.name)
    with directory_lock(root, root.name):
        store.forget(root.name)
        left = remove_leftovers(root)
        if left:
            rep.actions.append(f"removed {left} temporary file(s) left by interrupted writes")
        before = check_collection(root, root.name)
        rep.before = before
        aside = _Aside(root, rep)
        damaged = {d.path for d in before.damage}
        record_damaged = RECORD_FILE in damaged
        if record_damaged and (aside(RECORD_FILE) | aside(journal_path(Path(RECORD_FILE)).name)):
            rep.actions.append(f"set aside the damaged integrity record ({RECORD_FILE}); it is written afresh")
        recorded_rows = _recorded_rows(root)
        touched: set[str] = set()
        for tname, tdir in table_dirs(root).items():
            if _repair_table(root, tname, tdir, before, rep, aside, recorded_rows.get(tname)):
                touched.add(tname)
        for d in before.damage:
            if d.kind == FileKind.TABLE.value and d.problem == "missing" and d.table:
                rep.rows_lost[d.table] = rep.rows_lost.get(d.table, 0) + int(d.rows or 0)
                rep.actions.append(f"the {d.table} table was missing: it starts empty")
                touched.add(d.table)
            if d.kind == FileKind.BLOB.value and aside(d.path):
                rep.lost_originals.append(d.path)
                rep.actions.append(f"set aside the damaged upload original {d.path}")
        if META_FILE in damaged:
            aside(META_FILE)
            _rebuild_meta(root, root.name)
            rep.actions.append(f"rebuilt {META_FILE} from the tables")
        if rep.actions or not before.ok:
            # the tables are in their final state: vouch for it (and make it the restore point)
            # before opening them again; the writes below add their files to this record
            _write_fresh_record(root)
            rep.actions.append("recorded fresh checksums of every file")
        coll = store.open_collection(root.name)
        _recreate_lost_tables(coll, touched)
        _rebuild_damaged_indexes(coll, before, rep)
        if touched:
            built = coll.ensure_indexes()
            if built:
                rep.rebuilt_indexes.extend(built)
                rep.actions.append(f"built the missing {', '.join(built)} index(es)")
        _rederive(coll, rep, touched)
        store.forget(root.name)
        rep.after = check_collection(root, root.name) if rep.actions else before
    rep.elapsed_s = time.monotonic() - t0
    return rep


def _recreate_lost_tables(coll: Any, touched: set[str]) -> None:
    """A table set aside whole (or found missing) starts again empty, never on top of its files."""
    from oculi.store.lance import FILES, FILES_SCHEMA, ITEMS, items_schema

    for name in sorted(touched):
        if has_versions(coll.path / f"{name}{TABLE_SUFFIX}"):
            continue
        if name == FILES:
            coll._create_table(FILES, FILES_SCHEMA)
        elif name == ITEMS and "text_dim" in coll.meta:
            coll._create_table(ITEMS, items_schema(int(coll.meta["text_dim"]), int(coll.meta["image_dim"])))


def _recorded_rows(root: Path) -> dict[str, int]:
    try:
        rec = IntegrityRecord.load(root / RECORD_FILE)
    except Exception:  # noqa: BLE001 - a damaged record says nothing
        return {}
    if rec is None:
        return {}
    return {t: int(st.get("rows") or 0) for t, st in rec.tables.items()}


def _missing(tdir: Path, frag: FragmentRef) -> bool:
    return any(not (tdir / f).exists() for f in frag.files)


def _repair_table(root: Path, tname: str, tdir: Path, before: Any, rep: RepairReport, aside: _Aside,
                  recorded_rows: int | None) -> bool:
    """Bring one table to its best readable state. Returns whether it changed."""
    import lancedb

    damage = [d for d in before.damage if d.table == tname]
    if not damage:
        return False
    newest_before = max((v for v in (read_versions(tdir).newest_version,
                                      before.tables.get(tname, {}).get("recorded_version")) if v is not None),
                        default=None)  # a deleted newest manifest leaves only the record's word for it
    for d in damage:
        if d.kind != FileKind.TABLE.value and aside(d.path):
            rep.actions.append(f"set aside {d.path} ({d.kind}, {d.problem})")
    tv = read_versions(tdir)
    if not tv.readable:
        aside(tdir.name)
        rows = recorded_rows if recorded_rows is not None else before.tables.get(tname, {}).get("rows") or 0
        rep.rows_lost[tname] = rep.rows_lost.get(tname, 0) + int(rows)
        rep.actions.append(f"the {tname} table had no readable version left: set aside whole; it starts empty")
        return True
    latest = tv.latest
    assert latest is not None
    tv = _set_aside_broken_versions(tdir, tname, rep, aside)
    if newest_before is not None and newest_before > latest.version:
        rep.restored_versions[tname] = latest.version
        lost = max(0, (recorded_rows or latest.rows) - latest.rows)
        if lost:
            rep.rows_lost[tname] = rep.rows_lost.get(tname, 0) + lost
        rep.actions.append(f"went back to version {latest.version} of the {tname} table, the last good one "
                           f"(version {newest_before} was damaged or missing)")
    broken = [f for f in latest.fragments if _missing(tdir, f)]
    if not broken and any(d.kind == FileKind.TABLE.value for d in damage):
        broken = _unreadable_fragments(root, tname, latest)
    if not broken:
        return True
    rows_dropping = latest.rows - sum(f.rows for f in broken)
    best: Manifest | None = None  # the older intact version holding the most rows (the newest on a tie)
    for v in sorted(tv.readable, reverse=True):
        m = tv.readable[v]
        if v < latest.version and not any(_missing(tdir, f) for f in m.fragments) \
                and m.rows > (best.rows if best else rows_dropping):
            best = m
    t = lancedb.connect(str(root)).open_table(tname)
    role = table_role(tname)
    if best is not None:
        t.restore(best.version)
        rep.restored_versions[tname] = best.version
        lost = max(0, latest.rows - best.rows)
        rep.actions.append(f"restored version {best.version} of the {tname} table, the last good one "
                           f"({best.rows} {role.rows_are})")
    else:
        _drop_fragments(tdir, t, broken)
        lost = latest.rows - rows_dropping
        rep.actions.append(f"removed {len(broken)} damaged fragment(s) from the {tname} table "
                           f"({lost} {role.rows_are})")
    if lost:
        rep.rows_lost[tname] = rep.rows_lost.get(tname, 0) + lost
    _set_aside_broken_versions(tdir, tname, rep, aside)
    return True


def _set_aside_broken_versions(tdir: Path, tname: str, rep: RepairReport, aside: _Aside) -> Any:
    """Older versions whose data files are gone can never be read again: set their manifests
    aside so that nothing tries to restore them. Returns the versions left."""
    tv = read_versions(tdir)
    latest = tv.latest
    for v, m in sorted(tv.readable.items()):
        if latest is not None and v != latest.version and any(_missing(tdir, f) for f in m.fragments):
            if aside(f"{tdir.name}/_versions/{m.path}"):
                rep.actions.append(f"set aside version {v} of the {tname} table (its files are damaged)")
    return read_versions(tdir)


def _unreadable_fragments(root: Path, tname: str, latest: Manifest) -> list[FragmentRef]:
    """Fragments of the latest version that fail to read (each read alone, in a memory-limited
    child process: ``lance_probe``)."""
    from oculi.store.lance_probe import probe_tables

    bad = set(probe_tables(root, [tname], fragments=True)[tname].get("bad_fragments", []))
    return [f for f in latest.fragments if f.id in bad]


_EMPTY_ROARING = (12346).to_bytes(4, "little") + (0).to_bytes(4, "little")


def _drop_fragments(tdir: Path, t: Any, frags: list[FragmentRef]) -> None:
    """Delete whole fragments from the latest version (by row address; Lance removes a fragment
    whose rows are all deleted without reading its data). A fragment whose deletion file is
    gone gets an empty placeholder first, because Lance merges the new deletions into it."""
    placeholders = []
    for f in frags:
        if f.deletion_file and not (tdir / f.deletion_file).exists():
            p = tdir / f.deletion_file
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.suffix == ".bin":
                p.write_bytes(_EMPTY_ROARING)
            else:
                schema = pa.schema([pa.field("row_id", pa.uint32(), nullable=False)])
                with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
                    w.write_table(pa.table({"row_id": pa.array([], pa.uint32())}, schema=schema))
            placeholders.append(p)
    where = " OR ".join(f"(_rowaddr >= {f.id << 32} AND _rowaddr < {(f.id + 1) << 32})" for f in frags)
    try:
        t.delete(where)
    finally:
        for p in placeholders:
            try:
                p.unlink()
            except OSError:
                pass


def _rebuild_meta(root: Path, name: str) -> None:
    """A new collection.json from what the tables say (vector sizes, models, creation time) and
    the vector spaces the newest item records (``store.base.VECTOR_MODEL_KEYS``): a collection of
    a brought embedder's vectors keeps refusing another embedder's after the repair."""
    import json

    import lancedb

    from oculi.store.base import STORE_SCHEMA_VERSION
    from oculi.store.lance import write_json_atomic

    meta: dict[str, Any] = {"name": name, "schema_version": STORE_SCHEMA_VERSION, "store": "lance", "models": {}}
    db = lancedb.connect(str(root))
    tdirs = table_dirs(root)
    times = [m.timestamp for td in tdirs.values() for m in read_versions(td).readable.values() if m.timestamp]
    meta["created_at"] = min(times) if times else time.time()
    meta["updated_at"] = max(times) if times else time.time()
    if "items" in tdirs:
        try:
            t = db.open_table("items")
            schema = t.schema
            meta["text_dim"] = schema.field("text_vec").type.list_size
            meta["image_dim"] = schema.field("image_vec").type.list_size
            models = _newest_item_models(t)
            if models is not None:
                meta["models"] = {k: v for k, v in models.items() if k not in VECTOR_MODEL_KEYS.values()}
                spaces = spaces_from_item_models(models, {"image": meta["image_dim"], "text": meta["text_dim"]})
                if spaces:
                    meta["vector_spaces"] = spaces
        except Exception:  # noqa: BLE001 - an unreadable items table leaves dims to the next index run
            log.debug("reading the items table for collection.json failed", exc_info=True)
    write_json_atomic(root / META_FILE, meta)


def _newest_item_models(table: Any) -> dict[str, Any] | None:
    """``Observation.models`` of the item indexed last (every item of a collection is in one vector
    space; after a re-index with another model, the last written is in the new one)."""
    import json

    from oculi.store.lance import sql_str

    arrow = table.search().select(["id", "indexed_at"]).limit(None).to_arrow()
    if arrow.num_rows == 0:
        return None
    when = arrow.column("indexed_at").to_pylist()
    newest = max(range(len(when)), key=lambda i: when[i] if when[i] is not None else float("-inf"))
    rid = arrow.column("id")[newest].as_py()
    rows = table.search().where(f"id = {sql_str(rid)}").select(["observation"]).limit(1).to_arrow()
    raw = rows.column("observation")[0].as_py() if rows.num_rows else None
    return dict(json.loads(raw).get("models") or {}) if raw else None


def _rebuild_damaged_indexes(coll: Any, before: Any, rep: RepairReport) -> None:
    """Drop and rebuild the indexes whose files were damaged or which fail a query."""
    tables = {d.table for d in before.damage if d.kind in (FileKind.INDEX.value, FileKind.TABLE.value) and d.table}
    tables |= set(rep.restored_versions) | set(rep.rows_lost)
    for tname in sorted(tables):
        tdir = coll.path / f"{tname}{TABLE_SUFFIX}"
        tv = read_versions(tdir, newest_only=True)
        latest = tv.latest
        if latest is None:
            continue
        bad = {ix.name for ix in latest.indices
               if any(not (tdir / ix.directory / f).exists() for f in ix.files)
               or not (tdir / ix.directory).is_dir()}
        if any(d.kind == FileKind.TABLE.value and d.table == tname for d in before.damage):
            bad |= _failing_indexes(coll, tname)  # no file was identified: ask each index
        if bad:
            rep.rebuilt_indexes.extend(coll.rebuild_indexes({tname}, only=bad, reason="repair"))
            rep.actions.append(f"rebuilt the {', '.join(sorted(bad))} index(es) of the {tname} table")


def _failing_indexes(coll: Any, tname: str) -> set[str]:
    from oculi.store.lance_probe import probe_tables

    if not (coll.path / f"{tname}{TABLE_SUFFIX}").is_dir():
        return set()
    return set(probe_tables(coll.path, [tname]).get(tname, {}).get("bad_indexes", []))


def _rederive(coll: Any, rep: RepairReport, touched: set[str]) -> None:
    """Rebuild lost file records from the items; list the sources of lost items."""
    from oculi.store.base import FileRecord

    if coll._table("items") is None and coll._table("files") is None:
        return
    states = coll.file_states()
    if "items" in rep.restored_versions and "files" not in touched and states:
        # an older version can hold items deleted since (the old content of changed files); in a
        # collection kept by indexing every item has a file row, so those are the ones without
        n = coll.delete_orphan_items()
        if n:
            rep.actions.append(f"removed {n} item(s) that the restored version still held but no file points to "
                               "any more (deleted after that version)")
    ids = coll.item_ids()
    if "files" in touched:
        have = {r.id for r in states.values()}
        rows = [r for batch in coll.iter_items(["id", "path", "file_size"]) for r in batch if r["id"] not in have]
        if rows:
            coll.upsert_files([FileRecord(r["path"], r["id"], int(r["file_size"] or 0), 0, time.time()) for r in rows])
            rep.actions.append(f"rebuilt {len(rows)} file record(s) from the items (the next index run re-hashes "
                               "those files)")
            states = coll.file_states()
    dangling = {p: r for p, r in states.items() if r.id not in ids}
    if not dangling:
        if rep.rows_lost.get("items"):
            rep.lost_unknown = rep.rows_lost["items"]
        return
    gone = sorted(p for p in dangling if not os.path.exists(p))
    rep.reindex_paths = sorted(p for p in dangling if p not in set(gone))
    if gone:
        rep.lost_paths = gone
        coll.delete_files(gone)
        rep.actions.append(f"forgot {len(gone)} file record(s) whose items were lost and whose files are gone")
    lost_items = rep.rows_lost.get("items", 0)
    known = len({r.id for r in dangling.values()})
    if lost_items > known:
        rep.lost_unknown = lost_items - known


def _write_fresh_record(root: Path) -> None:
    import lancedb

    rec = IntegrityRecord()
    versions: dict[str, tuple[int, int]] = {}
    db = lancedb.connect(str(root))
    for tname in table_dirs(root):
        try:
            t = db.open_table(tname)
            versions[tname] = (int(t.version), int(t.count_rows()))
        except Exception:  # noqa: BLE001 - the final check reports it
            log.debug("open %s for the record failed", tname, exc_info=True)
    record_tables(root, rec, versions)
    for tname, (ver, _rows) in versions.items():
        rec.tables[tname]["fallback_version"] = ver
    rec.save(root / RECORD_FILE)
