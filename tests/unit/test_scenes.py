"""The evaluation scenes are deterministic and recolour only what is red."""

from __future__ import annotations

import hashlib

import numpy as np
from skimage import color, data

from oculi.scenes import SCENES, recolour_red, write_vqa_images


def test_scenes_are_the_same_pixels_every_time():
    for name, make in SCENES.items():
        first = make()
        assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3, name
        assert hashlib.sha256(first.tobytes()).digest() == hashlib.sha256(make().tobytes()).digest(), name


def test_every_evaluation_image_is_written(tmp_path, monkeypatch):
    import oculi.scenes as scenes

    monkeypatch.setattr(scenes, "SCENES", {"coffee_blue": SCENES["coffee_blue"]})  # one scene is enough here
    paths = write_vqa_images(tmp_path)
    assert {"china", "flower", "coffee", "chelsea", "coffee_blue"} <= set(paths)
    assert all(p.exists() and p.suffix == ".png" for p in paths.values())


def test_recolouring_turns_red_blue_and_leaves_the_rest():
    rgb = data.coffee()
    out = recolour_red(rgb, 220.0)
    hsv_in, hsv_out = color.rgb2hsv(rgb), color.rgb2hsv(out)
    changed = np.any(np.abs(out.astype(int) - rgb.astype(int)) > 2, axis=-1)
    hue_in = hsv_in[..., 0] * 360
    red = ((hue_in >= 345) | (hue_in < 15)) & (hsv_in[..., 1] > 0.4) & (hsv_in[..., 2] > 0.15)
    assert 0.1 < red.mean() < 0.5  # the cup and saucer
    assert not changed[~red].any()  # the table, the coffee, the spoon are untouched
    assert np.allclose(hsv_out[..., 0][red] * 360, 220, atol=1)
