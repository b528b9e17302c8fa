"""Read a collection's tables to the end in a child process with a memory limit.

Why a child: a garbled data file can carry a garbage length that makes Lance allocate without
bound (measured: a 4 KB overwrite inside an items data file drove one scan to 19 GB before the
kernel killed it) or panic with a Rust backtrace on stderr. ``check`` and ``repair`` read damaged
tables on purpose, so they do it here: the child runs under ``RLIMIT_DATA`` (see
``memory_limit``) and a time limit, its stderr is kept out of the terminal (debug log), and a
crash is reported as "cannot be read" for the table it was reading.

The child prints one JSON line per table::

    {"table": "items", "ok": false, "step": "scan", "cause": "a file is truncated or garbled",
     "rows_read": 0, "bad_fragments": [2], "bad_indexes": ["doc_idx"]}

Usage (internal): ``python -m oculi.store.lance_probe ROOT TABLE [TABLE...] [--fragments]``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Seconds a probe may take per GB of table data (plus a fixed minute).
SECONDS_PER_GB = 120


def memory_limit() -> int:
    """Bytes of heap the child may use: a quarter of RAM, between 1 and 4 GB."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        ram = 8 << 30
    return int(min(4 << 30, max(1 << 30, ram // 4)))


def probe_tables(root: Path, tables: list[str], *, fragments: bool = False) -> dict[str, dict[str, Any]]:
    """Open, scan and query every index of ``tables`` of the collection at ``root`` in a
    memory-limited child. Returns ``{table: result}`` (see the module docstring)."""
    if not tables:
        return {}
    size = sum(f.stat().st_size for t in tables for f in (root / f"{t}.lance").rglob("*") if f.is_file())
    timeout = 60 + SECONDS_PER_GB * size / (1 << 30)
    limit = memory_limit()
    env = {**os.environ, "RUST_BACKTRACE": "0", "LANCE_LOG": "error", "LANCEDB_LOG": "error"}
    out: dict[str, dict[str, Any]] = {}
    skip: list[str] = []  # fragments already judged ("table:id"), when a crash restarts the child
    for _attempt in range(1000):
        todo = [t for t in tables if t not in out]
        if not todo:
            break
        cmd = [sys.executable, "-m", "oculi.store.lance_probe", "--memory", str(limit), str(root), *todo]
        if fragments:
            cmd += ["--fragments", ",".join(skip)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            stdout, stderr, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr, rc = "timeout", None
        if stderr.strip():
            log.debug("probe of %s: stderr:\n%s", root, stderr[-8000:])
        current, frag, partial = None, None, {}
        for line in stdout.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "start" in doc:
                current, frag = doc["start"], None
                partial = doc
            elif "fragment" in doc:
                frag = doc["fragment"]
                if "ok" in doc:
                    skip.append(f"{current}:{frag}")
                    if not doc["ok"]:
                        partial.setdefault("bad_fragments", []).append(frag)
                    frag = None
            elif "table" in doc:
                doc["bad_fragments"] = sorted(set(doc.get("bad_fragments", [])) | set(partial.get("bad_fragments", [])))
                out[doc["table"]] = doc
                current = None
        if current is None:
            continue
        why = ("reading it took too long" if rc is None else
               "reading it crashed (a garbled file made it ask for more memory than a healthy table needs)")
        if fragments and frag is not None:  # the child died reading this fragment: it is bad; go on
            skip.append(f"{current}:{frag}")
            partial.setdefault("bad_fragments", []).append(frag)
            continue
        out[current] = {"table": current, "ok": False, "step": "scan", "cause": why, "rows_read": 0,
                        "bad_fragments": sorted(set(partial.get("bad_fragments", []))), "bad_indexes": []}
    return out


def _probe_index(t: Any, ix: Any) -> None:
    col = ix.columns[0]
    kind = str(ix.index_type).upper()
    if "FTS" in kind or "INVERTED" in kind:
        t.search("oculi", query_type="fts", fts_columns=col).limit(1).select([col, "_score"]).to_arrow()
    elif "IVF" in kind or "HNSW" in kind or "PQ" in kind:
        import numpy as np

        dim = t.schema.field(col).type.list_size
        t.search(np.ones(dim, dtype=np.float32), vector_column_name=col).distance_type("cosine").limit(1) \
            .nprobes(1).select([]).to_arrow()
    else:
        t.search().where(f"{col} IS NULL").select([col]).limit(1).to_arrow()


def probe_one(root: Path, table: str, fragments: bool = False, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Open, then read every row (all of them, or fragment by fragment to find the bad ones),
    then query every index."""
    import lancedb

    from oculi.store.lance_errors import friendly_cause
    from oculi.store.lance_manifest import read_versions

    res: dict[str, Any] = {"table": table, "ok": True, "step": None, "cause": None, "rows_read": 0,
                           "bad_fragments": [], "bad_indexes": []}
    step = "open"
    try:
        t = lancedb.connect(str(root)).open_table(table)
        step = "scan"
        if not fragments:
            for batch in t.search().limit(None).to_batches(1024):
                res["rows_read"] += batch.num_rows
    except Exception as e:  # noqa: BLE001 - reported, not raised
        res.update(ok=False, step=step, cause=friendly_cause(e))
        return res
    if fragments:
        latest = read_versions(root / f"{table}.lance", newest_only=True).latest
        for f in latest.fragments if latest else ():
            if f"{table}:{f.id}" in skip:
                continue
            print(json.dumps({"fragment": f.id}), flush=True)
            try:
                res["rows_read"] += t.take_row_ids([(f.id << 32) | i for i in range(f.physical_rows)]).to_arrow().num_rows
                print(json.dumps({"fragment": f.id, "ok": True}), flush=True)
            except Exception as e:  # noqa: BLE001
                print(json.dumps({"fragment": f.id, "ok": False}), flush=True)
                res["bad_fragments"].append(f.id)
                res.update(ok=False, step="scan", cause=friendly_cause(e))
    for ix in t.list_indices():
        try:
            _probe_index(t, ix)
        except Exception as e:  # noqa: BLE001
            res["bad_indexes"].append(ix.name)
            if res["ok"]:
                res.update(ok=False, step="index", cause=friendly_cause(e))
    return res


def main(argv: list[str]) -> int:
    if argv[:1] == ["--memory"]:  # first, before Lance allocates anything
        import resource

        limit = int(argv[1])
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        argv = argv[2:]
    fragments, skip = False, set()
    if "--fragments" in argv:
        i = argv.index("--fragments")
        fragments, skip = True, {x for x in argv[i + 1].split(",") if x}
        argv = argv[:i]
    root, tables = Path(argv[0]), argv[1:]
    for table in tables:
        print(json.dumps({"start": table}), flush=True)
        print(json.dumps(probe_one(root, table, fragments, frozenset(skip))), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LANCE_LOG", "error")
    raise SystemExit(main(sys.argv[1:]))
