"""Writing a ``FootageReport`` through the shared report renderer (``oculi.tasks.report.render``):
JSON, Markdown (with annotated keyframe files), HTML (one file) or PDF.

Keyframes are the stored keyframe thumbnails with the findings' boxes drawn by ``oculi.draw``
(boxes are stored in video pixels and scaled to the thumbnail). The page layout lives in the
templates ``footage.md.j2`` / ``footage.html.j2``, which ``--template DIR`` can replace.
"""

from __future__ import annotations

import io
from datetime import tzinfo
from pathlib import Path
from typing import Any

from oculi.core.types import Box
from oculi.tasks.footage.report import FootageReport
from oculi.tasks.report.render import FORMATS, render_template, write_document

__all__ = ["FORMATS", "annotated_keyframe", "to_html", "to_markdown", "write_footage_report"]


def annotated_keyframe(coll: Any, kf: dict[str, Any]) -> bytes:
    """The keyframe's thumbnail as JPEG with the boxes of its marks drawn."""
    from PIL import Image

    from oculi.draw import Mark, annotate_image, image_bytes

    img = Image.open(io.BytesIO(coll.thumbnail(kf["id"]))).convert("RGB")
    sx = img.width / max(1, kf.get("width") or img.width)
    sy = img.height / max(1, kf.get("height") or img.height)
    marks = []
    for m in kf["marks"]:
        if not m.get("box"):
            continue
        x1, y1, x2, y2 = m["box"]
        name = f"{m.get('label') or 'object'}" + (f" {m['kind'].replace('_', ' ')}" if m["kind"] != "track" else "")
        marks.append(Mark(Box(x1 * sx, y1 * sy, x2 * sx, y2 * sy).clip(img.width, img.height), label=name,
                          number=m["track_id"]))
    return image_bytes(annotate_image(img, marks=marks), "JPEG")


def to_markdown(report: FootageReport, tz: tzinfo, images: dict[str, str], *, template_dir: str | Path | None = None) -> str:
    """Markdown; ``images`` maps keyframe ids to the relative paths of their annotated files."""
    return render_template("footage.md.j2", {"report": report.to_dict(), "images": images}, template_dir)


def to_html(report: FootageReport, tz: tzinfo, images: dict[str, str], *, template_dir: str | Path | None = None) -> str:
    """One self-contained HTML page (``images``: keyframe id → data URI)."""
    return render_template("footage.html.j2", {"report": report.to_dict(), "images": images}, template_dir)


def write_footage_report(report: FootageReport, coll: Any, fmt: str, out: Path, tz: tzinfo, *,
                         template_dir: str | Path | None = None) -> list[Path]:
    """Write the report as ``fmt`` (``json``, ``md``, ``html`` or ``pdf``) to ``out``; returns the
    files written (Markdown also writes its annotated keyframes into ``<out stem>_files/``).

    Raises:
        InputError: an unknown format or a template problem.
        ConfigError: PDF without WeasyPrint.
    """
    doc = report.to_dict()
    return write_document(
        fmt, Path(out), stem="footage", template_dir=template_dir,
        context=lambda refs: {"report": doc, "images": refs}, json_doc=lambda: doc,
        images=lambda: [(kf["id"], annotated_keyframe(coll, kf), "image/jpeg", f"keyframe-{i + 1:02d}")
                        for i, kf in enumerate(report.keyframes)])
