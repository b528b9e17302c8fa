"""Do two ways of running the built-in model see the same things? (speed work's safety net)

Every speed change that may alter outputs (a new export, int8 or bf16 weights, draft JPEG
decoding, a worker pool) is checked here against the fp32 outputs on a fixed photo set:
the scikit-image samples at their own sizes, face close-ups cut from them, 32 generated
640×480 photos and (``--phone``) 12 MP phone-style JPEGs with EXIF orientation and of printed
text (``benchmarks/photos.py``).

Save the outputs of one configuration, then compare another against them::

    python benchmarks/compare_outputs.py --save ref.json            # e.g. on main
    python benchmarks/compare_outputs.py --against ref.json         # on the change
    OCULI_CLASSIFIER_PRECISION=int8 python benchmarks/compare_outputs.py --against ref.json

``--workers N`` observes through a ``PerceptionPool`` of N workers instead of one perceiver;
``--draft`` decodes large JPEGs at reduced size (``imageio`` draft mode). The printed
Markdown table: classifier top-1 agreement and top-5 overlap, embedding cosine, detections
kept / lost / added (same label, IoU ≥ 0.5) and the largest score change, faces likewise,
OCR words kept / lost / added, captions identical.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402
from photos import face_photos, make_photos, phone_photos, sample_photos, text_phone_photos  # noqa: E402


def photo_set(d: Path, phone: int) -> list[Path]:
    paths = sample_photos(d / "samples") + face_photos(d / "faces") + make_photos(d / "p640", 32)
    return paths + (phone_photos(d / "phone", phone) + text_phone_photos(d / "phone_text") if phone else [])


def observe_all(paths: list[Path], *, workers: int, draft: bool) -> dict[str, dict[str, Any]]:
    """``{photo name: observation dict with embedding and caption}`` for every photo."""
    from oculi.engine import Engine
    from oculi.language.describe import describe

    eng = Engine()
    out: dict[str, dict[str, Any]] = {}
    if workers:
        from oculi.perception.pool import PerceptionPool

        loaded = [eng.load_image(p, draft=draft) for p in paths]
        with PerceptionPool(eng.settings, workers=workers) as pool:
            results = list(pool.observe(loaded))
        obs_list = list(zip(paths, results))
    else:
        obs_list = [(p, eng.observe(eng.load_image(p, draft=draft) if draft else p)) for p in paths]
    for p, obs in obs_list:
        if isinstance(obs, Exception):
            raise obs
        d = obs.to_dict(include_embedding=True)
        d["caption"] = describe(obs)
        out[f"{p.parent.name}/{p.name}"] = d
    return out


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match(ref: list[dict], new: list[dict]) -> tuple[int, int, int, float]:
    """(kept, lost, added, largest score change of the kept) matching by label and IoU >= 0.5."""
    used: set[int] = set()
    kept, dscore = 0, 0.0
    for r in ref:
        best, best_iou = None, 0.5
        for j, n in enumerate(new):
            if j not in used and n["label"] == r["label"] and _iou(r["box"], n["box"]) >= best_iou:
                best, best_iou = j, _iou(r["box"], n["box"])
        if best is not None:
            used.add(best)
            kept += 1
            dscore = max(dscore, abs(new[best]["score"] - r["score"]))
    return kept, len(ref) - kept, len(new) - len(used), dscore


def _words(obs: dict) -> list[str]:
    return " ".join(t["text"] for t in obs["text"]).split()


def compare(ref: dict[str, dict], new: dict[str, dict]) -> list[tuple[str, str]]:
    names = sorted(set(ref) & set(new))
    top1 = sum(ref[n]["labels"][0]["name"] == new[n]["labels"][0]["name"] for n in names)
    top5 = np.mean([len({x["name"] for x in ref[n]["labels"]} & {x["name"] for x in new[n]["labels"]}) / 5
                    for n in names])
    cos = [float(np.dot(ref[n]["embedding"], new[n]["embedding"])) for n in names]
    det = np.zeros(3, int)
    faces = np.zeros(3, int)
    ddet = dface = 0.0
    words = np.zeros(3, int)
    changed: list[str] = []
    for n in names:
        for source, acc in (("detector", det), ("faces", faces)):
            r = [o for o in ref[n]["objects"] if o.get("source", "detector") == source]
            x = [o for o in new[n]["objects"] if o.get("source", "detector") == source]
            k, lost, added, ds = _match(r, x)
            acc += (k, lost, added)
            if source == "detector":
                ddet = max(ddet, ds)
            else:
                dface = max(dface, ds)
        rw, nw = _words(ref[n]), _words(new[n])
        common = sum(min(rw.count(w), nw.count(w)) for w in set(rw))
        words += (common, len(rw) - common, len(nw) - common)
        if rw != nw:
            lost = list((Counter(rw) - Counter(nw)).elements())
            added = list((Counter(nw) - Counter(rw)).elements())
            changed.append(f"{n}: words {lost} -> {added}")
        if ref[n]["caption"] != new[n]["caption"]:
            changed.append(f"{n}: {ref[n]['caption']!r} -> {new[n]['caption']!r}")
    captions = sum(ref[n]["caption"] == new[n]["caption"] for n in names)
    return [
        ("photos compared", f"{len(names)}"),
        ("classifier top-1 agreement", f"{top1}/{len(names)}"),
        ("classifier top-5 overlap (mean)", f"{top5:.3f}"),
        ("embedding cosine (min / mean)", f"{min(cos):.4f} / {np.mean(cos):.4f}"),
        ("detections kept / lost / added", f"{det[0]} / {det[1]} / {det[2]}"),
        ("largest detection score change", f"{ddet:.4f}"),
        ("faces kept / lost / added", f"{faces[0]} / {faces[1]} / {faces[2]}"),
        ("largest face score change", f"{dface:.4f}"),
        ("OCR words kept / lost / added", f"{words[0]} / {words[1]} / {words[2]}"),
        ("captions identical", f"{captions}/{len(names)}"),
        ("changed text or caption", "<br>".join(changed) or "none"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path, help="write this configuration's outputs here")
    g.add_argument("--against", type=Path, help="compare this configuration with outputs saved before")
    ap.add_argument("--phone", type=int, default=0, help="add this many 12 MP phone-style JPEGs")
    ap.add_argument("--workers", type=int, default=0, help="observe through a pool of N workers")
    ap.add_argument("--draft", action="store_true", help="decode large JPEGs at reduced (draft) size")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="oculi-compare-") as tmp:
        outputs = observe_all(photo_set(Path(tmp), args.phone), workers=args.workers, draft=args.draft)
    if args.save:
        args.save.write_text(json.dumps(outputs))
        print(f"saved the outputs of {len(outputs)} photos to {args.save}")
        return
    ref = json.loads(args.against.read_text())
    print(f"Machine: {machine()}\n")
    print(f"| measure (against {args.against.name}) | result |")
    print("|---|---|")
    for k, v in compare(ref, outputs):
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
