"""Accuracy of `oculi ask` (built-in model) over a written question set on the scikit-image photos.

Question file: JSON lines ``{"image": NAME, "question": TEXT, "accept": [...]}``. An answer is
right when: ``"yes"`` — it starts with "Yes"; ``"no"`` — it starts with "No"/"Probably not"/"0";
``"abstain"`` — the model said it cannot tell (``answerable`` false); any other string — it
occurs in the answer (case-insensitive). Abstaining on a question that has an answer counts as
wrong, and so does answering one that should be abstained on.

Run: `.venv/bin/python benchmarks/eval_vqa.py [--questions evaluation/vqa_skimage.jsonl]`
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=Path, default=Path(__file__).resolve().parent.parent / "evaluation" / "vqa_skimage.jsonl")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    from oculi import Engine
    from oculi.demo import sample_images

    items = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    eng = Engine()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {p.stem: p for p in sample_images(Path(tmp))}
        obs_cache = {}
        by_kind: dict[str, list[bool]] = defaultdict(list)
        for it in items:
            if it["image"] not in obs_cache:
                obs_cache[it["image"]] = eng.load_image(paths[it["image"]])
            ans = eng.ask(obs_cache[it["image"]], it["question"]).to_dict()
            ok = correct(ans, it["accept"])
            expect = "abstain" if it["accept"] == ["abstain"] else ans["kind"]
            by_kind[expect].append(ok)
            if args.verbose or not ok:
                print(f"{'ok ' if ok else 'BAD'} [{it['image']}] {it['question']} -> {ans['answer']}  (accept {it['accept']})")
    total = [x for v in by_kind.values() for x in v]
    print()
    print("| question kind | right | n | accuracy |")
    print("|---|---|---|---|")
    for k, v in sorted(by_kind.items()):
        print(f"| {k} | {sum(v)} | {len(v)} | {sum(v) / len(v):.0%} |")
    print(f"| **all** | {sum(total)} | {len(total)} | **{sum(total) / len(total):.0%}** |")


if __name__ == "__main__":
    main()
