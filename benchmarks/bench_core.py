"""Speed and memory of the built-in model on 640×480 photos (issue 2's benchmark).

Prints a Markdown table: cold start of `oculi caption` on one image (a fresh process each
time), warm per-image latency of caption, ask, detect and read (median and p95), and the
peak resident memory of the warm process. Run: `.venv/bin/python benchmarks/bench_core.py`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "page", "clock", "coins")



def photos(d: Path) -> list[Path]:
    from skimage import data

    out = []
    for name in SAMPLES:
        arr = getattr(data, name)()
        img = Image.fromarray(arr).convert("RGB").resize((640, 480), Image.BICUBIC)
        p = d / f"{name}.jpg"
        img.save(p, quality=90)
        out.append(p)
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def cold_start(image: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "oculi", "caption", str(image)], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="passes over the sample photos for warm timings")
    ap.add_argument("--cold-runs", type=int, default=3)
    args = ap.parse_args()

    from oculi import Engine

    with tempfile.TemporaryDirectory() as tmp:
        imgs = photos(Path(tmp))
        cold = cold_start(imgs[1], args.cold_runs)
        eng = Engine()
        t = time.perf_counter()
        eng.warmup()
        load_s = time.perf_counter() - t
        loaded = [eng.load_image(p) for p in imgs]
        tasks = {
            "caption": lambda li: eng.caption(li),
            "ask": lambda li: eng.ask(li, "How many people are in the photo?"),
            "detect": lambda li: eng.detect(li),
            "read": lambda li: eng.read(li),
            "observe (no OCR)": lambda li: eng.observe(li, ocr=False),
        }
        for fn in tasks.values():  # warm-up pass
            fn(loaded[0])
        rows = []
        for name, fn in tasks.items():
            ts = []
            c0 = cpu()
            for _ in range(args.rounds):
                for li in loaded:
                    t = time.perf_counter()
                    fn(li)
                    ts.append((time.perf_counter() - t) * 1000)
            rows.append((name, statistics.median(ts), pct(ts, 95), len(ts), (cpu() - c0) / len(ts) * 1000))
        stream = detect_stream([li.image for li in loaded] * args.rounds * 2, eng.settings)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"machine: {machine()}; torch threads: {__import__('torch').get_num_threads()}")
    print()
    print("| measure | median | p95 | n | CPU per call |")
    print("|---|---|---|---|---|")
    print(f"| cold `oculi caption` one image (process start → caption) | {statistics.median(cold):.2f} s | {max(cold):.2f} s (max) | {len(cold)} | |")
    print(f"| model load in a warm process (`Engine.warmup`) | {load_s:.2f} s | | 1 | |")
    for name, med, p95, n, c in rows:
        print(f"| warm {name}, 640×480 | {med:.0f} ms | {p95:.0f} ms | {n} | {c:.0f} ms |")
    n, wall, c, workers = stream
    print(f"| detection stream for footage (`PerceptionPool.detect`, {workers} workers, one frame per task), "
          f"640×480 | **{n / wall:.1f} frames/s** | | {n} | {c / n * 1000:.0f} ms |")
    print(f"| peak RSS of the warm process | {rss_mb:.0f} MB | | | |")


def cpu() -> float:
    """CPU seconds (user + system, all threads) of this process so far."""
    t = os.times()
    return t.user + t.system


def detect_stream(frames: list, settings) -> tuple[int, float, float, int]:  # noqa: ANN001
    """Frames through a ``PerceptionPool`` (one worker per core), as footage does: (n, wall s, CPU s, workers)."""
    from oculi.perception.pool import PerceptionPool

    with PerceptionPool(settings) as pool:
        list(pool.detect(frames[:4]))  # warm
        t, c = time.perf_counter(), cpu()
        n = sum(1 for _ in pool.detect(frames))
        return n, time.perf_counter() - t, cpu() - c, pool.workers


if __name__ == "__main__":
    main()
