"""Rendering: the drawing module (boxes, heat-maps, masks), Markdown/HTML/JSON, user templates, and
PDF checked by turning its pages into images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.core.errors import InputError
from oculi.core.types import Box
from oculi.draw import Mark, annotate_image
from oculi.imageio import load_image
from oculi.tasks.report import ReportImage, build_report, write_report
from oculi.tasks.report.records import link_records, parse_records


def test_heatmap_and_marks_are_drawn_where_the_map_is_hot() -> None:
    img = Image.new("RGB", (200, 100), (128, 128, 128))
    heat = np.zeros((10, 20), np.float32)
    heat[:5, :10] = 1.0  # upper-left quarter hot
    out = np.asarray(annotate_image(img, heatmap=heat), dtype=np.int16)
    hot, cold = out[10:40, 10:80], out[60:95, 120:190]
    assert np.abs(hot - 128).mean() > 25 and hot[..., 0].mean() > hot[..., 2].mean() + 40  # red-ish where hot
    assert np.abs(cold - 128).max() <= 2  # a zero map leaves the image alone
    marked = np.asarray(annotate_image(img, marks=[Mark(Box(20, 20, 80, 80), "upper left", 1)]), dtype=np.int16)
    assert tuple(marked[50, 20]) != (128, 128, 128) and tuple(marked[50, 50]) == (128, 128, 128)
    masked = np.asarray(annotate_image(img, masks=[heat > 0.5]), dtype=np.int16)
    assert masked[20, 20, 0] > 150 and tuple(masked[80, 150]) == (128, 128, 128)
    with pytest.raises(ValueError, match="2-D"):
        annotate_image(img, heatmap=np.zeros(5))


@pytest.fixture(scope="module")
def report(engine, samples_dir: Path):
    ims = []
    for i, name in enumerate(("chelsea", "coffee"), 1):
        p = str(samples_dir / f"{name}.png")
        ims.append(ReportImage(f"img{i}", p, engine.observe(p), image=load_image(p).image))
    ims[1].inspection = {"score": 0.91, "threshold": 0.55, "pass": False, "finding": "dark spot, upper left",
                         "regions": [{"box": [20.0, 20.0, 120.0, 90.0], "position": "upper left", "peak": 0.97}]}
    heat = np.zeros((16, 16), np.float32)
    heat[1:5, 1:5] = 1.0
    ims[1].heatmap = heat
    recs = parse_records(b"image,text\nchelsea.png,The dog is on the sofa\ncoffee.png,part passed\n", "notes.csv")
    link_records(recs, {im.id: im.path for im in ims})
    return build_report(ims, kind="inspection", records=recs, inspector="line-3")


def _pdf_pages(path: Path) -> list[Image.Image]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    return [doc[i].render(scale=1).to_pil().convert("RGB") for i in range(len(doc))]


def test_pdf_pages_show_the_report_and_its_annotated_images(report, tmp_path: Path) -> None:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    out = write_report(report, "pdf", tmp_path / "r.pdf")
    assert out == [tmp_path / "r.pdf"] and (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    pages = _pdf_pages(tmp_path / "r.pdf")
    assert 2 <= len(pages) <= 6
    for p in pages:
        a = np.asarray(p)
        # ink above the footer on every page (a page holding only "page n of m" would be blank)
        assert (a[: int(a.shape[0] * 0.9)] < 200).mean() > 0.001, "a blank page"
    doc = pdfium.PdfDocument(str(tmp_path / "r.pdf"))
    images = [o for i in range(len(doc)) for o in doc[i].get_objects() if o.type == pdfium_c.FPDF_PAGEOBJ_IMAGE]
    assert len(images) == 2  # both annotated images are embedded, in report order
    # the embedded picture of the failed part carries the heat-map: its upper left is reddened
    drawn = np.asarray(images[1].get_bitmap().to_pil().convert("RGB"), dtype=np.int16)
    orig = np.asarray(report.images[1].image.convert("RGB").resize((drawn.shape[1], drawn.shape[0])), dtype=np.int16)
    h, w = drawn.shape[:2]
    hot = np.abs(drawn[h // 16: h // 4, w // 16: w // 4] - orig[h // 16: h // 4, w // 16: w // 4]).mean()
    cold = np.abs(drawn[h // 2:, w // 2:] - orig[h // 2:, w // 2:]).mean()
    assert hot > 20 and hot > 3 * cold


def test_html_md_json_and_user_templates(report, tmp_path: Path) -> None:
    html = write_report(report, "html", tmp_path / "r.html")[0].read_text()
    assert html.count("data:image/jpeg;base64,") == 2 and "Cross-checks with the records" in html
    assert "&lt;" not in report.title and "<script" not in html
    md = write_report(report, "md", tmp_path / "r.md")
    assert [p.name for p in md[1:]] == ["img1-chelsea.jpg", "img2-coffee.jpg"]
    text = md[0].read_text()
    assert "![chelsea.png annotated](r_files/img1-chelsea.jpg)" in text and "## Limits" in text
    doc = json.loads(write_report(report, "json", tmp_path / "r.json")[0].read_text())
    assert doc["schema"] == "oculi.report/1" and doc["images"][1]["inspection"]["pass"] is False
    assert "heatmap" not in doc["images"][1]["inspection"]
    # a user template directory overrides one template and extends the built-in one
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "report.html.j2").write_text('{% extends "builtin/report.html.j2" %}{% block header %}<h1>ACME QA — '
                                         '{{ report.kind }}</h1>{% endblock %}')
    (tdir / "report.md.j2").write_text("# {{ report.title }}\n{% for c in report.cross_checks %}* {{ c.status }}: {{ c.text }}\n{% endfor %}")
    custom = write_report(report, "html", tmp_path / "c.html", template_dir=tdir)[0].read_text()
    assert "<h1>ACME QA — inspection</h1>" in custom and "Cross-checks with the records" in custom
    cmd = write_report(report, "md", tmp_path / "c.md", template_dir=tdir)[0].read_text()
    assert cmd.startswith("# Inspection report\n* ")
    assert "* conflict: The record says \u201cpart passed\u201d, but coffee.png shows an anomaly" in cmd
    (tdir / "report.md.j2").write_text("{% for x in report.images %}{{ x.nonexistent }}{% endfor %}")
    with pytest.raises(InputError, match="report.md.j2.*nonexistent"):
        write_report(report, "md", tmp_path / "d.md", template_dir=tdir)
    (tdir / "report.md.j2").write_text("{% if %}")
    with pytest.raises(InputError, match="report.md.j2, line 1"):
        write_report(report, "md", tmp_path / "d.md", template_dir=tdir)
    with pytest.raises(InputError, match="does not exist"):
        write_report(report, "md", tmp_path / "d.md", template_dir=tmp_path / "none")
    with pytest.raises(InputError, match="unknown report format 'docx'"):
        write_report(report, "docx", tmp_path / "d.docx")
    assert not (tmp_path / "d.md").exists()  # nothing half-written


def test_footage_reports_render_through_the_shared_renderer_and_print_to_pdf(coll, tmp_path: Path) -> None:
    from datetime import date, timezone

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from oculi.tasks.footage.render import write_footage_report
    from oculi.tasks.footage.report import build_footage_report

    rep = build_footage_report(coll, "main gate", date(2026, 11, 27), tz=timezone.utc, tz_name="UTC")
    pdf = write_footage_report(rep, coll, "pdf", tmp_path / "gate.pdf", timezone.utc)[0]
    doc = pdfium.PdfDocument(str(pdf))
    text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    assert "Footage report" in text and "main gate" in text and "loitered" in text
    pics = [o for i in range(len(doc)) for o in doc[i].get_objects() if o.type == pdfium_c.FPDF_PAGEOBJ_IMAGE]
    assert len(pics) == len(rep.keyframes) > 0
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "footage.md.j2").write_text("{{ report.camera }}: {{ report.threat_level }} ({{ report.findings|length }} findings)\n")
    md = write_footage_report(rep, coll, "md", tmp_path / "g.md", timezone.utc, template_dir=tdir)[0]
    assert md.read_text() == "main gate: high (3 findings)\n"


def test_hostile_record_text_and_file_names_stay_text(report, tmp_path: Path) -> None:
    im = report.images[0]
    odd = ReportImage("img1", str(tmp_path / "my photo (1) [x].png"), im.observation, image=im.image)
    recs = parse_records(b'text\n"<script>alert(1)</script> | dog\nnext line"\n', "n.csv")
    link_records(recs, {odd.id: odd.path})
    rep = build_report([odd], records=recs)
    html = write_report(rep, "html", tmp_path / "h.html")[0].read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md_files = write_report(rep, "md", tmp_path / "h.md")
    md = md_files[0].read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert md_files[1].name == "img1-my_photo_1_x.jpg" and "(h_files/img1-my_photo_1_x.jpg)" in md
    row = [line for line in md.splitlines() if line.startswith("| rec1 |")][-1]  # the Records table
    assert row.count(" | ") == 3 and "\\| dog next line" in row  # one table row, its pipe escaped


def test_heatmap_under_the_threshold_is_not_drawn() -> None:
    img = Image.new("RGB", (100, 100), (128, 128, 128))
    heat = np.full((10, 10), 0.5, np.float32)  # a clean part: everywhere about the typical good score
    heat[:3, :3] = 0.95
    out = np.asarray(annotate_image(img, heatmap=heat, heatmap_floor=0.55), dtype=np.int16)
    assert np.abs(out[60:, 60:] - 128).max() == 0  # under the threshold: untouched
    assert np.abs(out[5:20, 5:20] - 128).mean() > 20  # above it: drawn
    tinted = np.asarray(annotate_image(img, heatmap=heat), dtype=np.int16)
    assert np.abs(tinted[60:, 60:] - 128).mean() > 5  # without a floor the same map tints everything
