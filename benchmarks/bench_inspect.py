"""Inspection quality and speed on a texture benchmark with synthetic defects.

1. **Quality**: per texture (scikit-image's ``brick``, ``grass``, ``gravel`` photos and the
   generated ``weave``, ``grain``, ``fabric``; ``oculi.tasks.inspect.synth``), ``--train`` good
   crops to fit on (20 % held out for the threshold), ``--test-good`` good test crops and, per defect type
   (scratch, spot, hole, stain, missing), ``--per-defect`` test crops cycling through the sizes
   small / medium / large, written in the MVTec AD layout and measured by the same code as
   ``oculi eval inspect``: image AUROC and pixel AUROC per texture and defect type, image
   AUROC per defect size, and the accuracy at the calibrated threshold; then the same with one
   inspector for all the textures as product types (``oculi eval inspect --one-model``).
2. **Speed**: ``fit_inspector`` on 50 and on 500 good images (gravel, the most varied texture),
   wall and CPU seconds and the memory-bank size; ``inspect_images`` on 50 images, ms per image.

Run: ``.venv/bin/python benchmarks/bench_inspect.py [--part quality|speed|all] [--train 50]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402


def quality(root: Path, textures: list[str], n_train: int, per_defect: int, test_good: int, settings) -> None:
    from sklearn.metrics import roc_auc_score

    from oculi.tasks.inspect.evaluate import evaluate_inspect
    from oculi.tasks.inspect.synth import DEFECTS, SIZES, write_mvtec

    write_mvtec(root, textures, n_train=n_train, n_test_good=test_good, n_per_defect=per_defect)
    t0 = time.perf_counter()
    ev = evaluate_inspect(root, settings=settings)
    wall = time.perf_counter() - t0
    print(f"\n### Quality: image / pixel AUROC ({n_train} good images per texture, {test_good} good + {per_defect} per defect type in test)\n")
    print("| texture | " + " | ".join(DEFECTS) + " | **all** | accuracy at threshold |")
    print("|---" * (len(DEFECTS) + 3) + "|")
    for c in ev.categories:
        cells = [f"{c.by_defect[d]['image_auroc']:.3f} / {c.by_defect[d]['pixel_auroc']:.3f}" for d in DEFECTS]
        print(f"| {c.category} | " + " | ".join(cells) + f" | **{c.image_auroc:.3f} / {c.pixel_auroc:.3f}** | {c.accuracy:.1%} |")
    means = []
    for d in DEFECTS:
        means.append(f"{np.mean([c.by_defect[d]['image_auroc'] for c in ev.categories]):.3f} / "
                     f"{np.mean([c.by_defect[d]['pixel_auroc'] for c in ev.categories]):.3f}")
    print("| **mean** | " + " | ".join(means) + f" | **{ev.mean('image_auroc'):.3f} / {ev.mean('pixel_auroc'):.3f}** | "
          f"{np.mean([c.accuracy for c in ev.categories]):.1%} |")
    # image AUROC per defect size: that size's defect images against the good ones
    print("\n| defect size | " + " | ".join(c.category for c in ev.categories) + " | mean |")
    print("|---" * (len(ev.categories) + 2) + "|")
    for size in SIZES:
        row = []
        for c in ev.categories:
            sizes = {}
            for d in DEFECTS:
                for line in (root / c.category / "test" / d / "sizes.txt").read_text().split("\n"):
                    if line:
                        f, s = line.split()
                        sizes[(d, f)] = s
            y, s = [], []
            for d, f, sc in c.images:
                if d == "good" or sizes.get((d, f)) == size:
                    y.append(int(d != "good"))
                    s.append(sc)
            row.append(roc_auc_score(y, s))
        print(f"| {size} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {np.mean(row):.3f} |")
    print(f"\nfit + scoring of {sum(c.n_test for c in ev.categories)} test images over {len(textures)} textures: {wall:.0f} s wall; "
          f"memory banks {', '.join(str(c.bank_size) for c in ev.categories)} patches")
    # one inspector for all the textures as product types (`oculi inspect fit --classes`)
    t0 = time.perf_counter()
    one = evaluate_inspect(root, settings=settings, one_model=True)
    wall1 = time.perf_counter() - t0
    print("\n### One inspector for all textures (`inspect fit --classes`) against one per texture\n")
    print("| | image AUROC | pixel AUROC | accuracy at threshold | taken for its own texture | fit | inspect |")
    print("|---|---|---|---|---|---|---|")
    print(f"| one per texture | {ev.mean('image_auroc'):.3f} | {ev.mean('pixel_auroc'):.3f} | "
          f"{np.mean([c.accuracy for c in ev.categories]):.1%} | | {sum(c.fit_seconds for c in ev.categories):.1f} s in all | "
          f"{np.mean([c.ms_per_image for c in ev.categories]):.0f} ms/image |")
    print(f"| one for all | {one.mean('image_auroc'):.3f} | {one.mean('pixel_auroc'):.3f} | "
          f"{np.mean([c.accuracy for c in one.categories]):.1%} | {np.mean([c.type_accuracy for c in one.categories]):.1%} | "
          f"{one.categories[0].fit_seconds:.1f} s | {np.mean([c.ms_per_image for c in one.categories]):.0f} ms/image |")
    print(f"\n(one model: fit + scoring {wall1:.0f} s wall)")


def speed(root: Path, settings) -> None:
    from PIL import Image

    from oculi.tasks.inspect import fit_inspector, inspect_images
    from oculi.tasks.inspect.synth import crop, texture

    rng = np.random.default_rng(0)
    tex = texture("gravel")
    d500 = root / "good500"
    d50 = root / "good50"
    d500.mkdir(parents=True)
    d50.mkdir(parents=True)
    for i in range(500):
        im = Image.fromarray(crop(tex, 256, rng))
        im.save(d500 / f"{i:03d}.png")
        if i < 50:
            im.save(d50 / f"{i:03d}.png")
    test = root / "test"
    test.mkdir()
    for i in range(50):
        Image.fromarray(crop(tex, 256, rng)).save(test / f"{i:03d}.png")
    print("\n### Speed\n")
    print("| step | wall | CPU | memory bank |")
    print("|---|---|---|---|")
    fit_inspector(d50, "warm", settings=settings)  # model load and ONNX export out of the timings
    for n, d in ((50, d50), (500, d500)):
        t0, c0 = time.perf_counter(), time.process_time()
        card = fit_inspector(d, f"speed-{n}", settings=settings)
        print(f"| fit on {n} good images (256x256) | {time.perf_counter() - t0:.1f} s | {time.process_time() - c0:.1f} s | "
              f"{card.bank_size} of {card.patches_seen} patches |")
    files = sorted(test.iterdir())
    t0, c0 = time.perf_counter(), time.process_time()
    inspect_images(files, "speed-500", settings=settings)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(files)
    n = len(files)
    print(f"| inspect {n} images in one call (batches of 16) | {1000 * (time.perf_counter() - t0) / n:.0f} ms/image | "
          f"{1000 * (time.process_time() - c0) / n:.0f} ms/image | |")
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files[:10]:
        inspect_images([f], "speed-500", settings=settings)
    print(f"| inspect one image per call | {1000 * (time.perf_counter() - t0) / 10:.0f} ms/image | "
          f"{1000 * (time.process_time() - c0) / 10:.0f} ms/image | |")
    from anchor_clip import run_anchor

    anchor = run_anchor(test)  # the same 50 images through a CLIP ViT-B/32 indexer, fresh process
    a_ms = 1000 * anchor["wall_s"] / anchor["images"]
    b_ms = batch_ms
    print(f"| anchor: CLIP ViT-B/32 (random weights) on the same {anchor['images']} images | {a_ms:.0f} ms/image | "
          f"{1000 * anchor['cpu_s'] / anchor['images']:.0f} ms/image | |")
    print(f"\ninspect in one call: {a_ms / b_ms:.2f}x the anchor's speed (ratio of wall times in this run)")


def main() -> None:
    from oculi.config import Settings
    from oculi.tasks.inspect.synth import TEXTURES

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["quality", "speed", "all"], default="all")
    ap.add_argument("--train", type=int, default=50, help="good images per texture")
    ap.add_argument("--per-defect", type=int, default=15, help="test images per defect type and texture (cycling small/medium/large)")
    ap.add_argument("--test-good", type=int, default=40, help="good test images per texture")
    ap.add_argument("--textures", default=",".join(TEXTURES))
    args = ap.parse_args()
    print(f"## Inspection benchmark\n\nMachine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", assets_dir=Settings().assets_dir)
        if args.part in ("quality", "all"):
            quality(Path(tmp) / "mvtec", args.textures.split(","), args.train, args.per_defect, args.test_good, settings)
        if args.part in ("speed", "all"):
            speed(Path(tmp) / "speed", settings)


if __name__ == "__main__":
    main()
