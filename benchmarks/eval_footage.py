"""Event precision and recall of ``oculi watch`` on generated footage with known ground truth.

Clips: ``oculi.tasks.footage.synth.random_scene`` — scikit-image cut-outs (the cameraman, the
astronaut) and the drawn car on random paths over gravel, 640x360 at 10 fps; about half the
people linger in the gate zone for 5-25 s, people cross each other's paths. Ground truth comes
from the script: an actor *appears* when 60 % of it is first in view and *leaves* when it is last
in view (no leave if it is still in view at the end), *enters the zone* when its bottom centre
first lies in it, and *loiters* when it stays in the zone at least ``--loiter-after`` seconds.

A predicted event matches an unmatched true one of the same type and class whose start is within
``--tolerance`` seconds (and, for loitering, whose end is too); precision = matched / predicted,
recall = matched / true, per event type and over all. Track fragmentation (an actor split into
several tracks: an id switch) shows up as extra appear/leave events.

Run: ``.venv/bin/python benchmarks/eval_footage.py [--clips 6] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

TYPES = ("appear", "leave", "zone_enter", "loitering")


def truth_events(scene, loiter_after: float, zone: str = "gate") -> list[dict]:
    out = []
    for a in scene.truth():
        if not a["visible"]:
            continue
        first, last = a["visible"][0][0], a["visible"][-1][1]
        out.append({"type": "appear", "label": a["label"], "start": first, "end": first})
        if last < scene.duration - 1.0:
            out.append({"type": "leave", "label": a["label"], "start": last, "end": last})
        for s, e in a["zones"].get(zone, []):
            out.append({"type": "zone_enter", "label": a["label"], "start": s, "end": s})
            if e - s >= loiter_after:
                out.append({"type": "loitering", "label": a["label"], "start": s, "end": e,
                            "open": e >= scene.duration - 1.0})
    return out


def match(pred: list[dict], true: list[dict], tol: float) -> dict[str, list[int]]:
    """Per type: [matched, predicted, true]."""
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    used: set[int] = set()
    for p in sorted(pred, key=lambda e: e["start"]):
        stats[p["type"]][1] += 1
        best, best_d = None, None
        for i, t in enumerate(true):
            if i in used or t["type"] != p["type"] or t["label"] != p["label"]:
                continue
            d = abs(t["start"] - p["start"])
            if p["type"] == "loitering" and not t.get("open"):
                d = max(d, abs(t["end"] - p["end"]))
            if d <= tol and (best_d is None or d < best_d):
                best, best_d = i, d
        if best is not None:
            used.add(best)
            stats[p["type"]][0] += 1
    for t in true:
        stats[t["type"]][2] += 1
    return stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--loiter-after", type=float, default=10.0)
    ap.add_argument("--tolerance", type=float, default=1.5)
    ap.add_argument("--fps", type=float, default=2.0, help="sampling rate of watch")
    args = ap.parse_args()

    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.library import Library
    from oculi.store import open_store
    from oculi.tasks.footage.synth import random_scene, write_scene
    from oculi.tasks.footage.watch import WatchOptions

    tmp = Path(tempfile.mkdtemp(prefix="oculi-eval-footage-"))
    engine = Engine(Settings())
    lib = Library(engine, open_store(Settings(home=tmp / "home", assets_dir=Settings().assets_dir)))
    total: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    footage = work = 0.0
    for seed in range(args.clips):
        scene = random_scene(seed, duration=args.seconds, people=3 + seed % 3, cars=1)
        path = write_scene(scene, tmp / f"clip{seed}.mp4")
        zone = " ".join(f"{x:.0f},{y:.0f}" for x, y in scene.zones["gate"])
        t0 = time.monotonic()
        rep = lib.watch(str(path), WatchOptions(camera=f"cam{seed}", start=0.0, zones=[zone], zone_names=["gate"],
                                                loiter_after=args.loiter_after, sample_fps=args.fps, crowd_min=None))
        work += time.monotonic() - t0
        footage += rep.footage_seconds
        pred = [{"type": e.type, "label": "car" if e.label in ("car", "truck", "bus") else e.label,
                 "start": e.start_time, "end": e.end_time} for e in lib.events("default", camera=f"cam{seed}")
                if e.type in TYPES]
        stats = match(pred, truth_events(scene, args.loiter_after), args.tolerance)
        for k, v in stats.items():
            for i in range(3):
                total[k][i] += v[i]
        print(f"clip {seed}: " + ", ".join(f"{k} {v[0]}/{v[1]} pred, {v[2]} true" for k, v in sorted(stats.items())),
              file=sys.stderr)

    print(f"\nEvent quality of `oculi watch` on {args.clips} generated clips of {args.seconds:.0f} s "
          f"(640x360, random paths; sampling {args.fps:g} fps; loitering after {args.loiter_after:g} s; "
          f"match within {args.tolerance:g} s). Machine: {machine()}; processing {footage / work:.1f}x real time.\n")
    print("| event | true | predicted | matched | precision | recall |")
    print("|---|---|---|---|---|---|")
    m_all = p_all = t_all = 0
    for k in TYPES:
        m, p, t = total.get(k, [0, 0, 0])
        m_all, p_all, t_all = m_all + m, p_all + p, t_all + t
        print(f"| {k} | {t} | {p} | {m} | {m / p if p else 0:.2f} | {m / t if t else 0:.2f} |")
    print(f"| **all** | {t_all} | {p_all} | {m_all} | **{m_all / p_all if p_all else 0:.2f}** | **{m_all / t_all if t_all else 0:.2f}** |")


if __name__ == "__main__":
    main()
