"""Writing a ``FootageReport``: JSON, Markdown (with annotated keyframe files) or HTML (one file).

Keyframes are the stored keyframe thumbnails with the findings' boxes drawn by ``oculi.draw``
(boxes are stored in video pixels and scaled to the thumbnail).
"""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from oculi.core.errors import InputError
from oculi.core.types import Box, DetectedObject
from oculi.tasks.footage.report import FootageReport

FORMATS = ("json", "md", "html", "pdf")


def annotated_keyframe(coll: Any, kf: dict[str, Any]) -> bytes:
    """The keyframe's thumbnail as JPEG with the boxes of its marks drawn."""
    from PIL import Image

    from oculi.draw import annotate_image

    img = Image.open(io.BytesIO(coll.thumbnail(kf["id"]))).convert("RGB")
    sx = img.width / max(1, kf.get("width") or img.width)
    sy = img.height / max(1, kf.get("height") or img.height)
    objs = []
    for m in kf["marks"]:
        if not m.get("box"):
            continue
        x1, y1, x2, y2 = m["box"]
        name = f"{m.get('label') or 'object'} #{m['track_id']}" + (f" {m['kind']}" if m["kind"] != "track" else "")
        objs.append(DetectedObject(name, 1.0, Box(x1 * sx, y1 * sy, x2 * sx, y2 * sy).clip(img.width, img.height)))
    out = io.BytesIO()
    annotate_image(img, objects=objs).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _t(ts: float | None, tz: tzinfo) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def to_markdown(report: FootageReport, tz: tzinfo, images: dict[str, str]) -> str:
    """Markdown; ``images`` maps keyframe ids to the relative paths of their annotated files."""
    d = report.to_dict()
    lines = [f"# {report.title}", "", f"**Threat level:** {report.threat_level}  ", 
             f"**Confidence:** {'-' if report.confidence is None else f'{report.confidence:.2f}'}", "", "## Summary", "",
             report.summary, "", "## Counts", "", "| what | count |", "|---|---|"]
    for lab, n in d["counts"]["tracks_by_label"].items():
        lines.append(f"| {lab} (arrived) | {n} |")
    for typ, n in d["counts"]["events_by_type"].items():
        lines.append(f"| {typ} events | {n} |")
    lines += ["", "## Findings", ""]
    lines += [f"- **{f.kind.replace('_', ' ')}**: {f.text}" for f in report.findings] or ["- none"]
    lines += ["", "## Timeline", "", "| hour | arrivals | events |", "|---|---|---|"]
    for r in report.timeline:
        arr = ", ".join(f"{n} {k}" for k, n in r["arrivals"].items()) or "-"
        ev = ", ".join(f"{n} {k}" for k, n in r["events"].items()) or "-"
        lines.append(f"| {r['hour']} | {arr} | {ev} |")
    if report.keyframes:
        lines += ["", "## Keyframes", ""]
        for kf in report.keyframes:
            if kf["id"] in images:
                marks = ", ".join(f"track {m['track_id']} ({m['kind'].replace('_', ' ')})" for m in kf["marks"])
                lines += [f"![{_t(kf['time'], tz)} {marks}]({images[kf['id']]})", f"*{_t(kf['time'], tz)} — {marks}*", ""]
    lines += ["", "## Events", "", "| start | end | type | track | label | zone | seconds |", "|---|---|---|---|---|---|---|"]
    for e in report.events:
        secs = "" if e.value is None else f"{e.value:.0f}"
        lines.append(f"| {_t(e.start_time, tz)} | {_t(e.end_time, tz)} | {e.type} | {e.track_id if e.track_id is not None else ''} "
                     f"| {e.label or ''} | {e.zone or ''} | {secs} |")
    if report.events_total > len(report.events):
        lines.append(f"\n({report.events_total - len(report.events)} more events not listed)")
    return "\n".join(lines) + "\n"


_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ r.title }}</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
.threat{display:inline-block;padding:.1rem .6rem;border-radius:1rem;background:#eee}.high{background:#f88}.medium{background:#fc6}
.low{background:#bfb}figure{display:inline-block;margin:.4rem}figcaption{font-size:.85em;color:#555}</style></head><body>
<h1>{{ r.title }}</h1>
<p><span class="threat {{ r.threat_level }}">threat: {{ r.threat_level }}</span>
 confidence: {{ '-' if r.confidence is none else '%.2f'|format(r.confidence) }}</p>
<h2>Summary</h2><p>{{ r.summary }}</p>
<h2>Findings</h2><ul>{% for f in r.findings %}<li><b>{{ f.kind|replace('_',' ') }}</b>: {{ f.text }}</li>{% else %}<li>none</li>{% endfor %}</ul>
<h2>Timeline</h2><table><tr><th>hour</th><th>arrivals</th><th>events</th></tr>
{% for row in r.timeline %}<tr><td>{{ row.hour }}</td><td>{% for k, n in row.arrivals.items() %}{{ n }} {{ k }} {% endfor %}</td>
<td>{% for k, n in row.events.items() %}{{ n }} {{ k }} {% endfor %}</td></tr>{% endfor %}</table>
{% if images %}<h2>Keyframes</h2>{% for kf in r.keyframes %}{% if kf.id in images %}<figure><img src="{{ images[kf.id] }}" alt="keyframe {{ t(kf.time) }}">
<figcaption>{{ t(kf.time) }} — {% for m in kf.marks %}track {{ m.track_id }} ({{ m.kind|replace('_',' ') }}) {% endfor %}</figcaption></figure>{% endif %}{% endfor %}{% endif %}
<h2>Events</h2><table><tr><th>start</th><th>end</th><th>type</th><th>track</th><th>label</th><th>zone</th><th>seconds</th></tr>
{% for e in r.events %}<tr><td>{{ t(e.start_time) }}</td><td>{{ t(e.end_time) }}</td><td>{{ e.type }}</td><td>{{ e.track_id if e.track_id is not none else '' }}</td>
<td>{{ e.label or '' }}</td><td>{{ e.zone or '' }}</td><td>{{ '' if e.value is none else '%.0f'|format(e.value) }}</td></tr>{% endfor %}</table>
</body></html>"""


def to_html(report: FootageReport, tz: tzinfo, images: dict[str, str]) -> str:
    """One self-contained HTML page (``images``: keyframe id → data URI)."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_HTML).render(r=report, images=images, t=lambda ts: _t(ts, tz))


def write_footage_report(report: FootageReport, coll: Any, fmt: str, out: Path, tz: tzinfo) -> list[Path]:
    """Write the report as ``fmt`` to ``out``; returns the files written (Markdown also writes
    its annotated keyframes into ``<out stem>_files/``).

    Raises:
        InputError: an unknown format, or ``pdf`` (which needs the shared report renderer).
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        out.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return [out]
    if fmt == "pdf":
        raise InputError("PDF footage reports need the shared report renderer, which this build does not have yet; "
                         "write --format html and print it to PDF")
    written = []
    if fmt == "md":
        files = out.parent / f"{out.stem}_files"
        images = {}
        for i, kf in enumerate(report.keyframes):
            files.mkdir(exist_ok=True)
            p = files / f"keyframe-{i + 1:02d}.jpg"
            p.write_bytes(annotated_keyframe(coll, kf))
            images[kf["id"]] = f"{files.name}/{p.name}"
            written.append(p)
        out.write_text(to_markdown(report, tz, images), encoding="utf-8")
        return [out, *written]
    images = {kf["id"]: "data:image/jpeg;base64," + base64.b64encode(annotated_keyframe(coll, kf)).decode()
              for kf in report.keyframes}
    out.write_text(to_html(report, tz, images), encoding="utf-8")
    return [out]
