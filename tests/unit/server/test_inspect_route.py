"""``POST /api/v1/inspect``: a real inspector fitted on generated good parts, served over HTTP."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.config import Settings
from oculi.tasks.inspect import fit_inspector
from oculi.tasks.inspect.synth import add_defect, crop, texture

from tests.unit.server.conftest import bearer

SIDE = 128


@pytest.fixture()
def settings(home: Path) -> Settings:  # the real model assets: the inspector runs for real
    return Settings(home=home, assets_dir=Settings().assets_dir, max_image_bytes=2_000_000, max_image_pixels=4_000_000)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_inspect_route_flags_the_defect_passes_the_clean_part_and_lists_bad_uploads(settings: Settings, make_client, keys,
                                                                                    tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    tex = texture("grain", seed=3)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(10):
        Image.fromarray(crop(tex, SIDE, rng)).save(good / f"{i}.png")
    fit_inspector(good, "line-7", settings=settings)
    bad_part, mask = add_defect(crop(tex, SIDE, rng), "hole", "large", rng)
    clean = crop(tex, SIDE, rng)
    c = make_client()
    files = [("image", ("bad.png", _png(bad_part), "image/png")), ("image", ("clean.png", _png(clean), "image/png")),
             ("image", ("junk.png", b"not an image", "image/png"))]
    r = c.post("/api/v1/inspect", files=files, data={"name": "line-7", "heatmaps": "true"}, headers=bearer(keys["read"]))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["schema"] == "oculi.inspect/1"
    assert [(x["path"], x["pass"]) for x in doc["results"]] == [("bad.png", False), ("clean.png", True)]
    assert [e["path"] for e in doc["errors"]] == ["junk.png"]
    x1, y1, x2, y2 = doc["results"][0]["regions"][0]["box"]
    assert mask[y1:y2, x1:x2].sum() > 0.5 * mask.sum()
    assert doc["results"][0]["heatmap"].startswith("data:image/png;base64,")

    r = c.post("/api/v1/inspect", files=files[:1], data={"name": "no-such-line"}, headers=bearer(keys["read"]))
    assert r.status_code == 404 and "line-7" in r.text
    r = c.post("/api/v1/inspect", files=files[:1], data={"name": "line-7"})
    assert r.status_code == 401
    r = c.post("/api/v1/inspect", json={"name": "line-7"}, headers=bearer(keys["read"]))
    assert r.status_code == 415
