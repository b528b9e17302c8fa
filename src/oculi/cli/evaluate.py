"""``oculi eval vqa`` and ``oculi eval captions`` (``eval retrieval`` lives with the collections)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oculi.cli.common import console, get_engine, handle_errors, print_json, shown

MODEL_OPT = typer.Option(None, "--model", "-m", help="A trained answer model (oculi train vqa) or a configured model; default: what serves the task.")
LIMIT_OPT = typer.Option(None, "--limit", min=1, help="Only the first N questions / images.")
JSON_OPT = typer.Option(False, "--json", help="Print JSON (with --results: every answer).")
RESULTS_OPT = typer.Option(False, "--results", help="With --json: include each question's or image's result.")


def eval_vqa(
    data: Path = typer.Argument(..., help="easy-VQA folder, a VQAv2 questions JSON (with --annotations, --images) or a .jsonl file."),
    model: Optional[str] = MODEL_OPT,
    split: Optional[str] = typer.Option(None, "--split", help="easy-VQA data folder: train or test."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="VQAv2 annotations JSON."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of the images (VQAv2)."),
    limit: Optional[int] = LIMIT_OPT,
    as_json: bool = JSON_OPT,
    results: bool = RESULTS_OPT,
) -> None:
    """VQA accuracy (the VQA challenge's metric) of a model's answers."""
    from oculi.cli.train import _problems, _running
    from oculi.training import evaluate_vqa

    with _running(as_json) as (on_progress, should_stop):
        ev = evaluate_vqa(data, model=model, engine=get_engine(), split=split, annotations=annotations, images_dir=images,
                          limit=limit, progress=on_progress, should_stop=should_stop)
    if as_json:
        print_json(ev.to_dict(with_results=results))
        return
    _problems(ev.problems)
    by = ", ".join(f"{k} {v['accuracy']:.1%} ({v['n']})" for k, v in ev.by_type().items())
    console.print(f"[bold]{shown(ev.model)}[/]: VQA accuracy [bold]{ev.accuracy:.1%}[/] over {len(ev.results)} questions ({by}); "
                  f"{ev.seconds:.1f} s", highlight=False)


def eval_captions(
    pairs: Path = typer.Argument(..., help="Reference captions: a CSV with header image,caption, or a COCO-captions JSON."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A configured model; default: what serves caption."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the image paths are relative to."),
    limit: Optional[int] = LIMIT_OPT,
    as_json: bool = JSON_OPT,
    results: bool = RESULTS_OPT,
) -> None:
    """BLEU-1..4 and CIDEr (the COCO caption evaluation's scorers) of a model's captions."""
    from oculi.cli.train import _problems, _running
    from oculi.training import evaluate_captions

    with _running(as_json) as (on_progress, should_stop):
        ev = evaluate_captions(pairs, model=model, engine=get_engine(), images_dir=images, limit=limit,
                               progress=on_progress, should_stop=should_stop)
    if as_json:
        print_json(ev.to_dict(with_results=results))
        return
    _problems(ev.problems)
    s = ev.scores
    console.print(f"[bold]{shown(ev.model)}[/] on {len(ev.captions)} images: BLEU-4 [bold]{s.get('bleu_4', 0):.3f}[/], "
                  f"CIDEr [bold]{s.get('cider', 0):.3f}[/] (BLEU-1 {s.get('bleu_1', 0):.3f}); {ev.seconds:.1f} s"
                  + (f"; {len(ev.errors)} image(s) failed" if ev.errors else ""), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``eval vqa`` and ``eval captions`` to the ``oculi eval`` group."""
    from oculi.cli.collections import eval_app

    eval_app.command("vqa")(handle_errors(eval_vqa))
    eval_app.command("captions")(handle_errors(eval_captions))
