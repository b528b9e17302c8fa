"""Footage speed and memory: ``oculi watch`` as a multiple of real time, question latency over a
day of events, and memory on a two-hour file.

1. **Speed** at 720p and 1080p, 25 fps, at the default settings (2 frames/s analysed, motion
   gating on): generated clips (``synth.random_scene``: people and a car on random paths; people
   are in view most of the time, so the detector runs on most analysed frames). Reported: footage
   seconds per wall second (x real time) and per CPU second (the machine is shared: CPU time is
   the fairer figure), decoding alone (the floor: every frame must be decoded), and the same
   run's anchor, the detector alone on one 720p frame, so figures from a busy machine can be
   scaled.
2. **Question latency**: a day of one busy camera (a person or car arriving every ~20 s, 24 h:
   ~4,300 tracks and ~20,000 events) written straight into a store; each question of the issue
   asked 10 times (after one warm-up), median and p95.
3. **Memory** on a 2-hour file (640x360, 4 fps, mostly still: someone crosses every 10 minutes;
   written cheaply without noise): resident memory sampled every 2 s while it is watched.

Run: ``.venv/bin/python benchmarks/bench_footage.py [--part speed|ask|memory|all] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

QUESTIONS = [
    "Was anyone loitering at the main gate today?",
    "How many people came to the main gate today?",
    "How many cars came in after 5 pm?",
    "When did the person in red leave?",
    "Show me everyone near the gate between 9 and 10",
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def library(home: Path):
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.library import Library
    from oculi.store import open_store

    s = Settings()
    return Library(Engine(s), open_store(Settings(home=home, assets_dir=s.assets_dir)))


def anchor_ms(lib) -> float:
    from PIL import Image

    det = lib.engine.backend("detect_frames")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8))
    det.detect_frames([img], min_score=0.2)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        det.detect_frames([img], min_score=0.2)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def decode_seconds(path: Path) -> float:
    """Wall seconds to decode every frame of a file (PyAV, threaded), the floor under watching it."""
    import av

    t0 = time.monotonic()
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        for _ in c.decode(st):
            pass
    return time.monotonic() - t0


def part_speed(tmp: Path, seconds: float) -> list[str]:
    from oculi.tasks.footage.synth import random_scene, write_scene
    from oculi.tasks.footage.watch import WatchOptions

    lib = library(tmp / "home-speed")
    lib.engine.warmup()
    rows = [f"Anchor: the detector alone on one 720p frame, median of 20: **{anchor_ms(lib):.0f} ms**.", "",
            "| footage | decoding alone | analysed / detector frames | in the detector | keyframes (n, time) | wall | CPU | x real time (wall) | x real time (CPU) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for w, h in ((1280, 720), (1920, 1080)):
        scene = random_scene(7, duration=seconds, width=w, height=h, fps=25.0, people=4, cars=1)
        path = write_scene(scene, tmp / f"clip{h}.mp4", crf=26)
        dec = decode_seconds(path)
        t0, c0 = time.monotonic(), time.process_time()
        rep = lib.watch(str(path), WatchOptions(camera=f"cam{h}", start=0.0))
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        rows.append(f"| {h}p, {seconds:.0f} s at 25 fps | {dec:.1f} s | {rep.frames_sampled} / {rep.frames_detected} | "
                    f"{rep.detect_s:.1f} s | {rep.keyframes}, {rep.keyframes_s:.1f} s | {wall:.1f} s | "
                    f"{cpu:.1f} s | **{rep.footage_seconds / wall:.1f}x** | {rep.footage_seconds / cpu:.1f}x |")
    return rows


def part_ask(tmp: Path) -> list[str]:
    from oculi.store import open_store
    from oculi.config import Settings
    from oculi.store.records import EventRecord, SourceRecord, TrackRecord, event_id, source_id_for, track_key
    from oculi.tasks.footage.ask import ask_footage

    coll = open_store(Settings(home=tmp / "home-ask")).create_collection("default")
    day0 = datetime(2026, 11, 27, tzinfo=timezone.utc).timestamp()
    src = SourceRecord(source_id_for("stream", "rtsp://cam/gate", "main gate"), "stream", "rtsp://cam/gate", "main gate",
                       "rtsp://cam/gate", start_time=day0, end_time=day0 + 86400, status="done",
                       settings={"zones": [{"name": "gate", "points": [[0, 0], [1, 0], [1, 1]], "loiter_after": 30}]})
    rng = np.random.default_rng(0)
    tracks, events = [], []
    t, tid = day0, 0
    while t < day0 + 86400 - 120:
        t += float(rng.exponential(20.0))
        tid += 1
        label = "car" if rng.random() < 0.2 else "person"
        stay = float(rng.exponential(25.0)) + 3
        colour = str(rng.choice(["red", "blue", "black", "white", "grey"]))
        tracks.append(TrackRecord(track_key(src.id, tid), src.id, "main gate", tid, label, t, t + stay, 0.6, colour,
                                  ("gate",), None, None, 10, 0))
        ev = lambda typ, a, b, **kw: EventRecord(event_id(src.id, typ, a, track_id=tid, zone=kw.get("zone")), src.id,  # noqa: E731
                                                "main gate", typ, a, b, tid, label, **kw)
        events += [ev("appear", t, t), ev("zone_enter", t + 1, t + 1, zone="gate"),
                   ev("dwell", t + 1, t + stay - 1, zone="gate", value=stay - 2), ev("zone_leave", t + stay - 1, t + stay - 1, zone="gate"),
                   ev("leave", t + stay, t + stay)]
        if stay - 2 >= 30:
            events.append(ev("loitering", t + 1, t + stay - 1, zone="gate", value=stay - 2))
    with coll.writer():
        coll.upsert_records([src])
        for i in range(0, len(tracks), 5000):
            coll.upsert_records(tracks[i:i + 5000])
        for i in range(0, len(events), 5000):
            coll.upsert_records(events[i:i + 5000])
        coll.optimize()
    now = datetime(2026, 11, 27, 23, 59, tzinfo=timezone.utc)
    rows = [f"A day of one camera: {len(tracks):,} tracks, {len(events):,} events.", "",
            "| question | answer (abridged) | median | p95 |", "|---|---|---|---|"]
    for q in QUESTIONS:
        ask_footage(coll, q, now=now, tz=timezone.utc)
        lat = []
        for _ in range(10):
            t0 = time.perf_counter()
            a = ask_footage(coll, q, now=now, tz=timezone.utc)
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        rows.append(f"| {q} | {a.answer[:60]}… | {statistics.median(lat):.0f} ms | {lat[int(0.95 * (len(lat) - 1))]:.0f} ms |")
    return rows


def part_memory(tmp: Path, hours: float) -> list[str]:
    from oculi.tasks.footage.synth import Actor, Scene, write_scene
    from oculi.tasks.footage.watch import WatchOptions

    dur = hours * 3600
    actors = [Actor("person", "camera" if i % 2 else "astronaut", [(t, -60, 330), (t + 12, 700, 330)])
              for i, t in enumerate(np.arange(60.0, dur - 30, 600.0))]
    scene = Scene(duration=dur, actors=actors, fps=4.0, noise=0.0)
    t0 = time.monotonic()
    path = write_scene(scene, tmp / "long.mp4", crf=30, gop=40)
    gen = time.monotonic() - t0
    lib = library(tmp / "home-mem")
    lib.engine.warmup()
    samples: list[tuple[float, float]] = []
    progress_t = [0.0]
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            samples.append((progress_t[0], rss_mb()))
            stop.wait(2.0)

    th = threading.Thread(target=sampler, daemon=True)
    base = rss_mb()
    th.start()
    t0, c0 = time.monotonic(), time.process_time()
    rep = lib.watch(str(path), WatchOptions(camera="long", start=0.0),
                    progress=lambda p: progress_t.__setitem__(0, p.t))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    stop.set()
    th.join()

    def at(frac: float) -> float:
        pts = [m for t, m in samples if t >= frac * dur]
        return pts[0] if pts else samples[-1][1]

    return [f"A {hours:g}-hour file (640x360, 4 fps, {path.stat().st_size / 1e6:.0f} MB, written in {gen:.0f} s; someone crosses "
            f"every 10 min): watched in {wall:.0f} s wall / {cpu:.0f} s CPU ({rep.footage_seconds / wall:.0f}x real time), "
            f"{rep.frames_detected:,} of {rep.frames_sampled:,} analysed frames through the detector, {rep.events} events.", "",
            "| resident memory | before | at 10 % | at 50 % | at 90 % | peak |", "|---|---|---|---|---|---|",
            f"| MB | {base:.0f} | {at(0.1):.0f} | {at(0.5):.0f} | {at(0.9):.0f} | {max(m for _, m in samples):.0f} |"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["speed", "ask", "memory", "all"], default="all")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the speed clips")
    ap.add_argument("--hours", type=float, default=2.0, help="length of the memory file")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-footage-"))
    out = [f"Machine: {machine()}", ""]
    if args.part in ("speed", "all"):
        out += ["### Speed (default: 2 frames/s analysed, motion gating)", "", *part_speed(tmp, args.seconds), ""]
    if args.part in ("ask", "all"):
        out += ["### Footage questions over a day of events", "", *part_ask(tmp), ""]
    if args.part in ("memory", "all"):
        out += ["### Memory on a long file", "", *part_memory(tmp, args.hours), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
