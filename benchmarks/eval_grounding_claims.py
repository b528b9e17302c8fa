"""Precision and recall of the report claim check on hand-labelled narrator sentences.

The set: ``tests/data/grounding_claims.json`` — sentences a narrator model might write about five
reports built from real observations of scikit-image photos (a cat with a record about a dog,
a coffee cup, an inspection of two parts with one failing, a medical report of the astronaut,
an incident with footage events), each labelled *supported* (a faithful paraphrase) or not (a
claim the evidence does not carry: "The part shows signs of corrosion", "The patient appears
healthy", "No one was present at the gate"; a few recombine evidence words into a false claim).

Each sentence is handed to ``build_report`` as the narrator's whole text; it is *kept* when it
becomes the summary. The check is scored as a detector of unsupported sentences: precision =
dropped and unsupported / dropped, recall = dropped and unsupported / unsupported; "supported
kept" is the share of faithful sentences that survive. Variants: the grounding check alone (the
old behaviour), words only (no sentence encoder), the shipped check (words + similarity floor),
and the similarity alone at several thresholds.

Run: ``.venv/bin/python benchmarks/eval_grounding_claims.py``
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from machine import machine  # noqa: E402


def _auroc(pos: list[float], neg: list[float]) -> float:
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in pos for n in neg]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def main() -> None:
    from oculi.config import Settings
    from oculi.demo import sample_images
    from oculi.engine import Engine
    from oculi.store.lance import LanceStore
    from oculi.tasks.footage.query import find_events
    from oculi.tasks.report.build import report_claim_evidence
    from oculi.tasks.report.claims import SUPPORT_THRESHOLD, claim_problems
    from oculi.tasks.report.grounding import sentence_problems
    from tests.footage_records import fill_collection
    from tests.grounding_claims import judge, load_scenarios, precision_recall

    tmp = Path(tempfile.mkdtemp())
    sample_images(tmp / "samples")
    coll = LanceStore(tmp / "c").create_collection("footage")
    fill_collection(coll)
    eng = Engine(Settings())
    eng.warmup()
    scenarios = load_scenarios(eng, tmp / "samples", find_events(coll, camera="main gate"))
    rows = []  # (supported, grounding ok, words ok, similarity, set, words + verdicts ok)
    for sc in scenarios:
        rep = sc.report()
        words = report_claim_evidence(rep, rep.evidence_vocabulary)  # no encoder
        words.verdicts = None  # not known: the verdict rule is off
        verdicts = report_claim_evidence(rep, rep.evidence_vocabulary)
        ev = report_claim_evidence(rep, rep.evidence_vocabulary, eng.embed_texts)
        for s in sc.sentences:
            t = s["text"]
            rows.append((bool(s["supported"]), not sentence_problems(t, rep.evidence_vocabulary), not claim_problems(t, words),
                         ev.similarity(t), s["set"], not claim_problems(t, verdicts)))
    sets = [r[4] for r in rows]

    def score(kept: list[bool], which: str) -> dict[str, float]:
        return precision_recall([("", r[0], k) for r, k in zip(rows, kept) if which in ("all", r[4])])

    t0 = time.perf_counter()
    shipped = [r for sc in scenarios for r in judge(sc, embed=eng.embed_texts)]
    per_sentence_ms = (time.perf_counter() - t0) / len(shipped) * 1000
    variants = [("grounding check only (numbers, labels, names, quotes)", [g for _, g, _, _, _, _ in rows]),
                ("+ words (lemmas, WordNet kinds, report vocabulary, record words attributed, denials)", [g and w for _, g, w, _, _, _ in rows]),
                ("+ words + verdicts, no encoder", [g and v for _, g, _, _, _, v in rows]),
                (f"+ words + verdicts + similarity ≥ {SUPPORT_THRESHOLD} for sentences without an evidence word (shipped; end to end)", [k for _, _, k in shipped])]
    for thr in (0.3, 0.4, 0.5, 0.6):
        variants.append((f"similarity ≥ {thr} alone (+ grounding check)", [g and s >= thr for _, g, _, s, _, _ in rows]))
    print(f"Claim check on labelled narrator sentences; {machine()}\n")
    heads = [w for w in ("development", "held-out") if w in sets]
    counts = " | ".join(f"{w}: {sum(1 for r in rows if r[4] == w)} ({sum(1 for r in rows if r[4] == w and not r[0])} unsupported)"
                        for w in heads)
    print(f"Sentences: {counts}. Cells: precision / recall / supported kept.\n")
    print("| check | " + " | ".join(heads) + " | all |")
    print("|---|" + "---:|" * (len(heads) + 1))
    for name, kept in variants:
        cells = []
        for w in heads + ["all"]:
            m = score(kept, w)
            cells.append(f"{m['precision']:.2f} / {m['recall']:.2f} / {m['supported_kept']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    sims_pos = [r[3] for r in rows if r[0]]
    sims_neg = [r[3] for r in rows if not r[0]]
    print(f"\nSimilarity to the nearest evidence statement: AUROC {_auroc(sims_pos, sims_neg):.2f} "
          f"(supported {min(sims_pos):.2f}–{max(sims_pos):.2f}, unsupported {min(sims_neg):.2f}–{max(sims_neg):.2f}).")
    print(f"Building a report around one narrator sentence and checking it: {per_sentence_ms:.0f} ms.")
    missed = [t for t, sup, kept in shipped if not sup and kept]
    lost = [t for t, sup, kept in shipped if sup and not kept]
    print("\nMissed (unsupported, kept): " + "; ".join(missed))
    print("Lost (supported, dropped): " + "; ".join(lost))


if __name__ == "__main__":
    main()
