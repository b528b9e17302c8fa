"""Integrity of the embedded LanceDB store: record what each write added, check, explain.

Every table of a collection (``<table>.lance/``, whatever its name: the checks are the same for
``items``, ``files`` and any table added later) is checked the same way:

1. every version manifest (``_versions/*.manifest``) is parsed (``lance_manifest``);
2. every file the integrity record vouches for, and every file a readable version references,
   is present, of the recorded size and SHA-256 (or, when it was never recorded, ends with the
   end marker of its format);
3. the latest version opens, every column of every row is read, and each index answers a query.

Damage is reported with what it affects (``Damage.affects``): which rows of which table, which
index, which version, and whether the current data is concerned at all. Uploaded originals under
``blobs/`` are content-addressed (the file name is the SHA-256 of its bytes) and are verified
against their names.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable

from oculi.store.integrity import (
    QUARANTINE_DIR,
    RECORD_FILE,
    CollectionCheck,
    Damage,
    FileEntry,
    FileKind,
    IntegrityRecord,
    RecordError,
    find_leftovers,
    hash_file,
    is_leftover_temp,
    table_role,
)
from oculi.store.lance_manifest import Manifest, TableVersions, read_versions

log = logging.getLogger(__name__)

TABLE_SUFFIX = ".lance"
META_FILE = "collection.json"
BLOBS_DIR = "blobs"
_TAIL_MAGIC = {".lance": b"LANC", ".idx": b"LANC", ".arrow": b"ARROW1"}


def table_dirs(root: Path) -> dict[str, Path]:
    """``{table name: directory}`` of every Lance table in a collection directory."""
    if not root.is_dir():
        return {}
    return {p.name[: -len(TABLE_SUFFIX)]: p for p in sorted(root.iterdir())
            if p.is_dir() and p.name.endswith(TABLE_SUFFIX) and not p.name.startswith(".")}


def classify(rel_in_table: str) -> FileKind | None:
    """The kind of a file by its place in a Lance table directory (``None``: not tracked)."""
    top, _, rest = rel_in_table.partition("/")
    if not rest:
        return None
    if top == "_versions":
        return FileKind.MANIFEST if rest.endswith(".manifest") and "/" not in rest else None
    return {"data": FileKind.DATA, "_deletions": FileKind.DELETION, "_indices": FileKind.INDEX,
            "_transactions": FileKind.TRANSACTION}.get(top)


def table_files(table_dir: Path) -> Iterable[str]:
    """Relative paths of the tracked files of one table (no hints, no temporary files)."""
    for sub in ("_versions", "data", "_deletions", "_transactions", "_indices"):
        d = table_dir / sub
        if not d.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(d):
            rel_dir = os.path.relpath(dirpath, table_dir)
            for f in files:
                if is_leftover_temp(f):
                    continue
                rel = f"{rel_dir}/{f}"
                if classify(rel) is not None:
                    yield rel


def record_tables(root: Path, record: IntegrityRecord, versions: dict[str, tuple[int, int]]) -> dict[str, FileEntry]:
    """Add every not-yet-recorded file of the collection's tables to ``record`` (hashing it) and
    set each table's vouched version and rows. Returns the entries added.

    ``versions``: ``{table: (latest version, rows)}`` just committed.
    """
    added: dict[str, FileEntry] = {}
    for tname, tdir in table_dirs(root).items():
        ver = versions.get(tname, (None, None))[0]
        for rel_in in table_files(tdir):
            rel = f"{tdir.name}/{rel_in}"
            if rel in record.files:
                continue
            p = tdir / rel_in
            try:
                size = p.stat().st_size
                digest = hash_file(p)
            except FileNotFoundError:
                continue  # removed meanwhile (a cleanup)
            kind = classify(rel_in)
            record.files[rel] = added[rel] = FileEntry(size, digest, str(kind), tname, ver)
    for tname, (ver, rows) in versions.items():
        state = record.tables.setdefault(tname, {})
        state["version"] = int(ver)
        state["rows"] = int(rows)
    return added


def forget_missing(root: Path, record: IntegrityRecord, before: set[str]) -> int:
    """Drop from ``record`` the files of ``before`` that are gone (removed by a cleanup)."""
    gone = [rel for rel in before if rel in record.files and not (root / rel).exists()]
    for rel in gone:
        del record.files[rel]
    return len(gone)


#: Slack between computing the cleanup window and Lance applying it (the removal runs right
#: after, with nothing left to compact).
RESTORE_MARGIN = timedelta(seconds=2)


def cleanup_window(versions: list[dict[str, Any]], keep_version: int | None, minimum: timedelta) -> timedelta:
    """How old a version must be for ``optimize`` to remove it so that ``keep_version`` (the
    restore point the record vouches for) and everything newer survive."""
    if keep_version is None:
        return minimum
    for v in versions:
        if int(v["version"]) == int(keep_version):
            ts = v["timestamp"]
            age = time.time() - (ts.timestamp() if hasattr(ts, "timestamp") else float(ts))
            return max(minimum, timedelta(seconds=max(0.0, age)) + RESTORE_MARGIN)
    return minimum


# --- describing what a file's damage affects ----------------------------------------------------

def _span(vs: list[int]) -> str:
    if not vs:
        return "no version"
    return f"version {vs[0]}" if len(vs) == 1 else f"versions {vs[0]}–{vs[-1]}"


def _affects(tname: str, rel_in: str, kind: FileKind, tv: TableVersions,
             refs: list[int]) -> tuple[str, bool, int | None]:
    """``(what it affects, whether the latest readable version is affected, rows)``."""
    latest = tv.latest
    on_latest = latest is not None and latest.version in refs
    role = table_role(tname)
    span = _span(refs)
    if kind is FileKind.TRANSACTION:
        return f"the log of how {span} of the {tname} table was written (not needed to read it; nothing lost)", False, None
    if kind is FileKind.INDEX:
        names = sorted({i.name for v in refs for i in tv.readable[v].indices_using(rel_in)})
        ix = ", ".join(names) or "an index"
        where = "the current" if on_latest else "an older"
        return f"the {ix} index of {where} {tname} table (repair rebuilds it; nothing lost)", on_latest, None
    if kind in (FileKind.DATA, FileKind.DELETION):
        m = latest if on_latest else (tv.readable[refs[-1]] if refs else None)
        frags = m.fragments_using(rel_in) if m is not None else []
        rows = sum(f.physical_rows for f in frags) if frags else None
        what = "which rows were deleted from " if kind is FileKind.DELETION else ""
        n = f"{rows} " if rows is not None else ""
        frag_ids = ", ".join(str(f.id) for f in frags) or "?"
        if on_latest:
            return (f"{what}{n}{role.rows_are} in fragment {frag_ids} of the {tname} table ({span}, including the "
                    f"latest); lost rows are {role.rederive}"), True, rows
        return f"only {span} of the {tname} table, not the current data", False, rows
    return f"{span} of the {tname} table", on_latest, None


def _manifest_damage(tname: str, tdir: Path, tv: TableVersions) -> list[Damage]:
    out = []
    newest = tv.newest_version
    for fname, (v, why) in sorted(tv.unreadable.items()):
        rel = f"{tdir.name}/_versions/{fname}"
        problem = "empty" if "too short" in why and (tdir / "_versions" / fname).stat().st_size == 0 else (
            "truncated or garbled")
        if v == newest:
            good = [x for x in tv.readable if x < (v or 0)]
            back = f"repair goes back to version {max(good)}, the last good one" if good else "no older version is left"
            affects = f"version {v}, the latest: the {tname} table cannot be opened ({back})"
            out.append(Damage(rel, FileKind.MANIFEST.value, problem, affects, tname, (v,) if v else (), True))
        else:
            out.append(Damage(rel, FileKind.MANIFEST.value, problem,
                              f"version {v} of the {tname} table (an older version; the current data is not affected)",
                              tname, (v,) if v else (), False))
    return out


def _tail_ok(path: Path) -> bool:
    magic = _TAIL_MAGIC.get(path.suffix)
    if magic is None:
        return True
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < len(magic) + 8:
                return False
            f.seek(size - len(magic))
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _references(tdir: Path, tv: TableVersions) -> dict[str, list[int]]:
    """``{relative path in the table: [versions referencing it]}``."""
    refs: dict[str, set[int]] = {}
    for v, m in tv.readable.items():
        for frag in m.fragments:
            for f in frag.files:
                refs.setdefault(f, set()).add(v)
        for ix in m.indices:
            names = ix.files or tuple(sorted(p.name for p in (tdir / ix.directory).glob("*") if p.is_file()))
            for f in names:
                refs.setdefault(f"{ix.directory}/{f}", set()).add(v)
        if m.transaction_file:
            refs.setdefault(m.transaction_file, set()).add(v)
    return {k: sorted(v) for k, v in refs.items()}


# --- the check ---------------------------------------------------------------------------------

def quick_verify(root: Path, record: IntegrityRecord | None) -> list[Damage]:
    """What the latest version of each table needs, checked cheaply: its manifest parses, and
    each file it references exists with the recorded size (or, unrecorded, has its format's end
    marker). No hashing, no scan: run before every write session and by ``collections`` list.
    """
    out: list[Damage] = []
    files = record.files if record else {}
    for tname, tdir in table_dirs(root).items():
        tv = read_versions(tdir, newest_only=True)
        out.extend(d for d in _manifest_damage(tname, tdir, tv) if d.latest)
        latest = tv.latest
        if latest is None:
            continue
        vouched = ((record.tables.get(tname) or {}).get("version") if record else None)
        if vouched is not None and latest.version < int(vouched):
            out.append(Damage(f"{tdir.name}/_versions", FileKind.MANIFEST.value, f"version {vouched} is missing",
                              f"the latest version of the {tname} table; it opens at version {latest.version} "
                              "instead (repair goes back to it)", tname, (int(vouched),), True))
            continue
        refs = _references(tdir, TableVersions({latest.version: latest}))
        sink = CollectionCheck(name=root.name, path=str(root))
        for rel_in in sorted(refs):
            kind = classify(rel_in)
            if kind is None or kind is FileKind.TRANSACTION:
                continue
            problem = _file_problem(tdir / rel_in, files.get(f"{tdir.name}/{rel_in}"), False, sink)
            if problem is not None:
                affects, _, rows = _affects(tname, rel_in, kind, TableVersions({latest.version: latest}), [latest.version])
                out.append(Damage(f"{tdir.name}/{rel_in}", kind.value, problem, affects, tname, (latest.version,), True,
                                  rows))
    return out


def read_meta(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(collection.json contents, problem)``: exactly one of them is ``None``."""
    try:
        doc = json.loads((root / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, ValueError):
        return None, "unreadable (not valid JSON)"
    if not isinstance(doc, dict) or "schema_version" not in doc:
        return None, "unreadable (not a collection description)"
    return doc, None


def check_collection(root: Path, name: str, *, hashes: bool = True, scan: bool = True,
                     blobs: bool = True) -> CollectionCheck:
    """Check one collection directory. ``hashes``/``scan``/``blobs`` off make a quick check
    (sizes, manifests and opening only) for listings.

    Never raises for damage: everything found is in the returned ``CollectionCheck``.
    """
    t0 = time.monotonic()
    res = CollectionCheck(name=name, path=str(root))
    meta, problem = read_meta(root)
    if problem:
        res.damage.append(Damage(META_FILE, FileKind.META.value, problem,
                                 "the collection's settings (vector sizes, models, dates); repair rebuilds them "
                                 "from the tables", None, (), True))
    record: IntegrityRecord | None = None
    try:
        record = IntegrityRecord.load(root / RECORD_FILE)
        if record is None and meta and meta.get("integrity"):
            res.damage.append(Damage(RECORD_FILE, FileKind.RECORD.value, "missing",
                                     "the checksums of the stored files (silent changes cannot be detected until "
                                     "repair records them again); the data itself may be intact", None, (), False))
        elif record is None:
            res.notes.append("no checksums recorded yet (written by an older oculi): verified by reading only; "
                             "the next write records them")
    except RecordError as e:
        res.damage.append(Damage(RECORD_FILE, FileKind.RECORD.value, str(e),
                                 "the checksums of the stored files (silent changes cannot be detected until repair "
                                 "records them again); the data itself may be intact", None, (), False))
    tdirs = table_dirs(root)
    expected = {"files"} | ({"items"} if meta and "text_dim" in meta else set())
    if record:
        expected |= {t for t, st in record.tables.items() if int(st.get("rows") or 0) > 0}
    for tname in sorted(expected - set(tdirs)):
        st = (record.tables.get(tname) if record else None) or {}
        rows = st.get("rows")
        res.damage.append(Damage(f"{tname}{TABLE_SUFFIX}", FileKind.TABLE.value, "missing",
                                 f"the whole {tname} table ({rows if rows is not None else 'all'} "
                                 f"{table_role(tname).rows_are}); lost rows are {table_role(tname).rederive}",
                                 tname, (), True, rows))
    scans: dict[str, tuple[Path, Manifest]] = {}
    verified: set[str] = set()
    for tname, tdir in tdirs.items():
        _check_table(root, tname, tdir, record, res, scans, verified, hashes=hashes, scan=scan)
    if scans:
        _scan_tables(root, scans, res, verified)
    if blobs:
        _check_blobs(root, res)
    left = find_leftovers(root)
    if left:
        res.notes.append(f"{len(left)} temporary file(s) left by an interrupted write (removed by the next write "
                         "or by repair)")
    qdir = root / QUARANTINE_DIR
    if qdir.is_dir() and any(qdir.iterdir()):
        res.notes.append(f"damaged files set aside by an earlier repair are kept in {qdir} (delete them once you "
                         "no longer need them)")
    if res.ok and scan:
        _check_consistency(root, res)
    res.elapsed_s = time.monotonic() - t0
    return res


def _check_table(root: Path, tname: str, tdir: Path, record: IntegrityRecord | None, res: CollectionCheck,
                 scans: dict[str, tuple[Path, Manifest]], verified: set[str], *, hashes: bool, scan: bool) -> None:
    tv = read_versions(tdir)
    damaged_before = len(res.damage)
    res.damage.extend(_manifest_damage(tname, tdir, tv))
    latest = tv.latest
    state = (record.tables.get(tname) if record else None) or {}
    info: dict[str, Any] = {"version": latest.version if latest else None, "rows": latest.rows if latest else None,
                            "versions": sorted(tv.readable), "recorded_version": state.get("version"),
                            "fallback_version": state.get("fallback_version")}
    res.tables[tname] = info
    if tv.newest_version is None:
        has_data = any((tdir / "data").glob("*")) if (tdir / "data").is_dir() else False
        if has_data or state.get("rows"):
            res.damage.append(Damage(tdir.name, FileKind.TABLE.value, "has no version left",
                                     f"the whole {tname} table; lost rows are {table_role(tname).rederive}",
                                     tname, (), True, state.get("rows")))
        return
    refs = _references(tdir, tv)
    checked: set[str] = set()  # files verified against their recorded checksum
    recorded = {rel[len(tdir.name) + 1:]: e for rel, e in (record.files.items() if record else ())
                if rel.startswith(tdir.name + "/")}
    for rel_in in sorted(set(refs) | set(recorded)):
        kind = classify(rel_in)
        if kind is None or kind is FileKind.MANIFEST and rel_in.rsplit("/", 1)[-1] in tv.unreadable:
            continue
        p = tdir / rel_in
        entry = recorded.get(rel_in)
        problem = _file_problem(p, entry, hashes, res)
        if problem is None:
            if entry is not None:
                checked.add(rel_in)
            continue
        vs = refs.get(rel_in, [])
        rel = f"{tdir.name}/{rel_in}"
        if kind is FileKind.MANIFEST:
            mv = entry.version if entry is not None else None
            if mv is not None and mv == state.get("version") and (latest is None or latest.version < mv):
                res.damage.append(Damage(rel, kind.value, problem,
                                         f"version {mv}, the latest recorded: the {tname} table opens at version "
                                         f"{latest.version if latest else '-'} instead (repair goes back to it)",
                                         tname, (mv,), True))
            elif mv is not None and mv == state.get("fallback_version"):
                res.damage.append(Damage(rel, kind.value, problem,
                                         f"version {mv} of the {tname} table, the restore point kept for repairs "
                                         "(the current data is not affected; repair records a new one)",
                                         tname, (mv,), False))
            elif problem != "missing":
                res.damage.append(Damage(rel, kind.value, problem, f"version {mv} of the {tname} table (an older "
                                         "version; the current data is not affected)", tname, (), False))
            continue
        if not vs:
            if problem != "missing":  # a recorded file no version uses any more: harmless
                res.notes.append(f"{rel} ({kind.value}) is {problem}, but no version of the {tname} table uses it")
            continue
        affects, on_latest, rows = _affects(tname, rel_in, kind, tv, vs)
        harmless = (kind is FileKind.TRANSACTION and problem == "missing" and entry is None) or (
            kind is FileKind.INDEX and not on_latest)
        if harmless:  # not needed to read the current data; an old version's index is rebuilt if ever restored
            res.notes.append(f"{rel} ({kind.value}) is {problem}: {affects}")
            continue
        res.damage.append(Damage(rel, kind.value, problem, affects, tname, tuple(vs), on_latest, rows))
    if record is not None and latest is not None and state.get("version") is not None \
            and latest.version > int(state["version"]):
        res.notes.append(f"{tname}: version {latest.version} was written after the last checksummed write "
                         f"(version {state['version']}); it is verified by reading only")
    if scan and latest is not None and len(res.damage) == damaged_before:
        scans[tname] = (tdir, latest)  # damage already found explains any failure; reading it risks a blow-up
        needed = {f for f, vs in refs.items() if latest.version in vs and classify(f) is not FileKind.TRANSACTION}
        if hashes and needed <= checked:
            verified.add(tname)


def _file_problem(p: Path, entry: FileEntry | None, hashes: bool, res: CollectionCheck) -> str | None:
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    res.files_checked += 1
    if entry is not None:
        if size == 0 and entry.size:
            return "empty (zero length)"
        if size < entry.size:
            return f"truncated ({size} of {entry.size} bytes)"
        if size != entry.size:
            return f"changed size ({size} bytes, {entry.size} written)"
        if not _tail_ok(p):
            return "garbled (its end marker is gone)"
        if hashes:
            res.bytes_checked += size
            try:
                if hash_file(p) != entry.sha256:
                    return "changed since it was written (checksum mismatch)"
            except OSError as e:
                return f"unreadable ({e.strerror or e})"
        return None
    if size == 0:
        return "empty (zero length)"
    if not _tail_ok(p):
        return "truncated or garbled (no end marker)"
    return None


def _scan_tables(root: Path, todo: dict[str, tuple[Path, Manifest]], res: CollectionCheck,
                 verified: set[str]) -> None:
    """Open the latest version of each table, read every row and query every index; failures
    become damage. Tables whose every file was just verified byte for byte against the record
    are read in this process (they are exactly what Lance wrote); the others in a
    memory-limited child (``lance_probe``), since a garbled file can make Lance allocate
    without bound."""
    from oculi.store.lance_probe import probe_one, probe_tables

    results = {t: probe_one(root, t) for t in sorted(todo) if t in verified}
    results.update(probe_tables(root, sorted(t for t in todo if t not in verified)))
    for tname, r in results.items():
        tdir, latest = todo[tname]
        res.tables[tname]["rows_read"] = r.get("rows_read", 0)
        if r.get("ok"):
            continue
        if r.get("step") == "index" and r.get("bad_indexes"):
            for name in r["bad_indexes"]:
                res.damage.append(Damage(tdir.name, FileKind.INDEX.value, f"fails a query ({r.get('cause')})",
                                         f"the {name} index of the current {tname} table (repair rebuilds it; "
                                         "nothing lost)", tname, (latest.version,), True))
            continue
        what = {"open": "cannot be opened", "scan": "cannot be read to the end"}.get(r.get("step") or "", "fails")
        res.damage.append(Damage(tdir.name, FileKind.TABLE.value, f"{what} ({r.get('cause')})",
                                 f"the {tname} table ({latest.rows} {table_role(tname).rows_are}); run repair",
                                 tname, (latest.version,), True, latest.rows))


def _check_blobs(root: Path, res: CollectionCheck) -> None:
    bdir = root / BLOBS_DIR
    if not bdir.is_dir():
        return
    for dirpath, _dirs, files in os.walk(bdir):
        for f in files:
            if is_leftover_temp(f):
                continue
            p = Path(dirpath) / f
            stem = f.split(".", 1)[0]
            if len(stem) != 64 or any(c not in "0123456789abcdef" for c in stem):
                continue  # not a content-addressed blob
            res.blobs_checked += 1
            try:
                res.bytes_checked += p.stat().st_size
                ok = hash_file(p) == stem
            except OSError:
                ok = False
            if not ok:
                res.damage.append(Damage(
                    os.path.relpath(p, root), FileKind.BLOB.value, "changed since it was uploaded (checksum mismatch)",
                    "the original of an uploaded image; its item (caption, vectors, thumbnail) is intact, the "
                    "original bytes cannot be re-derived", None, (), False))


def _check_consistency(root: Path, res: CollectionCheck) -> None:
    """File records that point at items the items table lacks (re-indexing restores them)."""
    if "files" not in res.tables or "items" not in res.tables:
        return
    try:
        import lancedb

        db = lancedb.connect(str(root))
        ids = set(db.open_table("items").search().select(["id"]).limit(None).to_arrow().column("id").to_pylist())
        fids = db.open_table("files").search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
    except Exception:  # noqa: BLE001 - already checked above
        log.debug("consistency check failed", exc_info=True)
        return
    dangling = sum(1 for i in fids if i not in ids)
    if dangling:
        res.notes.append(f"{dangling} file record(s) point to items that are not stored (an interrupted or repaired "
                         "index run); `oculi index` on the same folders, or repair, re-derives them")
