"""An inspection report with a real fitted inspector (tiny: 24 brick crops), records that
disagree with it, and the heat-map drawn into the PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.tasks.report import create_report, default_inspect, write_report


@pytest.fixture(scope="module")
def line(engine, tmp_path_factory):
    from oculi.tasks.inspect import fit_inspector
    from oculi.tasks.inspect.synth import add_defect, crop, texture

    root = tmp_path_factory.mktemp("line")
    (root / "good").mkdir()
    rng = np.random.default_rng(0)
    tex = texture("brick")
    for i in range(24):
        Image.fromarray(crop(tex, 256, rng)).save(root / "good" / f"{i:02d}.png")
    Image.fromarray(crop(tex, 256, rng)).save(root / "part-4712.png")
    bad, mask = add_defect(crop(tex, 256, rng), "hole", "large", rng)
    Image.fromarray(bad).save(root / "part-4711.png")
    Image.fromarray(crop(tex, 256, rng)[:200]).save(root / "part-4713.png")  # not the good parts' shape
    settings = engine.settings.model_copy(update={"home": root / "home"})
    fit_inspector(root / "good", "line-3", settings=settings)
    return root, settings, mask


@pytest.mark.slow
def test_inspection_report_flags_the_record_that_passed_a_defective_part(engine, line, tmp_path: Path) -> None:
    root, settings, mask = line
    (root / "qa.csv").write_text("part,status,inspector\n4711,passed,J. Smith\n4712,passed,J. Smith\n")
    rep = create_report(engine, [root / "part-4711.png", root / "part-4712.png", root / "part-4713.png"], kind="inspection",
                        records=root / "qa.csv", inspector="line-3", inspect=default_inspect(settings))
    by_name = {im.name: im for im in rep.images}
    bad, good = by_name["part-4711.png"], by_name["part-4712.png"]
    assert bad.inspection["pass"] is False and good.inspection["pass"] is True
    # the defect region is where the hole was drawn
    x1, y1, x2, y2 = bad.inspection["regions"][0]["box"]
    ys, xs = np.nonzero(mask)
    assert x1 <= xs.mean() <= x2 and y1 <= ys.mean() <= y2
    assert bad.heatmap is not None and bad.heatmap.shape == (256, 256)
    checks = {c.record: c for c in rep.cross_checks}
    assert checks["rec1"].status.value == "conflict" and checks["rec1"].images == (bad.id,)
    assert checks["rec2"].status.value == "consistent"
    assert rep.severity.value in ("high", "medium") and rep.rejected == []
    # a part shaped unlike the good ones is reported, not inspected, and not a crash
    assert [w for w in rep.warnings if w.startswith("part-4713.png not inspected:") and "256x200" in w]
    assert by_name["part-4713.png"].inspection is None

    assert any("Hold the part shown in part-4711.png" in s for s in rep.recommendations)
    pdf = write_report(rep, "pdf", tmp_path / "qa.pdf")[0]
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    doc = pdfium.PdfDocument(str(pdf))
    pics = [o for i in range(len(doc)) for o in doc[i].get_objects() if o.type == pdfium_c.FPDF_PAGEOBJ_IMAGE]
    assert len(pics) == len(rep.images)
    drawn = np.asarray(pics[0].get_bitmap().to_pil().convert("RGB").resize((256, 256)), dtype=np.int16)
    plain = np.asarray(Image.open(root / "part-4711.png").convert("RGB"), dtype=np.int16)
    diff = np.abs(drawn - plain).mean(axis=-1)
    assert diff[mask].mean() > 2 * diff[~mask].mean()  # the heat-map and box sit on the defect


@pytest.mark.slow
def test_an_inspector_fitted_on_too_few_images_says_so_in_the_limits(engine, line) -> None:
    from oculi.tasks.inspect import fit_inspector, load_inspector

    root, settings, _ = line
    few = root / "few"
    few.mkdir()
    for p in sorted((root / "good").glob("*.png"))[:8]:
        Image.open(p).resize((128, 128)).save(few / p.name)
    fit_inspector(few, "tiny", settings=settings)
    card_warnings = load_inspector("tiny", settings).card.warnings
    assert card_warnings  # eight good images: the card warns
    Image.open(root / "part-4711.png").resize((128, 128)).save(root / "small-4711.png")
    rep = create_report(engine, [root / "small-4711.png"], kind="inspection", inspector="tiny",
                        inspect=default_inspect(settings))
    assert all(any(w in lim and "'tiny'" in lim for lim in rep.limits) for w in card_warnings)


def test_a_report_says_which_product_type_an_inspector_of_several_took_each_part_for(engine, line) -> None:
    """With an inspector of several product types (`inspect fit --classes`), each finding says
    the type the part was inspected as, and that word passes the report's grounding (it is in
    the inspection result)."""
    from oculi.tasks.inspect import fit_inspector
    from oculi.tasks.inspect.synth import crop, texture

    root, settings, _ = line
    plant = root / "plant"
    (plant / "brick").mkdir(parents=True)
    (plant / "grain").mkdir()
    rng = np.random.default_rng(5)
    grain = texture("grain", seed=2)
    for p in sorted((root / "good").glob("*.png")):  # the line's 24 good bricks: 5 held out for the threshold
        (plant / "brick" / p.name).write_bytes(p.read_bytes())
    for i in range(12):
        Image.fromarray(crop(grain, 256, rng)).save(plant / "grain" / f"{i:02d}.png")
    fit_inspector(plant, "plant", settings=settings, classes=True)
    rep = create_report(engine, [root / "part-4711.png", root / "part-4712.png"], kind="inspection", inspector="plant",
                        inspect=default_inspect(settings))
    texts = [f.text for im in rep.images for f in im.findings if f.kind.value == "anomaly"]
    assert len(texts) == 2 and all("(inspected as brick)" in t for t in texts), texts
    assert rep.images[0].inspection["class"] == "brick" and rep.images[0].inspection["pass"] is False
    assert rep.rejected == []
