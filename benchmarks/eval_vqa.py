"""Accuracy of `oculi ask` (built-in model) over a written question set on photos and scenes.

Question files (JSON lines ``{"image": NAME, "question": TEXT, "accept": [...], "group": G}``):
``evaluation/vqa_skimage.jsonl`` (50 questions on 11 scikit-image photos) and
``evaluation/vqa_vocab.jsonl`` (categories, clothing and colours on scikit-image and
scikit-learn photos and the generated scenes of ``oculi.scenes``). Images are named without
extension. Results are grouped by ``group`` when given, else by the answer's kind. An answer is
right when: ``"yes"`` — it starts with "Yes"; ``"no"`` — it starts with "No"/"Probably not"/"0";
``"abstain"`` — the model said it cannot tell (``answerable`` false); any other string — it
occurs in the answer (case-insensitive). Abstaining on a question that has an answer counts as
wrong, and so does answering one that should be abstained on.

Run: `.venv/bin/python benchmarks/eval_vqa.py [--questions FILE ...] [--images DIR]`
(default: both files; ``--images`` reuses images written before, e.g. to run another
checkout of oculi on exactly the same pixels).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path


def correct(ans: dict, accept: list[str]) -> bool:
    text = ans["answer"].lower()
    for a in accept:
        if a == "abstain" and not ans["answerable"]:
            return True
        if a == "yes" and text.startswith("yes"):
            return True
        if a == "no" and text.startswith(("no", "probably not", "0")):
            return True
        if a not in ("yes", "no", "abstain") and ans["answerable"] and a.lower() in text:
            return True
    return False


def run(eng, items: list[dict], paths: dict[str, Path], verbose: bool) -> dict[str, list[bool]]:
    obs_cache = {}
    by_group: dict[str, list[bool]] = defaultdict(list)
    for it in items:
        if it["image"] not in obs_cache:
            obs_cache[it["image"]] = eng.load_image(paths[it["image"]])
        ans = eng.ask(obs_cache[it["image"]], it["question"]).to_dict()
        ok = correct(ans, it["accept"])
        group = it.get("group") or ("abstain" if it["accept"] == ["abstain"] else ans["kind"])
        by_group[group].append(ok)
        if verbose or not ok:
            print(f"{'ok ' if ok else 'BAD'} [{it['image']}] {it['question']} -> {ans['answer']}  (accept {it['accept']})")
    return by_group


def table(name: str, by_group: dict[str, list[bool]]) -> None:
    total = [x for v in by_group.values() for x in v]
    print()
    print(f"**{name}**")
    print()
    print("| question kind | right | n | accuracy |")
    print("|---|---|---|---|")
    for k, v in sorted(by_group.items()):
        print(f"| {k} | {sum(v)} | {len(v)} | {sum(v) / len(v):.0%} |")
    print(f"| **all** | {sum(total)} | {len(total)} | **{sum(total) / len(total):.0%}** |")


def main() -> None:
    evaluation = Path(__file__).resolve().parent.parent / "evaluation"
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=Path, nargs="+",
                    default=[evaluation / "vqa_skimage.jsonl", evaluation / "vqa_vocab.jsonl"])
    ap.add_argument("--images", type=Path, default=None, help="a folder of NAME.png images written before")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    from oculi import Engine

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine

    eng = Engine()
    with tempfile.TemporaryDirectory() as tmp:
        if args.images is not None:
            paths = {p.stem: p for p in args.images.glob("*.png")}
        else:
            from oculi.scenes import write_vqa_images

            paths = write_vqa_images(Path(tmp))
        print(f"Machine: {machine()}")
        for qfile in args.questions:
            items = [json.loads(line) for line in qfile.read_text().splitlines() if line.strip()]
            table(f"{qfile.name}: {len(items)} questions", run(eng, items, paths, args.verbose))


if __name__ == "__main__":
    main()
