"""``oculi watch``, ``events``, ``ask-footage``, ``sources`` and ``report footage``.

Registered on the main app by ``oculi.cli.main`` through ``register(app)``.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, List, Optional

import typer

from oculi.cli.common import console, err_console, error, get_engine, get_settings, handle_errors, print_json
from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.store.base import DEFAULT_COLLECTION

from oculi.cli.report import report_app  # noqa: E402 - `oculi report footage` is a subcommand of `oculi report`

COLLECTION_OPT = typer.Option(DEFAULT_COLLECTION, "--collection", "-c", help="Collection holding the footage.")
TZ_OPT = typer.Option(None, "--tz", help="Time zone of clock times (IANA name or UTC; default OCULI_TIMEZONE or this machine's).")


def _library() -> Any:
    from oculi.library import Library

    return Library(get_engine(), settings=get_settings())


def _tz(name: str | None) -> Any:
    from oculi.tasks.footage.zones import resolve_tz

    return resolve_tz(name or get_settings().timezone)


def _instant(text: str | None, tz: Any, name: str) -> float | None:
    from oculi.tasks.footage.zones import parse_instant

    return None if text is None else parse_instant(text, tz, name=name)


def _save_thumbnails(coll: Any, docs: list[dict[str, Any]], folder: Path | None) -> None:
    """With ``--thumbnails DIR``: write each cited keyframe as DIR/<id>.jpg and cite the path."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for d in docs:
        kid = d.get("thumbnail")
        if kid:
            p = folder / f"{kid}.jpg"
            if not p.exists():
                p.write_bytes(coll.thumbnail(kid))
            d["thumbnail"] = str(p)


def watch(
    source: str = typer.Argument(..., help="A video file (MP4, MKV, AVI, MOV, TS ...) or a stream URL (rtsp://, http(s)://)."),
    camera: str = typer.Option(..., "--camera", help='Camera name, e.g. "main gate".'),
    start: Optional[str] = typer.Option(None, "--start", help="When the footage starts (ISO, e.g. 2026-11-27T08:00:00; "
                                        "default: the file's own creation time)."),
    zone: List[str] = typer.Option([], "--zone", help='A zone polygon "x1,y1 x2,y2 x3,y3 ..." in pixels (or fractions); repeatable.'),
    zone_name: List[str] = typer.Option([], "--zone-name", help="Name of each --zone, in order (e.g. gate)."),
    loiter_after: str = typer.Option("30s", "--loiter-after", help="Time in a zone (or, without zones, in view) that is loitering."),
    crowd: int = typer.Option(5, "--crowd", help="Crowding from this many people at once (0: off)."),
    fps: float = typer.Option(2.0, "--fps", help="Frames analysed per second of footage."),
    lost_after: str = typer.Option("4s", "--lost-after", help="How long a tracked object may be unseen (occlusion) and keep its id."),
    no_motion: bool = typer.Option(False, "--no-motion", help="Run the detector on every sampled frame, still or not."),
    all_classes: bool = typer.Option(False, "--all-classes", help="Track all 80 COCO classes (default: people, vehicles, animals)."),
    reprocess: bool = typer.Option(False, "--reprocess", help="Process again even if this file was done with the same settings."),
    checkpoint: str = typer.Option("60s", "--checkpoint", help="Footage between checkpoints (what an interrupted run redoes at most)."),
    reconnects: int = typer.Option(5, "--reconnects", min=0, max=1000, help="Times in a row a dropped stream is reopened."),
    ocr: bool = typer.Option(False, "--ocr", help="Read text on keyframes (off: rarely legible at analysis size)."),
    collection: str = COLLECTION_OPT,
    tz: Optional[str] = TZ_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Watch footage: track people and vehicles, record events (appear, leave, zone enter/leave,
    dwell, loitering, crowding) and keyframes. Resumable: Ctrl-C stops at a checkpoint; run the
    same command again to carry on."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from oculi.cli.collections import _Stopper
    from oculi.tasks.footage.tracking import DEFAULT_CLASSES
    from oculi.tasks.footage.watch import WatchOptions, WatchProgress
    from oculi.tasks.footage.zones import parse_duration

    zone_tz = _tz(tz)
    opts = WatchOptions(
        camera=camera, start=_instant(start, zone_tz, "--start"), zones=zone, zone_names=zone_name,
        loiter_after=parse_duration(loiter_after, name="--loiter-after") or None, crowd_min=crowd or None,
        sample_fps=fps, lost_after=parse_duration(lost_after, name="--lost-after"), motion=not no_motion,
        classes=None if all_classes else DEFAULT_CLASSES, collection=collection, reprocess=reprocess,
        checkpoint_every=parse_duration(checkpoint, name="--checkpoint"), max_reconnects=reconnects, ocr=ocr,
    )
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console, transient=True,
                        disable=not err_console.is_terminal)
    task = progress.add_task("opening", total=None, info="")

    def on_progress(p: WatchProgress) -> None:
        progress.update(task, description=f"{p.t:,.0f} s of footage", completed=p.t, total=p.duration,
                        info=f"{p.speed:.1f}x real time, {p.events} events, {p.active_tracks} in view")

    with _Stopper() as stopper, progress:
        report = _library().watch(source, opts, progress=on_progress, should_stop=stopper.event.is_set)
    if as_json:
        print_json(report.to_dict())
    else:
        _render_watch(report)
    if report.interrupted:
        error("interrupted at a checkpoint; run the same command again to carry on.")
        raise typer.Exit(130)
    if report.problems:
        for p in report.problems:
            error(f"skipped {p['start']:.1f}-{p['end']:.1f} s of footage: {p['error']}")
        raise typer.Exit(2)


def _render_watch(r: Any) -> None:
    src = r.source
    if r.already_done:
        console.print(f"[bold]{src['uri']}[/] ({src['camera']}) was already processed with these settings: "
                      f"{r.events} events, {r.tracks} tracks. Use --reprocess to do it again.", highlight=False)
        return
    resumed = f" (resumed at {r.resumed_from:.1f} s)" if r.resumed_from is not None else ""
    speed = f", {r.footage_seconds / r.elapsed_s:.1f}x real time" if r.elapsed_s > 0 else ""
    console.print(f"[bold]{src['uri']}[/] ({src['camera']}): {r.footage_seconds:.0f} s of footage{resumed}{speed}; "
                  f"{r.frames_detected}/{r.frames_sampled} frames through the detector; {r.tracks} tracks, "
                  f"{r.events} events, {r.keyframes} keyframes.", highlight=False)


def events(
    camera: Optional[str] = typer.Option(None, "--camera", help="Only this camera."),
    after: Optional[str] = typer.Option(None, "--after", help="Events still going on at or after this time (ISO date/time)."),
    before: Optional[str] = typer.Option(None, "--before", help="Events that started before this time."),
    type_: List[str] = typer.Option([], "--type", help="Event type(s): appear, leave, zone_enter, zone_leave, dwell, loitering, crowding."),
    zone: Optional[str] = typer.Option(None, "--zone", help="Only this zone."),
    label: Optional[str] = typer.Option(None, "--label", help="Only this object class (person, car ...)."),
    limit: int = typer.Option(1000, "--limit", min=1, max=100_000, help="At most this many (oldest first)."),
    thumbnails: Optional[Path] = typer.Option(None, "--thumbnails", help="Write the keyframes into this folder and cite their paths."),
    collection: str = COLLECTION_OPT,
    tz: Optional[str] = TZ_OPT,
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"schema_version", "events": [...]}.'),
) -> None:
    """List footage events, oldest first."""
    from oculi.store.records import EventType

    zone_tz = _tz(tz)
    for t in type_:
        if t not in {e.value for e in EventType}:
            raise InputError(f"unknown event type {t!r}; use {', '.join(e.value for e in EventType)}")
    lib = _library()
    coll = lib.open(collection)
    evs = lib.events(collection, camera=camera, types=type_ or None, labels=[label] if label else None, zone=zone,
                      after=_instant(after, zone_tz, "--after"), before=_instant(before, zone_tz, "--before"), limit=limit)
    docs = [e.to_dict(zone_tz) for e in evs]
    _save_thumbnails(coll, docs, thumbnails)
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, "events": docs})
        return
    if not docs:
        console.print("[dim]no events[/]")
    for d in docs:
        what = " ".join(x for x in (d["label"], f"#{d['track_id']}" if d["track_id"] is not None else None,
                                    f"zone {d['zone']}" if d["zone"] else None,
                                    f"{d['seconds']:.0f} s" if d["seconds"] else None,
                                    f"{d['count']} at once" if d["count"] else None) if x)
        console.print(f"{d['start'][:19].replace('T', ' ')}  {d['type']:<10} {d['camera']}: {what}", highlight=False)


def ask_footage(
    question: str = typer.Argument(..., help='e.g. "Was anyone loitering at the main gate today?"'),
    now: Optional[str] = typer.Option(None, "--now", help="Reference time for 'today', 'in the last hour' (ISO; default: now)."),
    thumbnails: Optional[Path] = typer.Option(None, "--thumbnails", help="Write the cited keyframes into this folder."),
    collection: str = COLLECTION_OPT,
    tz: Optional[str] = TZ_OPT,
    model: Optional[str] = typer.Option(None, "--model", help="A configured chat model (oculi.toml) that answers by calling "
                                        "the footage query functions as tools; default: [tasks] chat, else the rules."),
    rules: bool = typer.Option(False, "--rules", help="Answer by the rules even where a chat model is configured."),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"answer", "evidence": [...], "query", ...}.'),
) -> None:
    """Answer a question about the footage from its events, citing times, track ids and keyframes.

    Where a chat model is configured, it calls the same query functions as tools; its answer's
    evidence is what those returned, and a model without a usable reply falls back to the rules."""
    from oculi.cli.common import use_model_options

    if model is not None:
        use_model_options(model, None, "chat")
    zone_tz = _tz(tz)
    ref = datetime.fromtimestamp(_instant(now, zone_tz, "--now"), zone_tz) if now else datetime.now(zone_tz)
    lib = _library()
    coll = lib.open(collection)
    ans = lib.ask_footage(collection, question, now=ref, tz=zone_tz, use_model=not rules)
    doc = ans.to_dict(zone_tz)
    _save_thumbnails(coll, doc["evidence"], thumbnails)
    if as_json:
        print_json(doc)
        return
    console.print(ans.answer, highlight=False)
    for e in doc["evidence"][:10]:
        thumb = f"  [dim]{e['thumbnail']}[/]" if e["thumbnail"] else ""
        console.print(f"[dim]  {e['type']} {e['start'][11:19]}–{e['end'][11:19]} track {e['track_id']} {e['label'] or ''}[/]{thumb}",
                      highlight=False)


def sources(
    collection: str = COLLECTION_OPT,
    tz: Optional[str] = TZ_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the watched sources (files and streams): camera, time span, status, problems."""
    zone_tz = _tz(tz)
    docs = [s.to_dict(zone_tz) for s in _library().sources(collection)]
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, "sources": docs})
        return
    for d in docs:
        console.print(f"{d['camera']:<16} {(d['start'] or '')[:19]} → {(d['end'] or '')[11:19]}  {d['status']:<11} {d['uri']}"
                      + (f"  [yellow]{len(d['problems'])} stretch(es) skipped[/]" if d["problems"] else ""), highlight=False)


@report_app.command("footage")
@handle_errors
def report_footage(
    camera: str = typer.Option(..., "--camera", help="Camera name."),
    day: str = typer.Option(..., "--day", help="The day, YYYY-MM-DD (midnight to midnight in --tz)."),
    fmt: str = typer.Option("md", "--format", help="md, html, json or pdf."),
    out: Path = typer.Option(..., "-o", "--output", help="Where to write the report."),
    usual_hours: str = typer.Option("7-19", "--usual-hours", help="Hours outside which arrivals are flagged, e.g. 7-19."),
    collection: str = COLLECTION_OPT,
    tz: Optional[str] = TZ_OPT,
    as_json: bool = typer.Option(False, "--json", help="Also print the report's JSON on stdout."),
    template: Optional[Path] = typer.Option(None, "--template", help="A folder of Jinja2 templates overriding footage.md.j2 / footage.html.j2."),
) -> None:
    """A day of one camera: summary, threat level, findings (loitering, unusual hours, crowding),
    timeline, counts, annotated keyframes, events."""
    from oculi.tasks.footage.render import write_footage_report

    zone_tz = _tz(tz)
    try:
        the_day = date.fromisoformat(day)
    except ValueError:
        raise InputError(f"--day {day!r} is not a date (YYYY-MM-DD)") from None
    try:
        lo, hi = (int(x) for x in usual_hours.split("-"))
        if not (0 <= lo < hi <= 24):
            raise ValueError
    except ValueError:
        raise InputError(f"--usual-hours {usual_hours!r} is not 'H-H' with 0 <= start < end <= 24") from None
    lib = _library()
    rep = lib.footage_report(collection, camera, the_day, tz=zone_tz, tz_name=tz, usual_hours=(lo, hi))
    written = write_footage_report(rep, lib.open(collection), fmt, out, zone_tz, template_dir=template)
    if as_json:
        print_json(rep.to_dict())
    else:
        console.print(f"{rep.title}: threat {rep.threat_level}; wrote {', '.join(str(p) for p in written[:3])}"
                      + (f" and {len(written) - 3} keyframe(s)" if len(written) > 3 else ""), highlight=False)


def register(app: typer.Typer) -> None:
    """Add the footage commands to the main ``oculi`` app."""
    app.command("watch")(handle_errors(watch))
    app.command("events")(handle_errors(events))
    app.command("ask-footage")(handle_errors(ask_footage))
    app.command("sources")(handle_errors(sources))
