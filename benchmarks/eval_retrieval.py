"""Retrieval quality on the shipped query set (issue 3): Recall@1/5/10 and MRR.

Writes the evaluation images (scikit-image photos + generated ones) and query images into a
temporary folder, indexes them with the real models into a temporary collection, runs
``tests/data/retrieval/queries.jsonl`` through ``oculi eval retrieval`` logic and prints a
Markdown table (per query and overall).

Run: ``.venv/bin/python benchmarks/eval_retrieval.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUERIES = REPO / "tests" / "data" / "retrieval" / "queries.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="Where to write images and the collection (default: a temp dir).")
    args = ap.parse_args()
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.store import open_store
    from oculi.library import Library
    from oculi.tasks.evaluate import write_eval_set

    out = Path(args.out or tempfile.mkdtemp(prefix="oculi-eval-"))
    images, _ = write_eval_set(out)
    shutil.copy(QUERIES, out / "queries.jsonl")
    eng = Engine(Settings())
    store = open_store(Settings(home=out / "home"))
    if store.exists("eval"):
        store.drop_collection("eval")
    lib = Library(eng, store)
    rep = lib.index([images], "eval")
    if rep.failed:
        print(f"failed to index: {rep.failed}", file=sys.stderr)
    ev = lib.evaluate_retrieval("eval", out / "queries.jsonl")
    print("| query | relevant | first relevant rank | top result |")
    print("|---|---|---|---|")
    for q in ev.queries:
        name = q.query if q.query else f"[image] {Path(q.image or '').name}"
        print(f"| {name} | {', '.join(q.relevant)} | {q.ranks[0] if q.ranks else '-'} | {Path(q.top[0]).name if q.top else '-'} |")
    rc = ev.recall
    print(f"\n**{len(ev.queries)} queries, {rep.items_total} images: Recall@1 {rc[1]:.3f}, Recall@5 {rc[5]:.3f}, "
          f"Recall@10 {rc[10]:.3f}, MRR {ev.mrr:.3f}**")
    if ev.unresolved:
        print(f"unresolved: {ev.unresolved}", file=sys.stderr)


if __name__ == "__main__":
    main()
