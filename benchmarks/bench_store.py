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

At 1M the HNSW build of the 1280-d image vector is what does not fit a short run on two cores
(~3.3x the text vector's cost): ``--ann text_vec`` builds the ANN index on the text vector only
(the one searched here) in both stores; the image vectors are still stored. Each store's run
reports its insert rate, index build time, the peak memory while it ran (this process's RSS; for
PostgreSQL also the server's processes, proportional set size so shared memory counts once) and
the load average (the machine is shared: the ratios between the stores of one run are the
steadier figures). ``--json PATH`` keeps the rows.

Run: ``.venv/bin/python benchmarks/bench_store.py [--n 100000] [--stores lance,pg] [--ann text_vec]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
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


def exact_top_k(text: np.ndarray, queries: np.ndarray, mask: np.ndarray, k: int = K, chunk: int = 100_000) -> np.ndarray:
    """Row numbers of the exact top ``k`` of every query among the rows ``mask`` keeps, ``[Q, k]``
    (in chunks of rows, so 1M x 384 is never copied whole)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for s in range(0, len(text), chunk):
        rows = s + np.flatnonzero(mask[s:s + chunk])
        if not len(rows):
            continue
        sc = queries @ text[rows].T  # [Q, rows]
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], 1)
        cand_i = np.concatenate([best_i, rows[part]], 1)
        top = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    return best_i


class PeakMemory:
    """Samples, once a second, this process's RSS and the summed PSS of the PostgreSQL server's
    processes (``postmaster`` and its children); keeps the peaks."""

    def __init__(self, postmaster_pid: int | None = None) -> None:
        self.pid = postmaster_pid
        self.self_rss = self.server_pss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        self.self_rss = max(self.self_rss, psutil.Process().memory_info().rss)
        if self.pid:
            try:
                pm = psutil.Process(self.pid)
                total = 0
                for p in [pm, *pm.children(recursive=True)]:
                    try:
                        total += p.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                self.server_pss = max(self.server_pss, total)
            except psutil.NoSuchProcess:
                pass

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._sample()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_store(kind: str, url: str, text: np.ndarray, queries: np.ndarray, n: int, truths: dict[str, np.ndarray],
              postmaster_pid: int | None = None) -> list[dict]:
    with PeakMemory(postmaster_pid) as mem:
        rows = _run_store(kind, url, text, queries, n, truths)
    for r in rows:
        r["peak_rss"], r["peak_server_pss"] = mem.self_rss, mem.server_pss
    print(f"  {kind}: peak RSS {mem.self_rss / 1e9:.2f} GB (this process), server {mem.server_pss / 1e9:.2f} GB",
          file=sys.stderr, flush=True)
    return rows


def filter_cases(n: int) -> list[tuple[str, object, np.ndarray]]:
    from oculi.store import Condition, Filter, Op

    half = 1_600_000_000.0 + n // 2
    return [
        ("no filter", None, np.ones(n, bool)),
        ("time in later half (50%)", Filter((Condition("time", Op.GE, half),)), np.arange(n) >= n // 2),
        ("objects has cat (1%)", Filter((Condition("objects", Op.HAS, "cat"),)), np.arange(n) % 100 == 0),
    ]


def _run_store(kind: str, url: str, text: np.ndarray, queries: np.ndarray, n: int, truths: dict[str, np.ndarray]) -> list[dict]:
    from oculi.store import open_store

    store = open_store(url=url)
    load_start = load()
    c = store.create_collection("bench")
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    with c.writer(wait=True):
        for s in range(0, n, BATCH):
            c.add_items(items(s, min(n, s + BATCH), text, rng))
            done = min(n, s + BATCH)
            if done % (10 * BATCH) == 0 or done == n:
                el = time.perf_counter() - t0
                print(f"  {kind}: {done}/{n} inserted, {el:.0f} s ({done / el:.0f} items/s), load {load()}",
                      file=sys.stderr, flush=True)
    t_insert = time.perf_counter() - t0
    load_inserted = load()
    t0 = time.perf_counter()
    with c.writer(wait=True):
        c.optimize(force_ann=True)
    t_index = time.perf_counter() - t0
    load_indexed = load()
    print(f"  {kind}: insert {t_insert:.0f} s, index {t_index:.0f} s, load {load_indexed}", file=sys.stderr, flush=True)
    from oculi.store import item_id as iid

    all_ids = [iid(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]
    size = c.info().bytes_on_disk
    rows = []
    for name, f, _mask in filter_cases(n):
        for q in queries[:20]:
            c.vector_search(q, column="text_vec", k=K, filter=f, columns=["id"])
        lat, recall, short = [], [], 0
        for q, truth in zip(queries[20:], truths[name]):
            t0 = time.perf_counter()
            hits = c.vector_search(q, column="text_vec", k=K, filter=f, columns=["id"])
            lat.append((time.perf_counter() - t0) * 1000)
            want = {all_ids[i] for i in truth}
            recall.append(len(want & {h.id for h in hits}) / K)
            short += len(hits) < K
        lat.sort()
        rows.append({
            "store": kind, "case": name, "p50": statistics.median(lat), "p95": lat[int(0.95 * len(lat)) - 1],
            "recall": float(np.mean(recall)), "short": short, "insert_s": t_insert, "index_s": t_index,
            "bytes": size, "n": n, "load": {"start": load_start, "inserted": load_inserted, "indexed": load_indexed,
                                            "searched": load()},
        })
        print(f"  {kind} {name}: p50 {rows[-1]['p50']:.1f} p95 {rows[-1]['p95']:.1f} ms recall {rows[-1]['recall']:.3f}, "
              f"load {load()}", file=sys.stderr, flush=True)
    if hasattr(store, "close"):
        store.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--stores", default="lance,pg")
    ap.add_argument("--ann", default="text_vec,image_vec",
                    help="vector columns that get an ANN index (text_vec alone at 1M: see the module doc)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  %(name)s: %(message)s")
    logging.getLogger("oculi.store").setLevel(logging.INFO)  # the index builds' settings and pgvector's notices
    ann = tuple(x for x in args.ann.split(",") if x)
    import oculi.store.lance as lance_mod
    from oculi.store import pg_store

    pg_store.ANN_COLUMNS = ann
    real_ann = lance_mod.LanceCollection._create_ann
    lance_mod.LanceCollection._create_ann = lambda self, t, col, rows: real_ann(self, t, col, rows) if col in ann else None
    t0 = time.perf_counter()
    text, centres = make_vectors(args.n)
    rng = np.random.default_rng(7)
    queries = unit(centres[rng.integers(0, len(centres), args.queries + 20)] + 0.35 * unit(rng.normal(size=(args.queries + 20, TD))))
    truths = {name: exact_top_k(text, queries[20:], mask) for name, _f, mask in filter_cases(args.n)}
    print(f"  vectors and exact answers: {time.perf_counter() - t0:.0f} s, load {load()}", file=sys.stderr, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-store-"))
    tmp.chmod(0o755)
    rows: list[dict] = []
    srv = None
    try:
        for kind in args.stores.split(","):
            if kind == "lance":
                rows += run_store("embedded (LanceDB)", f"lance://{tmp / 'lance'}", text, queries, args.n, truths)
            elif kind == "pg":
                from tests.pgutil import start_server

                srv, url = start_server(tmp / "pg")
                rows += run_store("PostgreSQL + pgvector", url, text, queries, args.n, truths, postmaster_pid=srv.get_pid())
            if args.json:
                args.json.write_text(json.dumps({"machine": machine(), "n": args.n, "ann": ann, "rows": rows}, indent=1))
    finally:
        if srv is not None:
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nStore search, {args.n:,} items, k={K}, text vector (384-d); ANN index on {', '.join(ann)}; "
          f"machine: {machine()}\n")
    print("| store | filter | p50 ms | p95 ms | recall@10 | short answers | insert items/s | index build s | "
          "on disk MB | peak RSS GB (bench / server) | load avg (insert / index / search) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['store']} | {r['case']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['recall']:.3f} | {r['short']} | "
              f"{r['n'] / r['insert_s']:,.0f} | {r['index_s']:,.0f} | {r['bytes'] / 1e6:,.0f} | "
              f"{r['peak_rss'] / 1e9:.1f} / {r['peak_server_pss'] / 1e9:.1f} | "
              f"{' / '.join(r['load'][x].split('/')[0] for x in ('inserted', 'indexed', 'searched'))} |")


if __name__ == "__main__":
    main()
