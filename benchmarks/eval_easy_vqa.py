"""easy-VQA (the ``easy-vqa==1.0`` PyPI package): train an answer model with ``oculi train vqa``
on its train split and measure VQA accuracy on its test split with ``oculi eval vqa``.

Prints a Markdown table naming the machine: held-out accuracy during training (10 % of the
train images), test accuracy overall and per answer type, times; and, as the anchor, the
built-in model (no training) on the first ``--anchor`` test questions.

Image features are cached under the home (``--home``, default ``out/easy-vqa-home``), so a
second run skips the image pass (about 4 minutes for the 5,000 images on 2 cores).

Run: `.venv/bin/python benchmarks/eval_easy_vqa.py [--epochs 8] [--anchor 300]`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=Path("out/easy-vqa-home"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--anchor", type=int, default=300, help="test questions the untrained built-in model answers (0: none)")
    args = ap.parse_args()

    import easy_vqa

    from machine import machine
    from oculi import Engine, Settings
    from oculi.tasks.evaluate_vqa import evaluate_vqa
    from oculi.tasks.train.data import read_vqa
    from oculi.tasks.train.loop import FitConfig
    from oculi.tasks.train.vqa import DEFAULT_CONFIG, train_vqa
    from oculi.backends.trained import TrainedAnswerModel
    from oculi.store.trained import TrainedStore

    data = Path(easy_vqa.__file__).parent / "data"
    eng = Engine(Settings(home=args.home.resolve(), assets_dir=Settings().assets_dir))
    t0 = time.perf_counter()
    rep = train_vqa(eng, data, "easy-vqa", split="train", config=FitConfig(**{**DEFAULT_CONFIG.__dict__, "epochs": args.epochs}))
    t_train = time.perf_counter() - t0
    test = read_vqa(data, split="test")
    model = TrainedAnswerModel(TrainedStore.for_home(eng.settings.home).load("easy-vqa"), eng)
    t0 = time.perf_counter()
    ev = evaluate_vqa(test.items, ask_many=model.answer_items, model="easy-vqa (trained)")
    t_test = time.perf_counter() - t0
    rows = [("oculi train vqa → eval on test", ev)]
    if args.anchor:
        sub = test.items[: args.anchor]
        rows.append((f"built-in model, untrained (first {len(sub)} test questions)",
                     evaluate_vqa(sub, ask=lambda img, q: eng.ask(img, q).answer, model="builtin")))
    print(f"\neasy-VQA (easy-vqa==1.0), {machine()}\n")
    print(f"Trained on {rep.n_train + rep.n_test} train-split questions ({rep.n_train} used, {rep.n_test} on 10 % held-out images): "
          f"held-out accuracy {rep.accuracy:.1%}, train accuracy {rep.train_accuracy:.1%}; {args.epochs} epochs; "
          f"training incl. image features {t_train:.0f} s; {len(test.items)} test questions answered in {t_test:.0f} s.\n")
    print("| model | questions | accuracy | yes/no | other (colour, shape) |")
    print("|---|---|---|---|---|")
    for label, e in rows:
        bt = e.by_type()
        print(f"| {label} | {len(e.results)} | **{e.accuracy:.1%}** | {bt.get('yes/no', {}).get('accuracy', 0):.1%} | "
              f"{bt.get('other', {}).get('accuracy', 0):.1%} |")
    print("| published baseline: easy-VQA-keras, 8 epochs (Zhou & Wang, victorzhou.com/blog/easy-vqa) | 9,599 | 93.8 % (test split used as validation) | | |")


if __name__ == "__main__":
    os.environ.setdefault("OCULI_LOG", "warning")
    main()
