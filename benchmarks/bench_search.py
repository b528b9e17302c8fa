"""Search latency, index build time, disk and memory at 10k / 100k / 1M items (issue 3).

Items are synthetic but shaped like real ones: each item's text vector is the real MiniLM
embedding of one of a few thousand generated documents (random combinations of ImageNet/COCO
names, colours and words) plus a little noise; its document is that text; its image vector is
a random 1280-d unit vector stored as float16 (as the real store does). No thumbnails (the
per-image disk cost of real items, thumbnail included, is measured by bench_index.py).

Each size runs in its own process (so its peak memory is its own):
build the collection in batches of 50k, run ``optimize`` (IVF-PQ ANN + FTS + scalar indexes
from 50k items), then time ``Library.search`` end to end — query text embedding,
vector search, keyword search, fusion, why — for 100 text queries (after 10 warm-up queries),
plus image→image vector search from a stored vector. Recall@10 of the ANN against exact
search is measured on 50 queries.

Run: ``.venv/bin/python benchmarks/bench_search.py [--sizes 10000,100000,1000000]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

QUERIES = [
    "a cat", "coffee", "a rocket", "a red car", "people on a beach", "a dog in the snow", "limited edition",
    "a bowl of fruit", "someone riding a bicycle", "a laptop on a desk", "two people", "a white boat",
    "invoice total", "a clock on the wall", "a pizza", "a bird", "green tea", "a bus", "a teddy bear",
    "a train station",
]



def docs(n: int, rng: np.random.Generator) -> list[str]:
    from oculi.language.vocab import COCO_CLASSES, imagenet_lemmas

    lemmas = [lem[0] for lem in imagenet_lemmas()]
    colours = ["red", "green", "blue", "yellow", "white", "black", "grey", "brown", "orange", "pink"]
    out = []
    for _ in range(n):
        objs = rng.choice(COCO_CLASSES, size=rng.integers(0, 4), replace=False)
        lab = rng.choice(lemmas, size=2, replace=False)
        cols = rng.choice(colours, size=2, replace=False)
        parts = [f"A photo of {' and '.join(f'a {cols[0]} {o}' for o in objs) or 'a ' + lab[0]}."]
        parts.append(f"Labels: {lab[0]}; {lab[1]}. Colours: {cols[0]}, {cols[1]}.")
        if rng.random() < 0.1:
            parts.append("Text: " + " ".join(rng.choice(lemmas, size=4)))
        out.append(" ".join(parts))
    return out


def build_and_measure(n: int, work: Path, image_index_max: int) -> dict:
    import oculi.store.lance as lance_mod
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.store import ItemRecord, item_id, open_store
    from oculi.library import Library

    if n > image_index_max:  # the visual-vector index build is left out at this size (see --image-index-max)
        real = lance_mod.LanceCollection._create_ann
        lance_mod.LanceCollection._create_ann = lambda self, t, col, rows: real(self, t, col, rows) if col == "text_vec" else None
    rng = np.random.default_rng(0)
    eng = Engine(Settings())
    base_docs = docs(4000, rng)
    base_vecs = eng.embed_texts(base_docs).astype(np.float32)
    store = open_store(Settings(home=work))
    reuse = store.exists(f"bench{n}") and store.open_collection(f"bench{n}").count() == n
    coll = store.create_collection(f"bench{n}")
    t0 = time.perf_counter()
    chunk = 50_000
    with coll.writer():
        for start in range(0, 0 if reuse else n, chunk):
            m = min(chunk, n - start)
            which = rng.integers(0, len(base_docs), size=m)
            tv = base_vecs[which] + rng.normal(scale=0.02, size=(m, base_vecs.shape[1])).astype(np.float32)
            tv /= np.linalg.norm(tv, axis=1, keepdims=True)
            iv = rng.normal(size=(m, 1280)).astype(np.float32)
            iv /= np.linalg.norm(iv, axis=1, keepdims=True)
            items = []
            for j in range(m):
                k = start + j
                sha = f"{k:016x}{rng.integers(0, 2**62):016x}" + "0" * 32
                d = base_docs[which[j]]
                items.append(ItemRecord(
                    id=item_id(sha), sha256=sha, path=f"/photos/{k // 1000:04d}/img{k:07d}.jpg", name=f"img{k:07d}.jpg",
                    width=640, height=480, text_vec=tv[j], image_vec=iv[j], time=1.5e9 + k * 60.0,
                    caption=d.split(".")[0] + ".", doc=d, labels=(), objects=(), object_terms=(), colours=(),
                ))
            coll.add_items(items)
            del items, tv, iv
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if not reuse:
            coll.optimize()
        index_s = time.perf_counter() - t1
    if reuse:  # a collection kept by an earlier run (--work DIR --keep): only measure the search
        load_s = index_s = float("nan")
    disk = coll.bytes_on_disk()
    lib = Library(eng, store)

    for q in QUERIES[:10]:  # warm-up: models, caches, index pages
        lib.search(coll.name, text=q, top_k=10)
    lat = []
    for i in range(100):
        q = QUERIES[i % len(QUERIES)]
        t = time.perf_counter()
        lib.search(coll.name, text=q, top_k=10)
        lat.append((time.perf_counter() - t) * 1000)
    filt = []
    for i in range(30):
        t = time.perf_counter()
        lib.search(coll.name, text=QUERIES[i % len(QUERIES)], top_k=10, path_glob="/photos/00*", after="2000-01-01")
        filt.append((time.perf_counter() - t) * 1000)
    emb = []
    for i in range(50):
        t = time.perf_counter()
        eng.embed_texts([QUERIES[i % len(QUERIES)]])
        emb.append((time.perf_counter() - t) * 1000)
    # image → image: nearest neighbours of stored image vectors
    ids, mats = next(coll.iter_vectors("image_vec", batch_size=200))
    img_lat = []
    for v in mats[:50]:
        t = time.perf_counter()
        coll.vector_search(v, column="image_vec", k=10)
        img_lat.append((time.perf_counter() - t) * 1000)
    # ANN recall@10 vs exact (only meaningful where an index exists)
    recall = None
    if any(i["name"] == "text_vec_idx" for i in coll.indices()):
        allv, allids = [], []
        for bid, mat in coll.iter_vectors("text_vec", batch_size=50_000):
            allids.extend(bid)
            allv.append(mat)
        X = np.concatenate(allv)
        qv = eng.embed_texts(QUERIES)
        hits = []
        for q in qv:
            exact = set(np.array(allids)[np.argsort(-(X @ q))[:10]])
            got = {h.id for h in coll.vector_search(q, column="text_vec", k=10, columns=["id"])}
            hits.append(len(exact & got) / 10)
        recall = float(np.mean(hits))
        del X, allv
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    return {
        "n": n, "load_s": load_s, "index_s": index_s, "disk_bytes": disk,
        "text_p50": statistics.median(lat), "text_p95": p(lat, 95),
        "filtered_p50": statistics.median(filt), "filtered_p95": p(filt, 95),
        "embed_p50": statistics.median(emb), "image_p50": statistics.median(img_lat), "image_p95": p(img_lat, 95),
        "ann_recall10": recall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "indices": [i["name"] for i in coll.indices()],
        "image_indexed": any(i["name"] == "image_vec_idx" for i in coll.indices()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", default=None, help="Where to build the collections (default: a temp dir, removed). "
                    "A collection of the right size already there is reused (search measured only).")
    ap.add_argument("--keep", action="store_true", help="Keep the built collections.")
    ap.add_argument("--image-index-max", type=int, default=100_000,
                    help="Above this size skip building the visual-vector ANN index (its build dominates the run).")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(build_and_measure(args.one, Path(args.work), args.image_index_max)))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="oculi-bench-search-"))
    rows = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--work", str(work),
                                  "--image-index-max", str(args.image_index_max)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"# {n:,}: text p50 {r['text_p50']:.1f} ms p95 {r['text_p95']:.1f} ms", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"Machine: {machine()}\n")
    print("| items | text search p50 / p95 (ms) | filtered p50 / p95 (ms) | query embedding p50 (ms) | image→image p50 / p95 (ms) | ANN recall@10 | load / index build (s) | disk | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rec = f"{r['ann_recall10']:.2f}" if r["ann_recall10"] is not None else "exact"
        img = f"{r['image_p50']:.1f} / {r['image_p95']:.1f}" + ("" if r["image_indexed"] else " (exact scan)")
        print(f"| {r['n']:,} | {r['text_p50']:.1f} / {r['text_p95']:.1f} | {r['filtered_p50']:.1f} / {r['filtered_p95']:.1f} | "
              f"{r['embed_p50']:.1f} | {img} | {rec} | {r['load_s']:.0f} / {r['index_s']:.0f} | "
              f"{r['disk_bytes'] / 1e9:.2f} GB ({r['disk_bytes'] / r['n'] / 1e3:.1f} kB/item) | {r['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
