"""``oculi inspect``: fit an inspector on good parts, inspect images with it; ``oculi eval inspect``.

    oculi inspect fit --good parts/good --name line-1 [--val parts/val] [--percentile 99]
    oculi inspect part1.png part2.png --name line-1 [--json] [--heatmaps out/]
    oculi eval inspect mvtec/ [--category bottle]

Exit codes: 0 done; 2 bad input (some images could not be inspected: the others are still
inspected and reported); 3 a model asset or the inspector is missing or damaged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

from oculi.cli.common import console, err_console, error, get_settings, handle_errors, print_json, shown
from oculi.core.types import SCHEMA_VERSION


class _ImagesByDefault(TyperGroup):
    """``oculi inspect IMAGE...`` runs the hidden ``run`` command; ``oculi inspect fit`` fits."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


inspect_app = typer.Typer(cls=_ImagesByDefault, no_args_is_help=True,
                          help="Industrial inspection: learn good parts (`fit`), then flag and locate defects: "
                               "`oculi inspect IMAGE... --name LINE`.")

NAME_OPT = typer.Option(..., "--name", "-n", help="The inspector (one per product line / camera view).")


@inspect_app.command("fit")
@handle_errors
def inspect_fit(
    good: Path = typer.Option(..., "--good", help="Folder of defect-free images (searched recursively)."),
    name: str = NAME_OPT,
    val: Optional[Path] = typer.Option(None, "--val", help="Held-out good images for the threshold (default: 20 % of --good)."),
    percentile: float = typer.Option(99.0, "--percentile", min=50.0, max=100.0, help="Threshold = this percentile of the held-out good scores."),
    classes: bool = typer.Option(False, "--classes", help="Each subfolder of --good is one product type: one inspector for all, "
                                 "each type with its own threshold; an image is scored as the type it looks like."),
    as_json: bool = typer.Option(False, "--json", help="Print the model card as JSON."),
) -> None:
    """Learn what good parts look like: a memory bank of patch features and a threshold
    calibrated on held-out good images only."""
    from oculi.cli.train import _running
    from oculi.tasks.inspect import fit_inspector

    with _running(as_json) as (on_progress, _):
        card = fit_inspector(good, name, settings=get_settings(), val_dir=val, percentile=percentile, progress=on_progress,
                             classes=classes)
    for s in card.skipped[:20]:
        err_console.print(f"[yellow]skipped:[/] {shown(s)}", highlight=False)
    for w in card.warnings:
        err_console.print(f"[yellow]warning:[/] {shown(w)}", highlight=False)
    if as_json:
        print_json({**card.to_dict(), "schema_version": SCHEMA_VERSION})
        return
    console.print(f"[bold]{shown(card.name)} v{card.version}[/]: {card.n_fit} good images in the memory bank "
                  f"({card.bank_size} of {card.patches_seen} patches kept), {card.threshold_statement()}; "
                  f"{card.fit_seconds:.1f} s", highlight=False)
    for c in card.classes or []:
        console.print(f"  type {shown(c['name'])}: {c['n_fit']} in the bank, threshold {c['threshold']:.3f} "
                      f"from {c['n_val']} held-out images", highlight=False)
    console.print(f"model card: {shown(Path(card.path) / 'card.md')}", highlight=False)


@inspect_app.command("run", hidden=True)
@handle_errors
def inspect_run(
    images: List[Path] = typer.Argument(..., help="Images to inspect."),
    name: str = NAME_OPT,
    heatmaps: Optional[Path] = typer.Option(None, "--heatmaps", help="Write a heat-map overlay PNG per image here."),
    as_json: bool = typer.Option(False, "--json", help='Print JSON ({"schema": "oculi.inspect/1", "results": [...]}).'),
) -> None:
    """Score each image against the inspector: pass/fail, defect regions, a one-line finding."""
    from oculi.cli.train import _running
    from oculi.tasks.inspect import SCHEMA, inspect_images

    errors: list[tuple[str, str]] = []
    with _running(as_json) as (on_progress, _):
        results = inspect_images(images, name, settings=get_settings(), progress=on_progress, heatmaps_dir=heatmaps, errors=errors)
    for label, msg in errors:
        error(msg if label in msg else f"{label}: {msg}")
    if as_json:
        print_json({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "model": name,
                    "results": [r.to_dict() for r in results], "errors": [{"path": p, "error": m} for p, m in errors]})
    else:
        for r in results:
            verdict = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            kind = f" ({shown(r.part_class)})" if r.part_class else ""
            console.print(f"{verdict} [bold]{shown(r.path)}[/]{kind}: {shown(r.finding)}", highlight=False)
            for reg in r.regions[1:4]:
                console.print(f"      also: {shown(reg.description)}, {reg.position}, box {list(reg.box)}", highlight=False)
            for w in r.warnings:
                err_console.print(f"[yellow]warning:[/] {shown(r.path)}: {shown(w)}", highlight=False)
            if r.heatmap_path:
                console.print(f"      heat-map: {shown(r.heatmap_path)}", highlight=False)
    if errors:
        raise typer.Exit(2)


def eval_inspect(
    data: Path = typer.Argument(..., help="An MVTec AD folder (<category>/train/good, test/<defect>, ground_truth/<defect>) or one category."),
    category: Optional[List[str]] = typer.Option(None, "--category", "-c", help="Only these categories (repeatable)."),
    max_train: Optional[int] = typer.Option(None, "--max-train", min=2, help="Fit on at most N train/good images per category."),
    one_model: bool = typer.Option(False, "--one-model", help="One inspector for all categories (each a product type, "
                                   "as `inspect fit --classes`) instead of one per category."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (schema oculi.eval-inspect/1)."),
) -> None:
    """Image and pixel AUROC of the inspector on MVTec-layout data (fitted in memory, nothing stored)."""
    from rich.table import Table

    from oculi.cli.train import _running
    from oculi.tasks.inspect.evaluate import evaluate_inspect

    with _running(as_json) as (on_progress, _):
        ev = evaluate_inspect(data, settings=get_settings(), categories=category or None, progress=on_progress, max_train=max_train,
                              one_model=one_model)
    if as_json:
        print_json({**ev.to_dict(), "schema_version": SCHEMA_VERSION})
        return
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    t = Table("category", "defect", "images", "image AUROC", "pixel AUROC", title=f"inspection quality: {shown(data)}")
    for c in ev.categories:
        for d, v in c.by_defect.items():
            t.add_row(shown(c.category), shown(d), str(v["n"]), fmt(v["image_auroc"]), fmt(v["pixel_auroc"]))
        t.add_row(f"[bold]{shown(c.category)}[/]", "[bold]all[/]", str(c.n_test), f"[bold]{fmt(c.image_auroc)}[/]", f"[bold]{fmt(c.pixel_auroc)}[/]")
    console.print(t)
    console.print(f"mean image AUROC [bold]{fmt(ev.mean('image_auroc'))}[/], pixel AUROC [bold]{fmt(ev.mean('pixel_auroc'))}[/] "
                  f"over {len(ev.categories)} categor{'y' if len(ev.categories) == 1 else 'ies'}"
                  + (", one model for all" if ev.one_model else ""), highlight=False)
    if ev.one_model:
        console.print("test images taken for their own category: "
                      + ", ".join(f"{shown(c.category)} {fmt(c.type_accuracy)}" for c in ev.categories), highlight=False)
    for c in ev.categories:
        for p in c.problems[:5]:
            err_console.print(f"[yellow]{shown(c.category)}:[/] {shown(p)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``oculi inspect`` and ``oculi eval inspect``."""
    from oculi.cli.collections import eval_app

    app.add_typer(inspect_app, name="inspect")
    eval_app.command("inspect")(handle_errors(eval_inspect))
