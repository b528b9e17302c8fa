"""The shared report renderer: Jinja2 templates → Markdown, HTML, PDF (WeasyPrint) or JSON.

Image reports (``oculi report``) and footage reports (``oculi report footage``) both render
here. Templates are looked up first in a user's directory (``--template DIR``, or
``template_dir=``), then in the package's ``templates/``: a file ``report.html.j2`` in that
directory replaces the built-in one, and a template may ``{% extends "builtin/report.html.j2" %}``
to change only some blocks. Templates get the report's JSON form as ``report`` (the
``oculi.report/1`` schema; footage: the footage report's JSON) and ``images``, a map from image
id to the annotated picture's URI (a ``data:`` URI in HTML and PDF, a relative file in Markdown).
HTML templates are autoescaped; Markdown ones are not. PDF is the HTML template printed by
WeasyPrint (its ``@page`` CSS sets the paper).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from oculi.core.errors import ConfigError, InputError

log = logging.getLogger("oculi.report")

FORMATS = ("md", "html", "pdf", "json")
TEMPLATES = Path(__file__).parent / "templates"
ANNOTATED_MAX_SIDE = 1024


def template_environment(template_dir: str | Path | None = None) -> Any:
    """A Jinja2 environment over ``template_dir`` (if given) then the built-in templates (also
    reachable as ``builtin/<name>``).

    Raises:
        InputError: ``template_dir`` is not a directory.
    """
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, StrictUndefined, select_autoescape

    loaders: list[Any] = []
    if template_dir is not None:
        d = Path(template_dir).expanduser()
        if not d.is_dir():
            raise InputError(f"template directory {d} does not exist (or is not a directory)")
        loaders.append(FileSystemLoader(str(d)))
    builtin = FileSystemLoader(str(TEMPLATES))
    loaders += [builtin, PrefixLoader({"builtin": builtin})]
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(enabled_extensions=("html.j2",),
                                                                                   default_for_string=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda v, nd=1: "-" if v is None else f"{float(v) * 100:.{nd}f} %"
    # Markdown cells: no raw HTML from records or OCR, no table breaks, one line
    env.filters["md"] = lambda v: ("" if v is None else str(v)).replace("&", "&amp;").replace("<", "&lt;").replace(
        ">", "&gt;").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    env.filters["hms"] = lambda iso: "" if not iso else str(iso)[11:19]
    env.filters["num"] = lambda v, nd=2: "-" if v is None else f"{float(v):.{nd}f}"
    return env


def render_template(name: str, context: dict[str, Any], template_dir: str | Path | None = None) -> str:
    """Render one template; a template that fails says which file and line.

    Raises:
        InputError: the template is missing, has a syntax error, or uses a name the report lacks.
    """
    from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError, UndefinedError

    env = template_environment(template_dir)
    try:
        return env.get_template(name).render(**context)
    except TemplateNotFound:
        raise InputError(f"no template {name!r} (in {template_dir or TEMPLATES})") from None
    except TemplateSyntaxError as e:
        raise InputError(f"template {e.filename or e.name or name}, line {e.lineno}: {e.message}") from None
    except UndefinedError as e:
        raise InputError(f"template {name}: {e.message} (the report's fields are listed in docs/REPORTS.md)") from None
    except TemplateError as e:
        raise InputError(f"template {name}: {e}") from None


def html_to_pdf(html: str, *, base_url: str | None = None) -> bytes:
    """Print an HTML document to PDF with WeasyPrint.

    Raises:
        ConfigError: WeasyPrint (or the pango library it needs) is not installed.
    """
    from PIL import ImageFile

    try:
        try:
            import weasyprint
        except (ImportError, OSError) as e:  # OSError: the pango shared library is missing
            raise ConfigError(f"PDF reports need WeasyPrint and pango ({e}); install them with `make setup` "
                              f"(apt-get install libpango-1.0-0 libpangoft2-1.0-0), or write --format html") from None
        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        return weasyprint.HTML(string=html, base_url=base_url).write_pdf()
    finally:
        # weasyprint.images sets PIL's process-wide LOAD_TRUNCATED_IMAGES = True when it is first
        # imported, which would make every later image load in this process accept truncated
        # files; oculi never accepts them (``oculi.imageio`` refuses them whatever the flag says)
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def write_document(fmt: str, out: Path, *, stem: str, context: Callable[[str], dict[str, Any]], json_doc: Callable[[], Any],
                   images: Callable[[], list[tuple[str, bytes, str, str]]], template_dir: str | Path | None = None) -> list[Path]:
    """Write one report document in ``fmt``; the skeleton both report families share.

    Args:
        fmt: ``md``, ``html``, ``pdf`` or ``json``.
        out: The file to write (its folder is created).
        stem: Template name stem (``report`` → ``report.html.j2`` / ``report.md.j2``).
        context: ``images map → template context``.
        json_doc: The JSON form.
        images: ``[(id, encoded bytes, mime, file stem)]`` of the annotated pictures (only called
            when needed; Markdown writes each to ``<out stem>_files/<file stem>.jpg``).

    Returns:
        The files written: ``out``, and for Markdown the pictures in ``<out stem>_files/``.

    Raises:
        InputError: an unknown format, or a template problem.
    """
    from oculi.draw import data_uri

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        _write_atomic(out, (json.dumps(json_doc(), ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
        return [out]
    pics = images()
    if fmt == "md":
        files = out.parent / f"{out.stem}_files"
        written, refs = [], {}
        for iid, data, mime, fstem in pics:
            files.mkdir(exist_ok=True)
            p = files / f"{fstem}.{'png' if mime == 'image/png' else 'jpg'}"
            p.write_bytes(data)
            refs[iid] = f"{files.name}/{p.name}"
            written.append(p)
        _write_atomic(out, render_template(f"{stem}.md.j2", context(refs), template_dir).encode("utf-8"))
        return [out, *written]
    refs = {iid: data_uri(data, mime) for iid, data, mime, _ in pics}
    html = render_template(f"{stem}.html.j2", context(refs), template_dir)
    _write_atomic(out, html.encode("utf-8") if fmt == "html" else html_to_pdf(html))
    return [out]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --- image reports -----------------------------------------------------------------------------
def annotated_image(im: Any, *, max_side: int = ANNOTATED_MAX_SIDE) -> tuple[bytes, str]:
    """The report image with its evidence drawn (objects, numbered text lines, anomaly regions,
    the heat-map), as ``(bytes, mime)``: JPEG, at most ``max_side`` pixels on its longer side."""
    from PIL import Image

    from oculi.core.types import Box
    from oculi.draw import Mark, annotate_image, image_bytes

    img = im.image
    if img is None:
        img = Image.open(im.path)
        img.load()
    obs = im.observation
    marks = []
    if im.inspection:
        for k, r in enumerate(im.inspection.get("regions") or [], 1):
            marks.append(Mark(Box.from_list(r["box"]), label=str(r.get("position") or ""), number=k))
    objs = [o for o in obs.objects if o.score >= 0.3]
    heat = im.heatmap if im.heatmap is not None else None
    floor = float(im.inspection.get("threshold") or 0.0) if im.inspection else 0.0
    try:
        drawn = annotate_image(img, objs, obs.text, marks=marks, heatmap=heat, heatmap_floor=floor, number_text=True)
    except ValueError as e:  # a malformed heat-map: draw the rest, say why
        log.warning("heat-map of %s not drawn: %s", im.path, e)
        drawn = annotate_image(img, objs, obs.text, marks=marks, number_text=True)
    return image_bytes(drawn, "JPEG", max_side=max_side), "image/jpeg"


def write_report(report: Any, fmt: str, out: str | Path, *, template_dir: str | Path | None = None) -> list[Path]:
    """Write an image report (``build.Report``) as ``md``, ``html``, ``pdf`` or ``json``.

    Markdown writes the annotated images next to it in ``<out stem>_files/``; HTML and PDF embed
    them; JSON is the ``oculi.report/1`` document.

    Example:
        >>> write_report(rep, "pdf", "out/report.pdf")  # doctest: +SKIP
        [PosixPath('out/report.pdf')]
    """
    doc = report.to_dict()
    return write_document(
        fmt, Path(out), stem="report", template_dir=template_dir,
        context=lambda refs: {"report": doc, "images": refs},
        json_doc=lambda: doc,
        images=lambda: [(im.id, *annotated_image(im), _file_stem(im)) for im in report.images])


def _file_stem(im: Any) -> str:
    """``img1-chelsea``: the id and a tame version of the image's name (safe in a Markdown link)."""
    import re

    tame = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(im.path).stem).strip("._") or "image"
    return f"{im.id}-{tame}"[:80]
