"""Inspection end to end on generated textures: fit on good parts, catch and locate a defect,
pass a clean part, store the model, refuse or warn on bad input; ``oculi inspect`` and
``oculi eval inspect`` on a tiny MVTec-layout folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.config import Settings
from oculi.core.errors import InputError, NotFoundError
from oculi.tasks.inspect import fit_inspector, inspect_images
from oculi.tasks.inspect.synth import add_defect, crop, texture, write_mvtec
from oculi.tasks.inspect.whiten import WHITEN_REG

SIDE = 160


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """12 good crops of the generated wood-grain texture, a clean part, and parts with drawn defects."""
    root = tmp_path_factory.mktemp("parts")
    rng = np.random.default_rng(7)
    tex = texture("grain", seed=3)
    good = root / "good"
    good.mkdir()
    for i in range(12):
        Image.fromarray(crop(tex, SIDE, rng)).save(good / f"g{i:02d}.png")
    clean = root / "clean.png"
    Image.fromarray(crop(tex, SIDE, rng)).save(clean)
    defects = {}
    for kind in ("hole", "scratch"):
        img, mask = add_defect(crop(tex, SIDE, rng), kind, "large", rng)
        p = root / f"{kind}.png"
        Image.fromarray(img).save(p)
        defects[kind] = (p, mask)
    return {"root": root, "good": good, "clean": clean, "defects": defects}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def isettings(home: Path) -> Settings:
    return Settings(home=home, assets_dir=Settings().assets_dir)


@pytest.fixture(scope="module")
def card(parts: dict, isettings: Settings):
    return fit_inspector(parts["good"], "grain-line", settings=isettings)


def _overlap(box: tuple[int, int, int, int], mask: np.ndarray) -> int:
    x1, y1, x2, y2 = box
    return int(mask[y1:y2, x1:x2].sum())


def test_fit_stores_a_versioned_checksummed_model_with_its_card(card, isettings: Settings) -> None:
    from oculi.store.trained import TrainedStore

    assert card.name == "grain-line" and card.version == 1
    assert card.n_good == 12 and card.n_val >= 2 and card.n_fit + card.n_val == 12
    assert 0 < card.bank_size < card.patches_seen  # the coreset kept a subset
    assert card.image_size == (SIDE, SIDE)
    assert f"{card.percentile:g}th percentile" in card.threshold_statement()
    store = TrainedStore.for_home(isettings.home)
    [t] = [t for t in store.list() if t.name == "grain-line"]
    assert t.kind == "inspector"
    assert [s.state for s in store.check() if s.name == "grain-line"] == ["ok"]
    md = (Path(card.path) / "card.md").read_text()
    assert "held-out good images" in md and "grain-line" in md
    assert card.whitening == WHITEN_REG and "whitened with the good patches' covariance" in md
    assert (Path(card.path) / "whiten.npy").is_file()


def test_an_inspector_without_whitening_still_loads_and_finds_the_defect(parts: dict, isettings: Settings) -> None:
    """Inspectors fitted before whitening have raw-feature banks and no whiten.npy; they load and
    score as before."""
    plain = fit_inspector(parts["good"], "plain-line", settings=isettings, whiten=None)
    assert plain.whitening is None and not (Path(plain.path) / "whiten.npy").exists()
    assert "Euclidean between the raw features" in (Path(plain.path) / "card.md").read_text()
    res = inspect_images([parts["clean"], parts["defects"]["hole"][0]], "plain-line", settings=isettings)
    assert [r.passed for r in res] == [True, False]


@pytest.mark.parametrize("kind", ["hole", "scratch"])
def test_a_clearly_visible_defect_is_caught_and_located(kind: str, parts: dict, card, isettings: Settings, tmp_path: Path) -> None:
    path, mask = parts["defects"][kind]
    [r] = inspect_images([path], "grain-line", settings=isettings, heatmaps_dir=tmp_path)
    assert not r.passed and r.score > r.threshold
    assert r.regions, r.finding
    assert _overlap(r.regions[0].box, mask) > 0.5 * mask.sum()  # the box covers most of the drawn defect
    assert r.heatmap.shape == (SIDE, SIDE) and r.heatmap.dtype == np.float32
    assert 0.0 <= float(r.heatmap.min()) and float(r.heatmap.max()) <= 1.0
    assert float(r.heatmap[mask].mean()) > float(r.heatmap[~mask].mean())
    assert r.finding.startswith(r.regions[0].description) and f"threshold {r.threshold:.2f}" in r.finding
    assert Image.open(r.heatmap_path).size == (SIDE, SIDE)
    if kind == "hole":  # a near-black disc: measured darker than its surroundings, not elongated
        assert r.regions[0].contrast < 0 and r.regions[0].description.startswith("dark")
    else:
        assert r.regions[0].elongation >= 3 and "linear" in r.regions[0].description


def test_a_clean_part_passes(parts: dict, card, isettings: Settings) -> None:
    [r] = inspect_images([parts["clean"]], "grain-line", settings=isettings)
    assert r.passed and r.regions == [] and r.finding.startswith("no anomaly above the threshold")
    d = r.to_dict()
    assert d["pass"] is True and set(d) >= {"path", "score", "threshold", "pass", "regions", "heatmap", "finding"}


def test_bad_images_are_reported_and_the_rest_inspected(parts: dict, card, isettings: Settings, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    portrait = tmp_path / "portrait.png"
    Image.open(parts["clean"]).resize((SIDE // 2, SIDE)).save(portrait)
    bigger = tmp_path / "bigger.png"
    Image.open(parts["clean"]).resize((2 * SIDE, 2 * SIDE)).save(bigger)
    errors: list = []
    res = inspect_images([corrupt, portrait, bigger, parts["clean"]], "grain-line", settings=isettings, errors=errors)
    assert [Path(r.path).name for r in res] == ["bigger.png", "clean.png"]
    assert [Path(p).name for p, _ in errors] == ["corrupt.png", "portrait.png"]
    assert "portrait" in errors[1][1] and f"{SIDE}x{SIDE}" in errors[1][1]
    assert any("320x320" in w for w in res[0].warnings) and res[1].warnings == []
    with pytest.raises(InputError):
        inspect_images([corrupt], "grain-line", settings=isettings)
    with pytest.raises(NotFoundError, match="grain-line"):
        inspect_images([parts["clean"]], "no-such-line", settings=isettings)


def test_fit_refuses_empty_or_single_image_folders_and_warns_on_few(parts: dict, isettings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        fit_inspector(empty, "x", settings=isettings)
    one = tmp_path / "one"
    one.mkdir()
    Image.open(parts["clean"]).save(one / "a.png")
    with pytest.raises(InputError, match="at least 2"):
        fit_inspector(one, "x", settings=isettings)
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(parts["good"].iterdir())[:4]:
        (few / p.name).write_bytes(p.read_bytes())
    (few / "broken.png").write_bytes(b"not a png")
    c = fit_inspector(few, "few-line", settings=isettings)
    assert any("only 4 good images" in w for w in c.warnings)
    assert any("broken.png" in s for s in c.skipped)


def test_cli_inspect_json_and_eval_on_a_tiny_mvtec_folder(parts: dict, card, isettings: Settings, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from oculi.cli.main import app

    monkeypatch.setenv("OCULI_HOME", str(isettings.home))
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(isettings.assets_dir))
    runner = CliRunner()
    hole = parts["defects"]["hole"][0]
    res = runner.invoke(app, ["inspect", str(hole), str(parts["clean"]), "--name", "grain-line", "--json", "--heatmaps", str(tmp_path / "hm")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "oculi.inspect/1"
    assert [r["pass"] for r in doc["results"]] == [False, True]
    assert Path(doc["results"][0]["heatmap"]).is_file() and doc["results"][0]["regions"][0]["box"]

    mv = write_mvtec(tmp_path / "mvtec", ["grain"], n_train=8, n_test_good=3, n_per_defect=3, size=SIDE, defects=["hole", "scratch"])
    res = runner.invoke(app, ["eval", "inspect", str(mv), "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    [cat] = ev["categories"]
    assert cat["category"] == "grain" and cat["n_test"] == 9 and set(cat["by_defect"]) == {"hole", "scratch"}
    assert 0.0 <= cat["image_auroc"] <= 1.0 and 0.5 < cat["pixel_auroc"] <= 1.0
    res = runner.invoke(app, ["eval", "inspect", str(mv)])
    assert res.exit_code == 0 and "image AUROC" in res.stdout and "pixel AUROC" in res.stdout
    res = runner.invoke(app, ["eval", "inspect", str(tmp_path)])  # not the MVTec layout
    assert res.exit_code == 2 and "MVTec" in res.output


def test_heatmaps_of_images_with_one_file_name_are_both_kept(parts: dict, card, isettings: Settings, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "part.png").write_bytes(parts["clean"].read_bytes())
    (b / "part.png").write_bytes(parts["defects"]["hole"][0].read_bytes())
    res = inspect_images([a / "part.png", b / "part.png"], "grain-line", settings=isettings, heatmaps_dir=tmp_path / "hm")
    assert [Path(r.heatmap_path).name for r in res] == ["part.heatmap.png", "part-2.heatmap.png"]
    assert [r.passed for r in res] == [True, False]


def test_an_inspector_fitted_with_other_patch_features_is_refused_with_the_fix(parts: dict, isettings: Settings) -> None:
    """A bank is only comparable with the features it was built from: an inspector whose card
    names another extractor (an older oculi's, or another backend's of the same width) is refused,
    naming the command that fits it again, instead of scoring against the wrong features."""
    from oculi.core.errors import ModelAssetError
    from oculi.perception.patches import PatchFeatureExtractor, shared_extractor

    class OlderFeatures(PatchFeatureExtractor):
        name = "efficientnet-lite0-s3s5-mirror16"  # the previous version's features, by name

    real = shared_extractor(isettings)
    older = OlderFeatures(isettings)
    older._runner, older.runtime = real._runner, real.runtime  # same width and numbers, other name
    fit_inspector(parts["good"], "older-line", settings=isettings, backend=older)
    with pytest.raises(ModelAssetError, match=r"other patch features.*oculi inspect fit --good DIR --name older-line"):
        inspect_images([parts["clean"]], "older-line", settings=isettings)


def test_one_inspector_for_two_product_types_routes_each_part_to_its_type(isettings: Settings, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`inspect fit --classes`: one subfolder per product type, one inspector for both. A part is
    scored as the type it looks like, against that type's own threshold; a defect on either type
    is caught; the card lists the types; eval --one-model says how many parts were taken for
    their own type."""
    from oculi.cli.main import app

    rng = np.random.default_rng(11)
    good = tmp_path / "good"
    tex = {"grain": texture("grain", seed=3), "weave": texture("weave", seed=4)}
    for kind, t in tex.items():
        (good / kind).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(crop(t, SIDE, rng)).save(good / kind / f"{i:02d}.png")
    card = fit_inspector(good, "two-types", settings=isettings, classes=True)
    assert [c["name"] for c in card.classes] == ["grain", "weave"]
    assert all(c["n_fit"] + c["n_val"] == 10 and 0 < c["threshold"] < 1 for c in card.classes)
    stored = {p.name for p in Path(card.path).iterdir()}
    assert {"bank-0.npy", "bank-1.npy", "whiten-0.npy", "whiten-1.npy"} <= stored and "bank.npy" not in stored
    assert "## Product types" in (Path(card.path) / "card.md").read_text()
    parts = tmp_path / "parts"
    parts.mkdir()
    for kind, t in tex.items():
        Image.fromarray(crop(t, SIDE, rng)).save(parts / f"{kind}-clean.png")
        img, _ = add_defect(crop(t, SIDE, rng), "hole", "large", rng)
        Image.fromarray(img).save(parts / f"{kind}-hole.png")
    files = sorted(parts.iterdir())  # grain-clean, grain-hole, weave-clean, weave-hole
    res = inspect_images(files, "two-types", settings=isettings)
    assert [r.part_class for r in res] == ["grain", "grain", "weave", "weave"]
    assert [r.passed for r in res] == [True, False, True, False]
    assert res[0].threshold != res[2].threshold  # each type its own threshold
    assert res[1].to_dict()["class"] == "grain"

    monkeypatch.setenv("OCULI_HOME", str(isettings.home))
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(isettings.assets_dir))
    runner = CliRunner()
    mv = write_mvtec(tmp_path / "mvtec", ["grain", "weave"], n_train=8, n_test_good=3, n_per_defect=3, size=SIDE, defects=["hole"])
    res = runner.invoke(app, ["eval", "inspect", str(mv), "--one-model", "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["one_model"] is True and [c["category"] for c in ev["categories"]] == ["grain", "weave"]
    assert all(c["type_accuracy"] == 1.0 and c["image_auroc"] > 0.5 for c in ev["categories"])


def test_classes_needs_one_subfolder_per_type(parts: dict, isettings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="one subfolder of .* per product type, at least two"):
        fit_inspector(parts["good"], "no-types", settings=isettings, classes=True)  # images, no subfolders
    mixed = tmp_path / "mixed"
    for kind in ("a", "b"):
        (mixed / kind).mkdir(parents=True)
        for p in sorted(parts["good"].iterdir())[:4]:
            (mixed / kind / p.name).write_bytes(p.read_bytes())
    (mixed / "loose.png").write_bytes(parts["clean"].read_bytes())
    with pytest.raises(InputError, match="must sit in its type's subfolder"):
        fit_inspector(mixed, "mixed", settings=isettings, classes=True)
    (mixed / "loose.png").unlink()
    with pytest.raises(InputError, match="no subfolder 'a'"):
        fit_inspector(mixed, "mixed", settings=isettings, classes=True, val_dir=tmp_path)
