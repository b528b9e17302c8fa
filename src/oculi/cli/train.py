"""``oculi train``: classifier heads, retrieval adapters, answer models and LoRA adapters from
the user's data; ``oculi train list|check|remove`` manage what was trained.

Training shows progress, and Ctrl-C (or SIGTERM) stops it after the current step with the
checkpoint saved (exit 130); the same command with ``--resume`` goes on from there.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import typer

from oculi.cli.common import console, err_console, get_engine, get_settings, handle_errors, print_json, shown
from oculi.core.types import SCHEMA_VERSION

train_app = typer.Typer(help="Adapt oculi to your data: train a classifier head, a retrieval adapter, an answer model or a LoRA adapter.",
                        no_args_is_help=True)

NAME_OPT = typer.Option(..., "--name", "-n", help="Name of the trained model (a new version if it exists).")
RESUME_OPT = typer.Option(False, "--resume", help="Continue an interrupted run of the same name and data.")
JSON_OPT = typer.Option(False, "--json", help="Print the report as JSON.")
EPOCHS_OPT = typer.Option(None, "--epochs", min=1, max=10000, help="Training epochs (default: the trainer's).")
HOLDOUT_OPT = typer.Option(0.2, "--holdout", min=0.01, max=0.9, help="Share of the data held out for measuring.")


@contextlib.contextmanager
def _running(as_json: bool) -> Iterator[tuple[Callable[[Any], None], Callable[[], bool]]]:
    """A Rich progress bar for ``TrainProgress`` reports and the Ctrl-C stopper."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from oculi.cli.collections import _Stopper

    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[detail]}"), TimeRemainingColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True, disable=not err_console.is_terminal)
    tasks: dict[str, Any] = {}
    labels = {"features": "reading images", "texts": "embedding texts", "training": "training", "evaluating": "measuring"}

    def on_progress(p: Any) -> None:
        if p.phase not in tasks:
            tasks[p.phase] = progress.add_task(labels.get(p.phase, p.phase), total=p.total or None, detail="")
        progress.update(tasks[p.phase], completed=p.done, total=p.total or None, detail=p.detail)

    with _Stopper() as stopper, progress:
        yield on_progress, stopper.event.is_set


def _config(epochs: Optional[int], default: Any) -> Any:
    from dataclasses import replace

    return default if epochs is None else replace(default, epochs=epochs)


def _problems(problems: list[str]) -> None:
    for p in problems[:20]:
        err_console.print(f"[yellow]skipped:[/] {shown(p)}", highlight=False)
    if len(problems) > 20:
        err_console.print(f"[yellow]… and {len(problems) - 20} more (use --json for all)[/]")


@train_app.command("classifier")
@handle_errors
def train_classifier(
    data: Path = typer.Argument(..., help="A folder with one sub-folder of images per class."),
    name: str = NAME_OPT,
    title: Optional[str] = typer.Option(None, "--title", help='What the head tells, in words, e.g. "defect type" (default: the name).'),
    hidden: Optional[List[int]] = typer.Option(None, "--hidden", help="Hidden layer width (repeatable); default none: logistic regression."),
    epochs: Optional[int] = EPOCHS_OPT,
    holdout: float = HOLDOUT_OPT,
    resume: bool = RESUME_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """A classifier head over the visual features; its verdict then joins every caption, answer,
    classification and search document ("defect type: crack")."""
    from oculi.tasks.train.classifier import DEFAULT_CONFIG
    from oculi.tasks.train.classifier import train_classifier as run

    with _running(as_json) as (on_progress, should_stop):
        rep = run(get_engine(), data, name, title=title, hidden=hidden or (), config=_config(epochs, DEFAULT_CONFIG),
                  test_fraction=holdout, resume=resume, progress=on_progress, should_stop=should_stop)
    if as_json:
        print_json(rep.to_dict())
        return
    _problems(rep.problems)
    from rich.table import Table

    t = Table("class", "precision", "recall", "F1", "held-out images", title=f"{rep.name} v{rep.version}")
    for c, s in rep.test["per_class"].items():
        t.add_row(shown(c), f"{s['precision']:.2f}", f"{s['recall']:.2f}", f"{s['f1']:.2f}", str(s["support"]))
    console.print(t)
    console.print(f"[bold]held-out accuracy {rep.accuracy:.1%}[/] ({rep.n_test} images; trained on {rep.n_train}, "
                  f"train accuracy {rep.train_accuracy:.1%}); confusion matrix: {shown(rep.confusion_png)}", highlight=False)


@train_app.command("adapter")
@handle_errors
def train_adapter(
    pairs: Path = typer.Argument(..., help="Image-caption pairs: a CSV with header image,caption, or a COCO-captions JSON."),
    name: str = NAME_OPT,
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the image paths are relative to (default: the file's folder)."),
    epochs: Optional[int] = EPOCHS_OPT,
    holdout: float = HOLDOUT_OPT,
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Skip measuring the built-in route (it perceives every held-out image)."),
    resume: bool = RESUME_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """A retrieval adapter: text queries projected into the visual feature space, learnt from your
    captions; Recall@K before and after on held-out images. Use it with `oculi search --adapter NAME`."""
    from oculi.tasks.train.adapter import DEFAULT_CONFIG
    from oculi.training import train_adapter as run

    with _running(as_json) as (on_progress, should_stop):
        rep = run(pairs, name, engine=get_engine(), images_dir=images, config=_config(epochs, DEFAULT_CONFIG),
                  test_fraction=holdout, baseline=not no_baseline, resume=resume, progress=on_progress, should_stop=should_stop)
    if as_json:
        print_json(rep.to_dict())
        return
    _problems(rep.problems)
    from rich.table import Table

    t = Table("text → image, held-out", "Recall@1", "Recall@5", "Recall@10", "MRR",
              title=f"{rep.name} v{rep.version}: {rep.n_test_queries} captions over {rep.n_test_images} held-out images")
    for label, s in (("before (built-in caption documents)", rep.before), ("after (adapter)", rep.after)):
        if s:
            t.add_row(label, *(f"{s[k]:.3f}" for k in ("recall@1", "recall@5", "recall@10", "mrr")))
    console.print(t)
    console.print(f"use it: oculi search \"...\" -c COLLECTION --adapter {rep.name}", highlight=False, markup=False)


@train_app.command("vqa")
@handle_errors
def train_vqa(
    data: Path = typer.Argument(..., help="easy-VQA folder, a VQAv2 questions JSON (with --annotations, --images) or a .jsonl file."),
    name: str = NAME_OPT,
    split: Optional[str] = typer.Option(None, "--split", help="easy-VQA data folder: train or test."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="VQAv2 annotations JSON."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of the images (VQAv2; JSON Lines: default its folder)."),
    hidden: Optional[List[int]] = typer.Option(None, "--hidden", help="Hidden layer width (repeatable; default 512 256)."),
    epochs: Optional[int] = EPOCHS_OPT,
    holdout: float = typer.Option(0.1, "--holdout", min=0.01, max=0.9, help="Share of the images held out for measuring."),
    resume: bool = RESUME_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """An answer model: image features + question embedding → one of the training answers. Ask it
    with `oculi eval vqa DATA --model NAME`."""
    from oculi.tasks.train.vqa import DEFAULT_CONFIG, DEFAULT_HIDDEN
    from oculi.training import train_vqa as run

    with _running(as_json) as (on_progress, should_stop):
        rep = run(data, name, engine=get_engine(), split=split, annotations=annotations, images_dir=images,
                  hidden=hidden or DEFAULT_HIDDEN, config=_config(epochs, DEFAULT_CONFIG), test_fraction=holdout,
                  resume=resume, progress=on_progress, should_stop=should_stop)
    if as_json:
        print_json(rep.to_dict())
        return
    _problems(rep.problems)
    console.print(f"[bold]{rep.name} v{rep.version}[/]: {len(rep.answers)} answers; held-out accuracy [bold]{rep.accuracy:.1%}[/] "
                  f"({rep.n_test} questions on held-out images; train accuracy {rep.train_accuracy:.1%} on {rep.n_train})", highlight=False)


@train_app.command("lora")
@handle_errors
def train_lora(
    data: Path = typer.Argument(..., help="easy-VQA folder, a VQAv2 questions JSON (with --annotations, --images) or a .jsonl file."),
    name: str = NAME_OPT,
    base: Path = typer.Option(..., "--base", help="The transformers model folder to adapt (SmolVLM, LLaVA, Qwen2-VL, ...)."),
    split: Optional[str] = typer.Option(None, "--split", help="easy-VQA data folder: train or test."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="VQAv2 annotations JSON."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of the images."),
    rank: int = typer.Option(8, "--rank", min=1, max=512, help="LoRA rank."),
    alpha: int = typer.Option(16, "--alpha", min=1, help="LoRA alpha (scale = alpha / rank)."),
    target: Optional[List[str]] = typer.Option(None, "--target", help="Module names to adapt (repeatable; default the attention projections)."),
    epochs: Optional[int] = EPOCHS_OPT,
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 2e-4)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when there is a GPU), cpu, cuda, cuda:1 ..."),
    resume: bool = RESUME_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """A LoRA adapter for a transformers vision-language model (peft), trained on your questions
    and answers; exact-match accuracy with and without it."""
    from dataclasses import replace

    from oculi.tasks.train.lora import DEFAULT_CONFIG, DEFAULT_TARGETS
    from oculi.training import train_lora as run

    cfg = _config(epochs, DEFAULT_CONFIG)
    cfg = replace(cfg, lr=lr) if lr else cfg
    with _running(as_json) as (on_progress, should_stop):
        rep = run(data, name, base=base, engine=get_engine(), split=split, annotations=annotations, images_dir=images, rank=rank,
                  alpha=alpha, target_modules=target or DEFAULT_TARGETS, config=cfg, device=device, resume=resume,
                  progress=on_progress, should_stop=should_stop)
    if as_json:
        print_json(rep.to_dict())
        return
    _problems(rep.problems)
    console.print(f"[bold]{rep.name} v{rep.version}[/] on {rep.device}: exact-match accuracy on the {rep.evaluated_on} "
                  f"{rep.before:.1%} → [bold]{rep.after:.1%}[/] ({rep.n_eval} questions); loss {rep.losses[0]:.3f} → {rep.losses[-1]:.3f}",
                  highlight=False)


@train_app.command("list")
@handle_errors
def train_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The trained models: kind, newest version, classes, measured quality."""
    from oculi.store.trained import TrainedStore

    items = TrainedStore.for_home(get_settings().home).list()
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, "trained": [t.to_dict() for t in items]})
        return
    if not items:
        console.print("no trained models yet; train one with `oculi train classifier DIR --name NAME`")
        return
    from rich.table import Table

    t = Table("name", "kind", "version", "classes / answers", "quality")
    for it in items:
        m = it.manifest.get("metrics", {})
        quality = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items() if k in ("accuracy", "recall@1", "mrr", "final_loss"))
        classes = it.manifest.get("classes") or []
        t.add_row(it.name, it.manifest["kind"], f"v{it.version}", shown(", ".join(classes[:6]) + (" …" if len(classes) > 6 else "")), quality)
    console.print(t)


@train_app.command("check")
@handle_errors
def train_check(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Verify every version of every trained model against its checksums (exit 3 if one is damaged)."""
    from oculi.store.trained import TrainedStore

    states = TrainedStore.for_home(get_settings().home).check()
    bad = [s for s in states if s.state != "ok"]
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, "ok": not bad, "models": [s.to_dict() for s in states]})
    else:
        for s in states:
            colour = "green" if s.state == "ok" else "red"
            console.print(f"[{colour}]{s.state}[/] {shown(s.name)} v{s.version} ({s.kind}): {shown(s.detail)}", highlight=False)
        if not states:
            console.print("no trained models")
    if bad:
        raise typer.Exit(3)


@train_app.command("remove")
@handle_errors
def train_remove(
    name: str = typer.Argument(..., help="The trained model."),
    version: Optional[int] = typer.Option(None, "--version", help="Remove only this version."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a trained model (every version, or one)."""
    from oculi.store.trained import TrainedStore

    store = TrainedStore.for_home(get_settings().home)
    store.load(name, version, verify=False)  # unknown → NotFoundError listing the trained models
    if not yes:
        what = f"version {version} of {name!r}" if version else f"trained model {name!r} (every version)"
        typer.confirm(f"remove {what}?", abort=True, err=True)
    gone = store.remove(name, version)
    console.print(f"removed {shown(name)} " + ", ".join(f"v{v}" for v in gone), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``oculi train`` to the main app."""
    app.add_typer(train_app, name="train")
