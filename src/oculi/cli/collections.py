"""``oculi index``, ``search``, ``duplicates``, ``collections`` and ``eval retrieval``.

Registered on the main app by ``oculi.cli.main`` through ``register(app)``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from oculi.cli.common import (
    CONFIG_HELP,
    MODEL_HELP,
    console,
    err_console,
    error,
    get_engine,
    get_settings,
    handle_errors,
    print_json,
    shown,
    use_model_options,
)
from oculi.core.types import SCHEMA_VERSION

if TYPE_CHECKING:
    from oculi.library import Library

collections_app = typer.Typer(help="List, inspect, check, repair and drop collections.", invoke_without_command=True,
                              no_args_is_help=False)
eval_app = typer.Typer(help="Measure quality.", no_args_is_help=True)

COLLECTION_OPT = typer.Option("default", "--collection", "-c", help="Collection name.")


def _library() -> "Library":
    from oculi.library import Library

    return Library(get_engine(), settings=get_settings())


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


class _Stopper:
    """First Ctrl-C (or SIGTERM): finish the current batch, write it, stop. Second: abort now."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        err_console.print("[yellow]stopping after the current batch; press Ctrl-C again to abort now[/]")

    def __enter__(self) -> "_Stopper":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def index(
    paths: List[Path] = typer.Argument(..., help="Image files and folders (walked recursively)."),
    collection: str = COLLECTION_OPT,
    prune: bool = typer.Option(False, "--prune", help="Forget indexed files under PATHS that no longer exist."),
    no_ocr: bool = typer.Option(False, "--no-ocr", help="Skip OCR (faster; text in images is not searchable)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, max=128, help="Images per model call."),
    reindex: bool = typer.Option(False, "--reindex", help="Empty the collection and index PATHS again with the configured models (after changing the embedding model)."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + " Captions (and vectors, if it embeds) come from it."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    engine: Optional[str] = typer.Option(None, "--engine", help="Where images are decoded and perceived: 'local' "
                                         "(this process) or 'ray' (a Ray cluster); default: settings (OCULI_ENGINE)."),
    address: Optional[str] = typer.Option(None, "--address", help="With --engine ray: the cluster (ray://head:10001, "
                                          "head:6379, auto); default OCULI_RAY_ADDRESS, else Ray starts locally."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="With --engine ray: actors holding the models "
                                          "(default: one per cluster CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index images into a collection: perceive once, store observation, embeddings, thumbnail.

    Incremental (only new or changed files are processed) and resumable: Ctrl-C stops after
    the current batch; rerun to complete.

    With --engine ray, decoding and perception run on Ray actors and this process writes the
    store, with the same guarantees.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from oculi.tasks.index import IndexProgress

    use_model_options(model, config, "describe", "observe", "embed_image", "embed_text")
    lib = _library()
    progress = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    )
    task = progress.add_task("scanning", total=None, rate="")

    def on_progress(p: IndexProgress) -> None:
        if p.phase == "scanning":
            progress.update(task, description=f"scanning ({p.done} found)", total=None)
        else:
            rate = f"{p.rate:.1f} files/s" if p.elapsed > 1 and p.done else ""
            progress.update(task, description=p.phase, completed=p.done, total=p.total or None, rate=rate)

    with _Stopper() as stopper, progress:
        report = lib.index(paths, collection, prune=prune, progress=on_progress, should_stop=stopper.event.is_set,
                           ocr=False if no_ocr else None, batch_size=batch_size, reindex=reindex, engine=engine,
                           address=address, workers=workers if (engine or lib.settings.engine) == "ray" else None)
    if as_json:
        print_json(report.to_dict())
    else:
        _render_index(report)
    if report.interrupted:
        error(f"interrupted; {report.added} new image(s) were saved. Run the same command again to finish.")
        raise typer.Exit(130)
    if report.failed:
        raise typer.Exit(2)


def _render_index(r: Any) -> None:
    parts = [f"{r.added} new"]
    if r.relinked:
        parts.append(f"{r.relinked} already known (copies, renames, touched)")
    parts.append(f"{r.unchanged} unchanged")
    if r.changed:
        parts.append(f"{r.changed} changed")
    if r.removed:
        parts.append(f"{r.removed} removed")
    if r.failed:
        parts.append(f"[red]{len(r.failed)} failed[/]")
    rate = f", {r.images_per_s:.1f} images/s" if r.added else ""
    console.print(f"[bold]{r.collection}[/]: {', '.join(parts)} — {r.items_total} items in the collection "
                  f"({r.elapsed_s:.1f} s{rate})", highlight=False)
    if r.missing:
        console.print(f"[yellow]{r.missing} indexed file(s) are gone; run with --prune to forget them[/]")
    if r.found == 0 and not r.problems:
        from oculi.imageio import SUPPORTED_NAMES

        console.print(f"[yellow]no image files found[/] ({SUPPORTED_NAMES})")
    for f in r.failed[:50]:
        err_console.print(f"[red]failed:[/] {shown(f['error'])}", highlight=False, markup=True)
    if len(r.failed) > 50:
        err_console.print(f"[red]… and {len(r.failed) - 50} more failures (use --json for all)[/]")
    for p in r.problems[:20]:
        err_console.print(f"[yellow]skipped:[/] {shown(p['path'])}: {shown(p['problem'])}", highlight=False)
    if len(r.problems) > 20:
        err_console.print(f"[yellow]… and {len(r.problems) - 20} more skipped (use --json for all)[/]")


def search(
    query: Optional[str] = typer.Argument(None, help='What to find, e.g. "a red car" or words printed in the image.'),
    image: Optional[Path] = typer.Option(None, "--image", help="Find images that look like this one."),
    collection: str = COLLECTION_OPT,
    top_k: int = typer.Option(10, "--top-k", "-k", help="How many results."),
    where: Optional[List[str]] = typer.Option(None, "--where", help='Filter, e.g. "object=person", "colour=red", "width>=1000". Repeatable.'),
    after: Optional[str] = typer.Option(None, "--after", help="Captured on or after (e.g. 2021-06-01)."),
    before: Optional[str] = typer.Option(None, "--before", help="Captured before (e.g. 2022-01-01)."),
    path_glob: Optional[str] = typer.Option(None, "--path-glob", help='Only paths matching, e.g. "*/holiday/*.jpg".'),
    adapter: Optional[str] = typer.Option(None, "--adapter", help="A trained retrieval adapter (oculi train adapter) for the text query."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + " Queries are embedded with it (it must be the collection's)."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"results": [{"path", "score", "why", ...}]}.'),
) -> None:
    """Search a collection by text (semantic + keyword over what was seen) or by image."""
    from oculi.core.errors import InputError

    if query is None and image is None:
        raise InputError('give a query, e.g. oculi search "a cat", or an image with --image')
    use_model_options(model, config, "embed_text", "embed_image")
    res = _library().search(collection, text=query, image=image, top_k=top_k, where=where,
                            after=after, before=before, path_glob=path_glob, adapter=adapter)
    if as_json:
        print_json(res.to_dict())
        return
    if not res.results:
        console.print("[dim]no results[/]")
        return
    for i, r in enumerate(res.results, 1):
        console.print(f"[bold]{i:>2}.[/] {r.score:.3f}  {shown(r.path)}", highlight=False, soft_wrap=True)
        if r.why:
            console.print(f"      [green]{shown('; '.join(r.why[:4]))}[/]", highlight=False, soft_wrap=True)
        if r.caption:
            console.print(f"      [dim]{shown(r.caption)}[/]", highlight=False, soft_wrap=True)


def duplicates(
    collection: str = COLLECTION_OPT,
    threshold: float = typer.Option(0.95, "--threshold", help="Visual similarity (cosine) from which two images count as near-duplicates."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List groups of near-duplicate images (resized, recompressed, mirrored copies) and identical files."""
    rep = _library().duplicates(collection, threshold=threshold)
    if as_json:
        print_json(rep.to_dict())
        return
    if not rep.groups:
        console.print(f"no duplicates among {rep.items} items (threshold {rep.threshold})")
        return
    for i, g in enumerate(rep.groups, 1):
        kind = "identical files" if g.exact else "near-duplicates"
        console.print(f"[bold]group {i}[/] ({kind}, {len(g.items)})")
        for it in g.items:
            size = f"{it['width']}x{it['height']}  " if it.get("width") else ""
            console.print(f"  {it['similarity']:.3f}  {size}{shown(it['path'])}", highlight=False)


@collections_app.callback(invoke_without_command=True)
@handle_errors
def collections_main(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List collections (same as `oculi collections list`)."""
    if ctx.invoked_subcommand is None:
        _list(as_json)


@collections_app.command("list")
@handle_errors
def collections_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List collections with their size."""
    _list(as_json)


def _list(as_json: bool) -> None:
    infos = _library().collections()
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, "collections": [c.to_dict() for c in infos]})
        return
    if not infos:
        console.print("no collections yet; create one with `oculi index PATH`")
        return
    from rich.table import Table

    t = Table("name", "items", "files", "on disk", "updated")
    for c in infos:
        name = c.name if c.status == "ok" else f"{c.name} [bold red]({c.status})[/]"
        t.add_row(name, "?" if c.items is None else str(c.items), "?" if c.files is None else str(c.files),
                  _size(c.bytes_on_disk), _when(c.updated_at))
    console.print(t)
    for c in infos:
        if c.status != "ok":
            err_console.print(f"[bold red]{c.name}:[/] {shown(c.problem)}", highlight=False)


@collections_app.command("show")
@handle_errors
def collections_show(name: str = typer.Argument(..., help="Collection name."),
                     as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Statistics of a collection: counts, disk use, indexes, time range, frequent objects."""
    st = _library().stats(name)
    if as_json:
        print_json({"schema_version": SCHEMA_VERSION, **st})
        return
    console.print(f"[bold]{st['name']}[/]  ({shown(st['path'])})", highlight=False)
    console.print(f"  items {st['items']}, files {st['files']}, on disk {_size(st['bytes_on_disk'])}"
                  + (f" ({_size(st['bytes_per_item'])} per item)" if st.get("bytes_per_item") else ""))
    tr = st.get("time_range") or [None, None]
    console.print(f"  time range {_when(tr[0])} → {_when(tr[1])}; created {_when(st['created_at'])}, updated {_when(st['updated_at'])}")
    console.print(f"  indexes: {', '.join(i['name'] + ' (' + i['type'] + ')' for i in st['indices']) or 'none'}")
    if st.get("top_objects"):
        console.print("  objects: " + ", ".join(f"{k} {v}" for k, v in st["top_objects"].items()), highlight=False)
    if st.get("top_labels"):
        console.print("  labels: " + ", ".join(f"{k} {v}" for k, v in st["top_labels"].items()), highlight=False)
    console.print(f"  store schema {st['schema_version']}; models: {st.get('models') or '-'}", highlight=False)


@collections_app.command("drop")
@handle_errors
def collections_drop(name: str = typer.Argument(..., help="Collection name."),
                     yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete a collection and everything stored in it (not the original image files)."""
    from oculi.core.errors import StoreCorruptError
    from oculi.store.base import validate_collection_name

    lib = _library()
    shown = validate_collection_name(name)
    if not yes:
        try:
            what = f"with {lib.open(name).count()} items"
        except StoreCorruptError:  # a damaged collection can be dropped too
            what = "(damaged; its contents cannot be counted)"
        typer.confirm(f"drop collection {shown!r} {what}?", abort=True, err=True)
    lib.drop(name)
    console.print(f"dropped collection {shown!r}")


@collections_app.command("check")
@handle_errors
def collections_check(name: Optional[str] = typer.Argument(None, help="Collection name (default: all)."),
                      as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Verify collections: every stored file against the checksums recorded when it was written,
    every table version, every table read to the end, every index queried, every upload.

    Exit 0 when all is well, 5 when damage is found (`oculi collections repair NAME` fixes it),
    2 when a collection could not be checked because it is being written.
    """
    from oculi.core.errors import StoreCorruptError

    with err_console.status("checking", spinner="dots") if err_console.is_terminal else contextlib.nullcontext() as st:
        rep = _library().check(name, on_collection=lambda n: st and st.update(f"checking {n}"))
    if as_json:
        print_json(rep.to_dict())
    else:
        if not rep.collections:
            console.print("no collections yet; create one with `oculi index PATH`")
        for c in rep.collections:
            _render_check(c)
    if rep.damaged:
        raise typer.Exit(StoreCorruptError.exit_code)
    if not rep.ok:
        raise typer.Exit(2)


def _render_check(c: Any) -> None:
    if c.skipped:
        console.print(f"[bold]{c.name}[/]: [yellow]not checked[/] ({shown(c.skipped)})", highlight=False)
        return
    size = _size(c.bytes_checked)
    if c.ok:
        console.print(f"[bold]{c.name}[/]: [green]ok[/] ({c.files_checked} files, {size} verified"
                      + (f", {c.blobs_checked} uploads" if c.blobs_checked else "") + f", {c.elapsed_s:.1f} s)",
                      highlight=False)
    else:
        console.print(f"[bold]{c.name}[/]: [bold red]damaged[/]", highlight=False)
        for d in c.damage:
            console.print(f"  {d.kind} [bold]{shown(d.path)}[/]: {shown(d.problem)}", highlight=False, soft_wrap=True)
            console.print(f"    affects {shown(d.affects)}", highlight=False, soft_wrap=True)
        console.print(f"  fix: oculi collections repair {c.name}", highlight=False)
    for n in c.notes:
        console.print(f"  [dim]note: {shown(n)}[/]", highlight=False, soft_wrap=True)


@collections_app.command("repair")
@handle_errors
def collections_repair(name: str = typer.Argument(..., help="Collection name."),
                       as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Repair a damaged collection: set damaged files aside (kept, never deleted), go back to
    the last good table version, rebuild indexes and collection.json, re-index the source files
    whose items were lost, and say exactly what was lost. Running it again does nothing.

    Exit 0 when the collection is healthy afterwards, 5 when damage remains.
    """
    from oculi.core.errors import StoreCorruptError

    status = err_console.status(f"repairing {name}", spinner="dots") if err_console.is_terminal else contextlib.nullcontext()
    with _Stopper() as stopper, status:
        rep = _library().repair(name, should_stop=stopper.event.is_set)
    if as_json:
        print_json(rep.to_dict())
    else:
        _render_repair(rep)
    if not rep.ok:
        raise typer.Exit(StoreCorruptError.exit_code)


def _render_repair(r: Any) -> None:
    if r.nothing_to_do:
        console.print(f"[bold]{r.name}[/]: nothing to repair", highlight=False)
        return
    state = "[green]repaired[/]" if r.ok else "[bold red]still damaged[/]"
    console.print(f"[bold]{r.name}[/]: {state}", highlight=False)
    for a in r.actions:
        console.print(f"  - {shown(a)}", highlight=False, soft_wrap=True)
    lost = []
    if r.lost_paths:
        lost.append(f"{len(r.lost_paths)} item(s) whose source files are gone")
    if r.lost_unknown:
        lost.append(f"{r.lost_unknown} item(s) whose sources are not known")
    if r.lost_originals:
        lost.append(f"{len(r.lost_originals)} uploaded original(s) (their items are kept)")
    if r.rederive_failed:
        lost.append(f"{len(r.rederive_failed)} item(s) whose source files could not be indexed again")
    console.print("  lost: " + ("; ".join(lost) if lost else "nothing"), highlight=False)
    for p in r.lost_paths[:20]:
        console.print(f"    {shown(p)}", highlight=False, soft_wrap=True)
    if len(r.lost_paths) > 20:
        console.print(f"    … and {len(r.lost_paths) - 20} more (use --json for all)", highlight=False)
    for f in r.rederive_failed[:20]:
        console.print(f"    {shown(f['error'])}", highlight=False, soft_wrap=True)
    if r.quarantine:
        console.print(f"  damaged files kept in {shown(r.quarantine)} (inside the collection; delete them when no "
                      "longer needed)", highlight=False)
    if r.after is not None and not r.after.ok:
        for d in r.after.damage:
            console.print(f"  [red]remaining:[/] {d.kind} {shown(d.path)}: {shown(d.problem)}", highlight=False,
                          soft_wrap=True)


@eval_app.command("retrieval")
@handle_errors
def eval_retrieval(
    queries: Path = typer.Option(..., "--queries", "-q", help="JSONL file: {\"query\": \"...\", \"relevant\": [\"id-or-path\", ...]} per line."),
    collection: str = COLLECTION_OPT,
    adapter: Optional[str] = typer.Option(None, "--adapter", help="Search through this trained retrieval adapter."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recall@1/5/10 and MRR of `oculi search` over a labelled query file."""
    rep = _library().evaluate_retrieval(collection, queries, adapter=adapter)
    if as_json:
        print_json(rep.to_dict())
        return
    from rich.table import Table

    t = Table("query", "first relevant rank", "R@1", "R@5", "R@10", "top result")
    for q in rep.queries:
        t.add_row(shown(q.query or f"[image] {Path(q.image or '').name}"), str(q.ranks[0]) if q.ranks else "-",
                  f"{q.recall.get(1, 0):.2f}", f"{q.recall.get(5, 0):.2f}", f"{q.recall.get(10, 0):.2f}",
                  shown(Path(q.top[0]).name) if q.top else "-")
    console.print(t)
    rc = rep.recall
    console.print(f"[bold]{len(rep.queries)} queries[/]  " + "  ".join(f"Recall@{k} {v:.3f}" for k, v in rc.items())
                  + f"  MRR {rep.mrr:.3f}")
    for u in rep.unresolved:
        err_console.print(f"[yellow]unresolved:[/] query {shown(u['query'])}: no item matches {shown(repr(u['relevant']))}", highlight=False)


def migrate(
    source: str = typer.Option(..., "--from", metavar="STORE", help="Store to copy from: a path, lance://PATH or postgresql://..."),
    dest: str = typer.Option(..., "--to", metavar="STORE", help="Store to copy into (created as needed)."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c", help="Only this collection (repeatable; default: all)."),
    from_blobs: str = typer.Option("store", "--from-blobs", metavar="BLOBS",
                                   help="Where the source keeps uploads: store (its own: the default), a folder or s3://bucket/prefix."),
    to_blobs: Optional[str] = typer.Option(None, "--to-blobs", metavar="BLOBS",
                                           help="Where the destination keeps uploads (default: the configured blobs: "
                                                "--blobs, OCULI_BLOBS, blobs = ... in oculi.toml, else store)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Copy collections between stores: items with their vectors, thumbnails and observations,
    file records, footage records, uploaded originals (into the destination's blob store, e.g.
    an S3 bucket). Verified by row counts and checksums of every table; resumable (run it again
    after an interruption: what is there is not copied twice). Exit 0 when every copy verifies,
    1 when one does not, 2 for an unknown collection or store, 7 when a store cannot be reached.
    """
    from oculi.store import open_store
    from oculi.store.migrate import MigrationMismatch, migrate as run

    settings = get_settings()
    src, dst = open_store(settings, url=source, blobs=from_blobs), open_store(settings, url=dest, blobs=to_blobs)
    status = err_console.status("migrating", spinner="dots") if err_console.is_terminal else contextlib.nullcontext()
    with status as st:
        def on_progress(name: str, phase: str, done: int, total: int) -> None:
            if st:
                st.update(f"{name}: {phase} {done}/{total}")

        try:
            rep = run(src, dst, collection or None, progress=on_progress)
        except MigrationMismatch as e:
            rep = e.report  # type: ignore[attr-defined]
    if as_json:
        print_json(rep.to_dict())
    else:
        for c in rep.collections:
            mark = "[green]verified[/]" if c.verified else "[red]does not match[/]"
            console.print(f"[bold]{shown(c.name)}[/]: {c.items_copied} items copied, {c.items_present} already there, "
                          f"{c.files} files, {sum(c.records.values())} footage records, {c.blobs_copied} originals — {mark}")
            for m in c.mismatches:
                console.print(f"  {shown(m)}")
        if not rep.collections:
            console.print("no collections to copy")
    if not rep.ok:
        error("the copy does not match the source; run the same command again to resume")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the collection commands to the main ``oculi`` app."""
    app.command("index")(handle_errors(index))
    app.command("search")(handle_errors(search))
    app.command("duplicates")(handle_errors(duplicates))
    app.command("migrate")(handle_errors(migrate))
    app.add_typer(collections_app, name="collections")
    app.add_typer(eval_app, name="eval")
