"""What store integrity costs: checksums on every write, and ``collections check`` per 10k items.

1. **Index throughput with and without checksums.** A few hundred generated 320×240 PNGs are
   indexed with the deterministic fake perceiver of ``tests/search_fakes.py`` (no models), so
   the store's share of the time is as large as it gets: the ratio is the worst case. "Without"
   switches off what integrity adds to a write session (the SHA-256 record after each commit,
   the size check of the latest version's files and the leftover sweep on entry). Runs
   alternate (with, without, with, ...) and medians are reported. The time spent recording is
   also measured directly, per write and per item.
2. **``collections check`` per 10k items.** A collection of generated records with the real
   dimensions (384-d text vectors, 1280-d float16 visual vectors, ~15 kB thumbnails) is built
   through the store API in 1 000-item writes, optimized (full-text and vector indexes, as at
   10k items in real use), then checked: every file hashed, every table read, every index
   queried. The quick check ``oculi collections`` runs is timed too.

Run: ``.venv/bin/python benchmarks/bench_integrity.py [--images 300] [--items 10000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(REPO))
from machine import machine  # noqa: E402


def index_runs(tmp: Path, n_images: int, runs: int) -> dict[str, object]:
    from oculi.library import Library
    from oculi.store import lance as lance_mod
    from oculi.store import lance_session, open_store
    from tests.search_fakes import PALETTE, fake_engine, write_png

    photos = tmp / "photos"
    for i in range(n_images):
        write_png(photos / f"img{i:04d}.png", list(PALETTE)[i % len(PALETTE)], size=(320, 240), pattern=i + 1,
                  labels=[("tabby", 0.8)], text=[f"word{i}"])
    real = (lance_mod.LanceCollection._note_write, lance_mod.LanceCollection._verify_before_writing,
            lance_session.remove_leftovers)
    note_time = [0.0, 0]

    def timed_note(self):  # noqa: ANN001
        t0 = time.perf_counter()
        real[0](self)
        note_time[0] += time.perf_counter() - t0
        note_time[1] += 1

    def set_integrity(on: bool) -> None:
        if on:
            lance_mod.LanceCollection._note_write = timed_note
            lance_mod.LanceCollection._verify_before_writing = real[1]
            lance_session.remove_leftovers = real[2]
        else:
            lance_mod.LanceCollection._note_write = lambda self: None
            lance_mod.LanceCollection._verify_before_writing = lambda self: None
            lance_session.remove_leftovers = lambda root, **kw: 0

    walls: dict[bool, list[float]] = {True: [], False: []}
    for r in range(runs):
        for on in (True, False):
            home = tmp / f"home-{r}-{int(on)}"
            eng = fake_engine(home)
            set_integrity(on)
            t0 = time.perf_counter()
            rep = Library(eng, open_store(eng.settings)).index([photos], "bench")
            walls[on].append(time.perf_counter() - t0)
            assert rep.added == n_images
    set_integrity(True)
    lance_mod.LanceCollection._note_write = real[0]
    with_s, without_s = statistics.median(walls[True]), statistics.median(walls[False])
    return {"n": n_images, "with": with_s, "without": without_s, "note_s": note_time[0] / runs,
            "writes": note_time[1] / runs}


def build_collection(root: Path, n: int) -> object:
    from oculi.store import FileRecord, ItemRecord, item_id
    from oculi.store.lance import LanceStore

    store = LanceStore(root)
    coll = store.create_collection("big")
    rng = np.random.default_rng(0)
    for start in range(0, n, 1000):
        items, files = [], []
        for i in range(start, min(n, start + 1000)):
            sha = hashlib.sha256(f"{i}".encode()).hexdigest()
            tv = rng.normal(size=384).astype(np.float32)
            iv = rng.normal(size=1280).astype(np.float32)
            items.append(ItemRecord(
                id=item_id(sha), sha256=sha, path=f"/photos/{i}.jpg", name=f"{i}.jpg", width=640, height=480,
                text_vec=tv / np.linalg.norm(tv), image_vec=iv / np.linalg.norm(iv), caption=f"photo {i}",
                doc=f"photo {i} of a cup word{i % 500}", labels=("espresso",), objects=("cup",), colours=("red",),
                observation={"i": i}, thumbnail=os.urandom(15_000), time=1.6e9 + i))
            files.append(FileRecord(f"/photos/{i}.jpg", item_id(sha), 100_000, 1))
        with coll.writer():
            coll.add_items(items)
            coll.upsert_files(files)
    with coll.writer():
        coll.optimize()
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-integrity-"))

    ix = index_runs(tmp / "index", args.images, args.runs)
    print(f"Machine: {machine()}\n")
    print(f"Index throughput, fake perceiver (store-bound: the worst case), {ix['n']} images, median of {args.runs}:\n")
    print("| run | wall (s) | images/s |")
    print("|---|---|---|")
    print(f"| without checksums | {ix['without']:.2f} | {ix['n'] / ix['without']:.0f} |")
    print(f"| with checksums (default) | {ix['with']:.2f} | {ix['n'] / ix['with']:.0f} |")
    print(f"| ratio with / without | {ix['with'] / ix['without']:.2f} | |")
    print(f"\nRecording checksums: {ix['writes']:.0f} writes per run, {ix['note_s'] / ix['writes'] * 1000:.1f} ms per "
          f"write, {ix['note_s'] / ix['n'] * 1000:.2f} ms per image.\n")
    if not args.items:
        return
    t0 = time.perf_counter()
    store = build_collection(tmp / "collections", args.items)
    build_s = time.perf_counter() - t0
    checks = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        rep = store.check_collection("big")
        checks.append(time.perf_counter() - t0)
        assert rep.ok, rep.to_dict()
    quick = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        infos = store.list_collections()
        quick.append(time.perf_counter() - t0)
        assert infos[0].status == "ok"
    check_s, quick_s = statistics.median(checks), statistics.median(quick)
    per10k = 10_000 / args.items

    print(f"`collections check` on {rep.files_checked} files, {rep.bytes_checked / 1e6:.0f} MB, "
          f"{args.items} items (built in {build_s:.0f} s), median of {args.runs}:\n")
    print("| check | s | s per 10k items | MB/s |")
    print("|---|---|---|---|")
    print(f"| full (`collections check`) | {check_s:.2f} | {check_s * per10k:.2f} | {rep.bytes_checked / 1e6 / check_s:.0f} |")
    print(f"| quick (`collections` list) | {quick_s:.3f} | {quick_s * per10k:.3f} | |")


if __name__ == "__main__":
    main()
