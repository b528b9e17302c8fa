"""Ingest throughput of `oculi index` with the local engine and with 1 and 2 Ray workers.

One photo set (``benchmarks/photos.py``, 640×480 JPEGs, every one distinct content) indexed
into a fresh collection each time, OCR on, in one run:

- the anchor (``benchmarks/anchor_clip.py``): a whole-process CLIP ViT-B/32 indexer, fp32,
  batch 16, in a fresh process, its model build not counted;
- ``--engine local``: ``Library.index`` in this process on the engine's ``PerceptionPool``
  (one thread worker per core), models loaded first and not counted;
- ``--engine ray`` with 1 and 2 workers on a local Ray (``ray.init(num_cpus=cores)``, started
  once before the runs and not counted). Each Ray run starts its actors, and each actor loads
  the models: that start-up is part of the run's wall time, as it is of every real Ray
  ingestion.

Each indexer runs on ``--n`` photos and on ``--n-large`` photos (fresh collections); the
*marginal* rate, (n_large - n) / (t_large - t_n), is the steady rate with every fixed cost
(actor start-up, model loads, the final compaction) taken out. Last, the driver's own ceiling:
how fast its ``StoreWriter`` writes stored items to the embedded store, with no perception.

Wall clock only (Ray's workers are not this process's children, so their CPU time is not
seen here); on a shared machine the ratios to the anchor are the figures to compare.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--n 32] [--n-large 96] [--batch-size 8]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from anchor_clip import run_anchor  # noqa: E402
from machine import machine  # noqa: E402
from photos import make_photos  # noqa: E402


def index_run(eng, folder: Path, home: Path, batch_size: int, engine: str, workers: int | None) -> dict:  # noqa: ANN001
    from oculi.config import Settings
    from oculi.library import Library
    from oculi.store import open_store

    t0 = time.perf_counter()
    store = open_store(Settings(home=home))
    rep = Library(eng, store).index([folder], "bench", batch_size=batch_size, engine=engine, workers=workers)
    wall = time.perf_counter() - t0
    assert not rep.failed and not rep.interrupted, rep.failed
    return {"images": rep.added, "wall_s": wall}


def driver_write_rate(home: Path, source_home: Path, n: int) -> dict:
    """Items/s the driver's ``StoreWriter`` writes (the ceiling of any number of Ray workers):
    the items one run stored, copied under fresh ids to ``n``, written in flushes of
    ``FLUSH_ITEMS`` into a fresh collection, then compacted as a run's end does."""
    from dataclasses import replace

    from oculi.config import Settings
    from oculi.store import open_store
    from oculi.store.base import ItemRecord, item_from_row
    from oculi.tasks.index import StoreWriter

    src = open_store(Settings(home=source_home)).open_collection("bench")
    cols = list(ItemRecord.__dataclass_fields__)
    base = [item_from_row(r) for rows in src.iter_items(cols) for r in rows]
    items = [replace(base[i % len(base)], id=f"{i:032x}", sha256=f"{i:064x}") for i in range(n)]
    coll = open_store(Settings(home=home)).create_collection("w", exist_ok=True)
    t0 = time.perf_counter()
    with coll.writer():
        w = StoreWriter(coll)
        for i in range(0, n, w.flush_items):
            w.add_items(items[i: i + w.flush_items])
            w.flush()
        t_write = time.perf_counter() - t0
        coll.optimize()
    return {"items": n, "write_s": t_write, "total_s": time.perf_counter() - t0}


def pair(eng, small: Path, large: Path, home: Path, batch_size: int, engine: str, workers: int | None) -> dict:  # noqa: ANN001
    a = index_run(eng, small, home / "small", batch_size, engine, workers)
    b = index_run(eng, large, home / "large", batch_size, engine, workers)
    return {**b, "small": a, "marginal": (b["images"] - a["images"]) / max(1e-9, b["wall_s"] - a["wall_s"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32, help="640x480 photos, small run")
    ap.add_argument("--n-large", type=int, default=96, help="640x480 photos, large run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--ray-workers", default="1,2")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--write-items", type=int, default=3200, help="items for the driver's write ceiling")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))

    from oculi.config import Settings
    from oculi.engine import Engine

    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-ingest-"))
    photos = make_photos(tmp / "large", args.n_large)
    small = tmp / "small"
    small.mkdir()
    for p in photos[: args.n]:
        (small / p.name).hardlink_to(p)
    folder = photos[0].parent

    eng = Engine(Settings())
    eng.backend("observe").pool()  # the local pool's workers load their models: not counted
    eng.embed_texts(["warm up"])
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray_start = time.perf_counter() - t
    configs = [(f"local (PerceptionPool, {cores} threads)", "local", None)]
    configs += [(f"ray, {w} worker{'s' if w > 1 else ''}", "ray", w) for w in (int(x) for x in args.ray_workers.split(","))]
    best: dict[str, dict] = {}
    anchor: dict | None = None
    for r in range(args.rounds):  # alternating rounds; the best of each: the machine is shared
        a = run_anchor(folder)
        print(f"anchor: {a}", flush=True)
        if anchor is None or a["wall_s"] < anchor["wall_s"]:
            anchor = a
        for name, kind, w in configs:
            res = pair(eng, small, folder, tmp / f"h-{r}-{kind}{w or ''}", args.batch_size, kind, w)
            print(name, res, flush=True)
            if name not in best or res["wall_s"] < best[name]["wall_s"]:
                best[name] = res
    ray.shutdown()
    rows = list(best.items())
    ceiling = driver_write_rate(tmp / "h-write", tmp / "h-0-local" / "large", args.write_items)
    print(f"driver writes: {ceiling}", flush=True)

    assert anchor is not None
    a_rate = anchor["images"] / anchor["wall_s"]
    print(f"\nMachine: {machine()}\n")
    print(f"Photos 640×480, OCR on, batch {args.batch_size}. Anchor: CLIP ViT-B/32 indexer (anchor_clip.py), fp32, "
          f"batch 16, on the {args.n_large} photos. Local Ray started once in {ray_start:.1f} s (not counted). "
          f"Best of {args.rounds} alternating rounds (anchor included).\n")
    print(f"| indexer | wall, {args.n} photos (s) | wall, {args.n_large} photos (s) | images/s ({args.n_large}) "
          f"| × anchor | marginal images/s | marginal × anchor |")
    print("|---|---|---|---|---|---|---|")
    print(f"| CLIP B/32 anchor | | {anchor['wall_s']:.1f} | {a_rate:.2f} | 1.00 | | |")
    for name, r in rows:
        rate = r["images"] / r["wall_s"]
        print(f"| oculi index, {name} | {r['small']['wall_s']:.1f} | {r['wall_s']:.1f} | **{rate:.2f}** | {rate / a_rate:.2f} "
              f"| **{r['marginal']:.2f}** | {r['marginal'] / a_rate:.2f} |")
    print(f"\nThe driver's share, what bounds any number of Ray workers: `StoreWriter` wrote {ceiling['items']} "
          f"stored items (thumbnails, observations, both vectors) in flushes of 64 at "
          f"**{ceiling['items'] / ceiling['write_s']:.0f} items/s**, {ceiling['items'] / ceiling['total_s']:.0f} items/s "
          f"with the final compaction and index build.")


if __name__ == "__main__":
    main()

