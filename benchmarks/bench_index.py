"""Ingest throughput of `oculi index`, against a CLIP ViT-B/32 indexer run on the same photos.

Two photo sets (``benchmarks/photos.py``): 640×480 JPEGs and 12 MP phone-style JPEGs (EXIF
orientation, quality 90). For each set, in one run:

- the anchor (``benchmarks/anchor_clip.py``): a whole-process CLIP ViT-B/32 indexer, fp32,
  batch 16, in a fresh process; its model build is not counted;
- ``Library.index`` (what ``oculi index`` runs) with the full built-in pipeline (OCR on) in
  this process, models loaded first and not counted, perception on the engine's
  ``PerceptionPool``; the store's compaction at the end is counted.

Each row gives wall time and images/s, the CPU time (user + system, all threads and worker
processes) per image, and oculi's rate as a multiple of the anchor's, by wall clock and by
CPU time. The machine is shared, so the ratios are the figures to compare across runs; the
CPU ratio is the steadier of the two. A second table times each perception part alone on
one thread (CPU ms per image).

Run: ``.venv/bin/python benchmarks/bench_index.py [--n 48] [--phone 16] [--pool thread|process]
[--workers N]``
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from anchor_clip import run_anchor  # noqa: E402
from machine import machine  # noqa: E402
from photos import make_photos, phone_photos  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (worker processes once closed)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def index_run(settings_kw: dict, photos: Path, home: Path, ocr: bool) -> dict:
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.library import Library
    from oculi.store import open_store

    eng = Engine(Settings(**settings_kw))
    backend = eng.backend("observe")
    if hasattr(backend, "pool"):  # start and load the workers: not counted, like the anchor's model build
        backend.pool()
    else:  # an oculi from before the pool (``--before``): its one perceiver
        eng.warmup()
    eng.embed_texts(["warm up"])
    store = open_store(Settings(home=home))  # a fresh store; models and caches from the usual home
    c0, t0 = _cpu(), time.perf_counter()
    rep = Library(eng, store).index([photos], "bench", ocr=ocr)
    if hasattr(eng, "close"):
        eng.close()  # process workers exit and are reaped here, so their CPU time is counted
    return {"images": rep.added, "wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0,
            "failed": len(rep.failed)}


def stage_times(photos: list[Path], draft: bool) -> dict[str, float]:
    """CPU ms per image of each perception part alone, one thread."""
    from oculi.engine import Engine
    from oculi.perception import colour
    from oculi.perception.worker import PerceptionWorker

    eng = Engine()
    w = PerceptionWorker(eng.settings)
    w.load()
    per = w.perceiver
    loaded = [eng.load_image(p, draft=draft) for p in photos]
    imgs = [li.image for li in loaded]
    out: dict[str, float] = {}

    def timed(name: str, fn) -> None:  # noqa: ANN001
        fn()  # warm
        t = time.thread_time()
        fn()
        out[name] = (time.thread_time() - t) / len(imgs) * 1000

    timed("decode" + (" (draft)" if draft else ""), lambda: [eng.load_image(p, draft=draft) for p in photos])
    timed("classifier + embedding", lambda: [per.classifier.classify_and_embed([i]) for i in imgs])
    timed("detector", lambda: [per.detector.detect_with_signal(i) for i in imgs])
    timed("object colours + gated faces", lambda: [per.detect_objects(i) for i in imgs])
    out["object colours + gated faces"] -= out["detector"]
    timed("image colours", lambda: [colour.dominant_colours(i, k=3) for i in imgs])
    timed("OCR", lambda: [per.reader.read(i) for i in imgs])
    from oculi.language.describe import describe
    from oculi.tasks.index import observation_document

    docs = [observation_document(o, describe(o)).summary for o in w.observe(loaded)]
    timed("sentence embedding of the document", lambda: eng.embed_texts(docs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48, help="640x480 photos")
    ap.add_argument("--phone", type=int, default=16, help="12 MP phone photos (0: skip)")
    ap.add_argument("--pool", choices=("thread", "process"), default="thread")
    ap.add_argument("--workers", type=int, default=0, help="perception workers (0: one per core)")
    ap.add_argument("--no-ocr", action="store_true")
    ap.add_argument("--before", action="store_true",
                    help="skip the per-stage table (to run this script on an oculi checkout from before the pool)")
    args = ap.parse_args()
    kw = {"perception_pool": args.pool, "perception_workers": args.workers}

    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-index-"))
    sets = [("640×480", make_photos(tmp / "p640", args.n))]
    if args.phone:
        sets.append(("12 MP phone", phone_photos(tmp / "phone", args.phone)))
    rows = []
    for name, photos in sets:
        folder = photos[0].parent
        anchor = run_anchor(folder)
        ours = index_run(kw, folder, tmp / f"home-{len(rows)}", ocr=not args.no_ocr)
        rows.append((name, anchor, ours))
    stages = {} if args.before else {name: stage_times(photos[:16], draft=name != "640×480") for name, photos in sets}

    workers = args.workers or len(os.sched_getaffinity(0))
    print(f"Machine: {machine()}\n")
    how = "one perceiver (an oculi from before the pool)" if args.before else f"{workers} {args.pool} perception worker(s)"
    print(f"oculi: `Library.index`, OCR {'off' if args.no_ocr else 'on'}, {how}. "
          f"Anchor: CLIP ViT-B/32 indexer (anchor_clip.py), fp32, batch 16.\n")
    print("| photos | indexer | images | wall (s) | images/s | CPU ms/image | × anchor (wall) | × anchor (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, a, o in rows:
        a_rate, o_rate = a["images"] / a["wall_s"], o["images"] / o["wall_s"]
        a_cpu, o_cpu = a["cpu_s"] / a["images"] * 1000, o["cpu_s"] / max(1, o["images"]) * 1000
        print(f"| {name} | CLIP B/32 anchor | {a['images']} | {a['wall_s']:.1f} | {a_rate:.2f} | {a_cpu:.0f} | 1.00 | 1.00 |")
        print(f"| {name} | **oculi index** | {o['images']} | {o['wall_s']:.1f} | **{o_rate:.2f}** | {o_cpu:.0f} "
              f"| **{o_rate / a_rate:.2f}** | **{a_cpu / o_cpu:.2f}** |")
    print("\n| stage, one thread (CPU ms per image) | " + " | ".join(stages) + " |")
    print("|---|" + "---|" * len(stages))
    for k in next(iter(stages.values()), {}):
        key = k.replace(" (draft)", "")
        vals = [next((v for kk, v in st.items() if kk.replace(" (draft)", "") == key), 0.0) for st in stages.values()]
        print(f"| {k} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    print(f"\nPeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
