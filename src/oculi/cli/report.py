"""``oculi report``: images + records → an inspection, incident, medical or general report.

``oculi report --images DIR_OR_FILE... [--records FILE] --kind KIND --format FMT -o FILE``
writes the report; ``oculi report footage`` (``oculi.cli.footage``) writes a camera's day.
Exit codes: 0 written; 2 bad input (no readable image, records that do not parse, an unknown
kind, format or encoding, a broken template); 3 a model asset is missing; 4 an unknown or
unusable --model.
"""

from __future__ import annotations

import glob
from datetime import date
from pathlib import Path
from typing import Any, List, Optional

import typer

from oculi.cli.common import console, err_console, get_engine, get_settings, handle_errors, print_json, shown
from oculi.core.errors import ConfigError, InputError

report_app = typer.Typer(help="Write reports: `oculi report --images ...` for images and records, "
                              "`oculi report footage` for a camera's day.", invoke_without_command=True)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}


def expand_images(specs: list[str]) -> list[str]:
    """Files as given, a folder's images (sorted), or a glob's matches; a spec matching nothing
    is kept so the report names it as missing."""
    out: list[str] = []
    for s in specs:
        p = Path(s).expanduser()
        if p.is_dir():
            out += sorted(str(x) for x in p.iterdir() if x.suffix.lower() in IMAGE_SUFFIXES and x.is_file())
        elif any(c in s for c in "*?[") and not p.exists():
            out += sorted(glob.glob(str(p))) or [s]
        else:
            out.append(str(p))
    return list(dict.fromkeys(out))


@report_app.callback()
@handle_errors
def report(
    ctx: typer.Context,
    images: Optional[List[str]] = typer.Option(None, "--images", "-i", help="An image file, a folder of images or a glob; repeat for more."),
    records: Optional[Path] = typer.Option(None, "--records", "-r", help="Records to check the images against: .csv, .json or .md."),
    records_encoding: Optional[str] = typer.Option(None, "--records-encoding", help="The records' encoding when not UTF-8 (cp1252, latin-1, utf-16...)."),
    kind: str = typer.Option("general", "--kind", "-k", help="inspection, incident, medical or general."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="md, html, pdf or json (default: from -o's extension)."),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Where to write the report."),
    inspector: Optional[str] = typer.Option(None, "--inspector", help="A fitted inspection model (oculi inspect fit --name) to score each image."),
    model: Optional[str] = typer.Option(None, "--model", help="A configured model ([models.NAME] in oculi.toml) that serves what it can; if it chats, it narrates the summary (grounded)."),
    template: Optional[Path] = typer.Option(None, "--template", help="A folder of Jinja2 templates overriding the built-in ones (docs/REPORTS.md)."),
    title: Optional[str] = typer.Option(None, "--title", help="The report's title."),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Collection whose footage events the records' times are checked against."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Only this camera's footage events."),
    day: Optional[str] = typer.Option(None, "--day", help="The day (YYYY-MM-DD) of records that give only a time, e.g. 'gate closed at 18:00'."),
    tz: Optional[str] = typer.Option(None, "--tz", help="Time zone of record and footage times (default OCULI_TIMEZONE or this machine's)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the report (oculi.report/1) on stdout."),
) -> None:
    """Images (and records) → a report: summary, per-image findings with evidence, cross-checks
    of the records against the images and footage, recommendations, limits."""
    if ctx.invoked_subcommand is not None:
        return
    if not images:
        console.print(ctx.get_help())
        raise InputError("oculi report needs --images (and -o FILE); `oculi report footage` writes a camera's day")
    if out is None:
        raise InputError("oculi report needs -o FILE (the report to write)")
    from oculi.tasks.report import FORMATS, write_report
    from oculi.tasks.report.records import read_records

    fmt = (fmt or out.suffix.lstrip(".") or "md").lower()
    fmt = {"markdown": "md", "htm": "html"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    the_day = None
    if day:
        try:
            the_day = date.fromisoformat(day)
        except ValueError:
            raise InputError(f"--day {day!r} is not a date (YYYY-MM-DD)") from None
    if template is not None and not template.is_dir():
        raise InputError(f"--template {template} is not a folder of templates")
    recs = read_records(records, encoding=records_encoding) if records is not None else None
    from oculi.library import Library
    from oculi.tasks.footage.zones import resolve_tz

    lib = Library(_engine(model), settings=get_settings())
    zone = resolve_tz(tz or get_settings().timezone)
    with _progress() as progress:
        rep = lib.report(expand_images(images), kind=kind, records=recs, inspector=inspector, collection=collection,
                         camera=camera, day=the_day, tz=zone, title=title, model=model, progress=progress)
    for w in rep.warnings:
        err_console.print(f"[yellow]warning:[/] {shown(w)}", highlight=False)
    written = write_report(rep, fmt, out, template_dir=template)
    if as_json:
        print_json(rep.to_dict())
    else:
        conflicts = sum(1 for c in rep.cross_checks if c.status.value == "conflict")
        console.print(f"{shown(rep.title)}: {len(rep.images)} image(s), severity {rep.severity.value}"
                      + (f", {conflicts} conflict(s) with the records" if rep.records else "")
                      + f"; wrote {', '.join(shown(p) for p in written[:3])}"
                      + (f" and {len(written) - 3} more file(s)" if len(written) > 3 else ""), highlight=False)


def _engine(model: str | None) -> Any:
    """The engine; with ``--model NAME`` that configured model serves every capability it can
    (and narrates the summary when it chats), the built-in model the rest."""
    if not model:
        return get_engine()
    from oculi.engine import Engine

    eng = Engine(get_settings().model_copy(update={"model": model}))
    eng.require_model(model)  # an unknown name: exit 4, naming the configured ones
    return eng


class _progress:
    """A progress bar on stderr while the images are observed (quiet when stderr is not a terminal)."""

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err_console,
                          transient=True, disable=not err_console.is_terminal)
        self.p.__enter__()
        self.task = self.p.add_task("observing", total=None)

        def on(done: int, total: int, stage: str) -> None:
            self.p.update(self.task, description=stage, completed=done, total=total)

        return on

    def __exit__(self, *exc: Any) -> None:
        self.p.__exit__(*exc)


def register(app: typer.Typer) -> None:
    """Add ``oculi report`` (and its ``footage`` subcommand, defined in ``oculi.cli.footage``)."""
    app.add_typer(report_app, name="report")
