"""Ingest throughput of `oculi index` on generated 640×480 photos (issue 3).

Photos: the scikit-image colour photos, randomly cropped, flipped, tinted and resized to
640×480 JPEGs (every one distinct content, so every one is perceived). Measures, in one warm
process with the real models:

- images/s of ``Library.index`` with the full built-in pipeline (OCR on) and with ``ocr=False``;
- where the time goes: each perception part timed alone on the same photos (classifier,
  detector, faces + colours, OCR), the sentence embedding of the documents, and the store writes;
- disk per item (thumbnail, vectors, observation included) and peak memory.

Run: ``.venv/bin/python benchmarks/bench_index.py [--n 48]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402


def make_photos(d: Path, n: int) -> list[Path]:
    from skimage import data

    srcs = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.stereo_motorcycle()[0],
            data.immunohistochemistry(), data.hubble_deep_field()]
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = Image.fromarray(srcs[i % len(srcs)])
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
        p = d / f"photo{i:04d}.jpg"
        img.save(p, quality=90)
        out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    args = ap.parse_args()
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.library import Library
    from oculi.perception import colour
    from oculi.store import open_store
    from oculi.tasks.index import observation_document

    tmp = Path(tempfile.mkdtemp(prefix="oculi-bench-index-"))
    photos = make_photos(tmp / "photos", args.n)
    eng = Engine(Settings())
    t = time.perf_counter()
    eng.warmup()
    warm_s = time.perf_counter() - t

    rows = []
    for label, ocr in (("full pipeline (OCR on)", True), ("OCR off (--no-ocr)", False)):
        store = open_store(Settings(home=tmp / f"home-{int(ocr)}"))
        t = time.perf_counter()
        rep = Library(eng, store).index([tmp / "photos"], "bench", ocr=ocr)
        wall = time.perf_counter() - t
        coll = store.open_collection("bench")
        rows.append((label, rep.added, wall, rep.perceive_s, coll.bytes_on_disk() / max(1, coll.count())))

    # where the time goes, part by part, on the same photos
    per = eng.backend("observe").perceiver
    imgs = [eng.load_image(p).image for p in photos[:16]]
    parts: dict[str, float] = {}

    def timed(name: str, fn) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        fn()
        parts[name] = (time.perf_counter() - t0) / len(imgs) * 1000

    timed("decode + EXIF + thumbnail", lambda: [eng.load_image(p) for p in photos[:16]])
    timed("classifier + visual embedding", lambda: per.classifier.classify_and_embed(imgs, top_k=5))
    dets: list = []
    timed("detector", lambda: dets.extend(per.detector.detect_batch(imgs)))
    timed("faces + object colours", lambda: [per._objects(i, d) for i, d in zip(imgs, dets)])
    timed("image colours", lambda: [colour.dominant_colours(i, k=3) for i in imgs])
    timed("OCR", lambda: [per.reader.read(i) for i in imgs])
    obs = [eng.observe(i) for i in imgs[:4]]
    docs = [observation_document(o).summary for o in obs] * 4
    timed("sentence embedding of the document", lambda: eng.embed_texts(docs))

    print(f"Machine: {machine()}  (models warm-up {warm_s:.1f} s, not counted)\n")
    print("| run | images | wall (s) | images/s | of which perception (s) | disk per item |")
    print("|---|---|---|---|---|---|")
    for label, n, wall, perc, per_item in rows:
        print(f"| {label} | {n} | {wall:.1f} | {n / wall:.2f} | {perc:.1f} | {per_item / 1e3:.1f} kB |")
    print("\n| stage (per image, measured alone) | ms |")
    print("|---|---|")
    for k, v in parts.items():
        print(f"| {k} | {v:.0f} |")
    print(f"| total of the stages | {sum(parts.values()):.0f} |")
    print(f"\nPeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
