"""The top-level Python API: the same tasks as the CLI, with typed results."""

from __future__ import annotations

import shutil

import pytest

import oculi
import oculi.engine as engine_mod
from oculi.config import Settings

pytestmark = pytest.mark.slow


@pytest.fixture()
def default_engine(engine, tmp_path, monkeypatch):
    """The process default engine, with its state in a temp home but the loaded models reused."""
    eng = oculi.Engine(Settings(home=tmp_path / "home", assets_dir=engine.settings.assets_dir))
    eng._backends = engine._backends  # share the already-loaded models
    monkeypatch.setattr(engine_mod, "_default", eng)
    return eng


def test_typed_results(default_engine, samples_dir):
    cap = oculi.caption(samples_dir / "chelsea.png")
    assert isinstance(cap, oculi.Caption) and "cat" in cap.caption
    ans = oculi.ask(samples_dir / "astronaut.png", "How many people are in the photo?")
    assert isinstance(ans, oculi.Answer) and ans.answer.startswith("1") and ans.evidence[0].box is not None
    det = oculi.detect(samples_dir / "coffee.png")
    assert [o.label for o in det.objects] == ["cup"]
    assert "segmentation" in oculi.read(samples_dir / "page.png").text
    with pytest.raises(oculi.InputError):
        oculi.ask(samples_dir / "coffee.png", "")


def test_index_and_search(default_engine, samples_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        shutil.copy(samples_dir / f"{name}.png", folder)
    report = oculi.index(str(folder), collection="pets")
    assert report.added == 4 and not report.failed and not report.interrupted
    hits = oculi.search("a cat", collection="pets").to_dict()["results"]
    assert hits[0]["path"].endswith("chelsea.png")
    by_image = oculi.search(image=samples_dir / "rocket.png", collection="pets").to_dict()["results"]
    assert by_image[0]["path"].endswith("rocket.png")
