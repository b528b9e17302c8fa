"""Report speed: observing the images, composing the report (cross-checks + grounding), and
writing it as Markdown, HTML, PDF and JSON, for 2 and 11 of scikit-image's sample photos with
a records file that mentions them. Prints a Markdown table naming the machine.

    python benchmarks/bench_report.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from machine import machine  # noqa: E402


def main() -> None:
    from oculi.demo import sample_images
    from oculi.engine import Engine
    from oculi.tasks.report import build_report, create_report, write_report
    from oculi.tasks.report.records import link_records, parse_records

    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-report-"))
    photos = sample_images(tmp / "samples")
    engine = Engine()
    engine.warmup()
    rows = []
    for n in (2, 11):
        paths = photos[:n]
        lines = "".join(f"{p.name},{p.stem} checked; a dog is on the sofa; part 4711 passed\n" for p in paths)
        recs = parse_records(("image,text\n" + lines).encode(), "records.csv")
        t = time.perf_counter()
        rep = create_report(engine, paths, records=recs, kind="general")
        t_create = time.perf_counter() - t
        ims = rep.images
        link_records(recs, {im.id: im.path for im in ims})
        t = time.perf_counter()
        for _ in range(5):
            build_report(ims, records=recs, kind="general")
        t_build = (time.perf_counter() - t) / 5
        times = {}
        for fmt in ("json", "md", "html", "pdf"):
            t = time.perf_counter()
            out = write_report(rep, fmt, tmp / f"r{n}.{fmt}")
            times[fmt] = (time.perf_counter() - t, out[0].stat().st_size)
        rows.append((n, len(recs.records), len(rep.cross_checks), t_create, t_build, times))
    print(f"Machine: {machine()}\n")
    print("| images | records | cross-checks | observe + compose (s) | compose only (ms) | json (ms) | md (ms) | html (ms) | pdf (s) | pdf size (KB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r, c, tc, tb, tm in rows:
        print(f"| {n} | {r} | {c} | {tc:.2f} | {tb * 1000:.0f} | {tm['json'][0] * 1000:.0f} | {tm['md'][0] * 1000:.0f} | "
              f"{tm['html'][0] * 1000:.0f} | {tm['pdf'][0]:.2f} | {tm['pdf'][1] / 1024:.0f} |")


if __name__ == "__main__":
    main()
