"""What the vocabulary work costs per image: object colours from the object's own pixels,
each object's crop through the classifier, and the WordNet table.

Anchors in the same run (times drift between machines and with load): the rule before for
object colour (the box's central half) and the whole-image classifier pass. Photos: the
evaluation images of ``oculi.scenes`` (scikit-image and scikit-learn photos, generated scenes).
Run: `.venv/bin/python benchmarks/bench_vocab.py [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path


def centre_colour(image, box):  # the rule before: the middle half of the box  # noqa: ANN001, ANN201
    from oculi.perception import colour

    w, h = image.size
    b = box.clip(w, h)
    cx, cy = b.center
    x1, y1, x2, y2 = int(cx - b.width / 4), int(cy - b.height / 4), int(cx + b.width / 4), int(cy + b.height / 4)
    if x2 - x1 < 6 or y2 - y1 < 6:
        return None
    shares = colour._shares(colour._thumbnail(image, 32, box=(x1, y1, x2, y2)))
    return shares[0][0] if shares and shares[0][1] >= 0.4 else None


def timed(fn, rounds: int) -> float:  # noqa: ANN001
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import oculi.core.taxonomy as taxonomy_mod
    from oculi import Engine
    from oculi.perception.colour import region_colour
    from oculi.perception.crops import label_objects, plan_crops
    from oculi.scenes import write_vqa_images

    t = time.perf_counter()
    taxonomy_mod.taxonomy.cache_clear()
    taxonomy_mod.taxonomy()
    table_ms = (time.perf_counter() - t) * 1000
    eng = Engine()
    eng.warmup()
    perceiver = eng.backend("observe").perceiver
    with tempfile.TemporaryDirectory() as tmp:
        photos = write_vqa_images(Path(tmp))
        loaded = [eng.load_image(p) for p in photos.values()]
    images = [li.image for li in loaded]
    dets = [perceiver._objects(img, perceiver.detector.detect(img)) for img in images]
    boxes = [(img, o.box) for img, objs in zip(images, dets) for o in objs if o.source == "detector"]
    new_c = timed(lambda: [region_colour(img, b) for img, b in boxes], args.rounds) / max(1, len(boxes))
    old_c = timed(lambda: [centre_colour(img, b) for img, b in boxes], args.rounds) / max(1, len(boxes))
    labels = perceiver.classifier.classify(images)
    crops_ms = timed(lambda: label_objects(images, dets, perceiver.classifier, labels), args.rounds)
    whole_ms = timed(lambda: perceiver.classifier.classify(images), args.rounds)
    n_crops = sum(len(plan_crops(objs, *img.size)[0]) for img, objs in zip(images, dets))

    print(f"machine: {machine()}; {len(images)} evaluation images, {len(boxes)} detections")
    print()
    print("| measure | median | anchor (same run) | ratio |")
    print("|---|---|---|---|")
    print(f"| object colour from its own pixels, per object | {new_c:.2f} ms | centre rule {old_c:.2f} ms | {new_c / old_c:.1f}× |")
    print(f"| crops through the classifier (≤ 3 per image, one call), per image | {crops_ms / len(images):.1f} ms "
          f"| whole-image classifier {whole_ms / len(images):.1f} ms | {crops_ms / whole_ms:.2f}× |")
    print(f"| crops classified (the other detections fill the frame and reuse its labels) | {n_crops} | | |")
    print(f"| WordNet table read + checksum, once per process | {table_ms:.0f} ms | | |")


if __name__ == "__main__":
    main()
