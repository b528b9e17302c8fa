"""Store search latency: PostgreSQL + pgvector against the embedded LanceDB store (issue 12).

Both stores are driven through the same ``Collection`` protocol, the way every task reaches
them. Items are synthetic but shaped like real ones: 384-d text vectors drawn around 2,000
cluster centres (documents of one subject embed close together; uniform random vectors are the
worst case for every ANN index and unlike real embeddings), 1280-d image vectors, the usual
metadata. 1% of the items have the object ``cat``; ``time`` is spread uniformly.

For each store: insert all items (``add_items`` in batches of 5,000), ``optimize(force_ann=True)``
(Lance: IVF-HNSW-SQ on both vectors; PostgreSQL: HNSW m=16 ef_construction=64 on both), then
after 20 warm-up queries time 200 nearest-neighbour queries (k=10) on the text vector

- with no filter,
- with a broad filter (``time`` in the later half: 50% of the items),
- with a selective filter (``objects has cat``: 1%),

and measure recall@10 against the exact answer (NumPy over the same vectors, same filter).
PostgreSQL runs from the ``pgserver`` wheel (PostgreSQL 16, pgvector 0.6.2, default settings:
128 MB shared_buffers) on this machine; the client is this process over a Unix socket.

Run: ``.venv/bin/python benchmarks/bench_store.py [--n 100000] [--stores lance,pg]``
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TD, ID = 384, 1280
K = 10
BATCH = 5_000


def unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def make_vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(2000, TD)))
    text = unit(centres[rng.integers(0, len(centres), n)] + 0.35 * unit(rng.normal(size=(n, TD))))
    return text, centres


def items(start: int, stop: int, text: np.ndarray, rng: np.random.Generator):
    from oculi.store import ItemRecord, item_id

    out = []
    for i in range(start, stop):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        img = rng.normal(size=ID).astype(np.float32)
        out.append(ItemRecord(
            id=item_id(sha), sha256=sha, path=f"/photos/{i // 1000}/img{i}.jpg", name=f"img{i}.jpg", width=640,
            height=480, text_vec=text[i], image_vec=img / np.linalg.norm(img), time=1_600_000_000.0 + i,
            objects=("cat",) if i % 100 == 0 else ("cup",), labels=("tabby",) if i % 100 == 0 else ("espresso",),
            caption=f"photo {i}", doc=f"photo {i} {'cat' if i % 100 == 0 else 'cup'}",
        ))
    return out


def run_store(kind: str, url: str, text: np.ndarray, queries: np.ndarray, n: int) -> list[dict]:
    from oculi.store import Condition, Filter, Op, open_store

    store = open_store(url=url)
    c = store.create_collection("bench")
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    with c.writer(wait=True):
        for s in range(0, n, BATCH):
            c.add_items(items(s, min(n, s + BATCH), text, rng))
            print(f"  {kind}: {min(n, s + BATCH)}/{n} inserted", file=sys.stderr, flush=True)
    t_insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    with c.writer(wait=True):
        c.optimize(force_ann=True)
    t_index = time.perf_counter() - t0
    print(f"  {kind}: insert {t_insert:.0f} s, index {t_index:.0f} s", file=sys.stderr, flush=True)
    from oculi.store import item_id as iid

    half = 1_600_000_000.0 + n // 2
    cases = [
        ("no filter", None, np.ones(n, bool)),
        ("time in later half (50%)", Filter((Condition("time", Op.GE, half),)), np.arange(n) >= n // 2),
        ("objects has cat (1%)", Filter((Condition("objects", Op.HAS, "cat"),)), np.arange(n) % 100 == 0),
    ]
    all_ids = [iid(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]
    rows = []
    for name, f, mask in cases:
        for q in queries[:20]:
            c.vector_search(q, column="text_vec", k=K, filter=f, columns=["id"])
        lat, recall, short = [], [], 0
        cand = np.flatnonzero(mask)
        for q in queries[20:]:
            t0 = time.perf_counter()
            hits = c.vector_search(q, column="text_vec", k=K, filter=f, columns=["id"])
            lat.append((time.perf_counter() - t0) * 1000)
            truth = cand[np.argsort(-(text[cand] @ q))[:K]]
            want = {all_ids[i] for i in truth}
            recall.append(len(want & {h.id for h in hits}) / K)
            short += len(hits) < K
        lat.sort()
        rows.append({
            "store": kind, "case": name, "p50": statistics.median(lat), "p95": lat[int(0.95 * len(lat)) - 1],
            "recall": float(np.mean(recall)), "short": short, "insert_s": t_insert, "index_s": t_index,
            "bytes": c.info().bytes_on_disk,
        })
        print(f"  {kind} {name}: p95 {rows[-1]['p95']:.1f} ms recall {rows[-1]['recall']:.3f}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--stores", default="lance,pg")
    args = ap.parse_args()
    text, centres = make_vectors(args.n)
    rng = np.random.default_rng(7)
    queries = unit(centres[rng.integers(0, len(centres), args.queries + 20)] + 0.35 * unit(rng.normal(size=(args.queries + 20, TD))))
    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-store-"))
    tmp.chmod(0o755)
    rows: list[dict] = []
    srv = None
    try:
        for kind in args.stores.split(","):
            if kind == "lance":
                rows += run_store("embedded (LanceDB)", f"lance://{tmp / 'lance'}", text, queries, args.n)
            elif kind == "pg":
                from tests.pgutil import start_server

                srv, url = start_server(tmp / "pg")
                rows += run_store("PostgreSQL + pgvector", url, text, queries, args.n)
    finally:
        if srv is not None:
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nStore search, {args.n:,} items, k={K}, text vector (384-d); machine: {machine()}\n")
    print("| store | filter | p50 ms | p95 ms | recall@10 | short answers | insert s | index build s | items table MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['store']} | {r['case']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['recall']:.3f} | {r['short']} | "
              f"{r['insert_s']:.0f} | {r['index_s']:.0f} | {r['bytes'] / 1e6:.0f} |")


if __name__ == "__main__":
    main()
