"""The ``diffusers`` backend and ``oculi generate`` on a tiny random-weight Stable Diffusion pipeline
built from configs in the test and saved to a folder (the folder a user points ``path`` at).

Text-to-image and image-to-image through the real pipeline: sizes, seeds (same seed → same
pixels, another → other pixels), steps reported as progress, bad input refused; the CLI writes a
PNG and, with no generator configured, says so, names the oculi.toml that fixes it and exits 4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import InputError, ModelConfigError

pytest.importorskip("diffusers")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


def _backend(path: Path, home: Path, **kw: object):
    from oculi.backends.diffusers_backend import DiffusersBackend, DiffusersOptions

    return DiffusersBackend("sd", DiffusersOptions(backend="diffusers", path=str(path), device="cpu", steps=2, **kw),
                            Settings(home=home, read_config_files=False))


def test_text_to_image_is_seeded_sized_and_reports_steps(tiny_sd: Path, tmp_path: Path) -> None:
    b = _backend(tiny_sd, tmp_path)
    assert b.capabilities == {"generate_image"} and b.model_id == "diffusers:tiny-sd"
    steps: list[tuple[int, int]] = []
    a = b.generate_image("a red bicycle against a brick wall", seed=3, width=32, height=24, steps=3,
                         progress=lambda i, n: steps.append((i, n)))
    assert len(a) == 1 and isinstance(a[0], Image.Image) and a[0].size == (32, 24)
    assert steps == [(1, 3), (2, 3), (3, 3)]
    again = b.generate_image("a red bicycle against a brick wall", seed=3, width=32, height=24, steps=3)
    other = b.generate_image("a red bicycle against a brick wall", seed=4, width=32, height=24, steps=3)
    px = [np.asarray(im[0], dtype=np.int16) for im in (a, again, other)]
    assert np.array_equal(px[0], px[1])  # same seed, same pixels
    assert np.abs(px[0] - px[2]).mean() > 1.0  # another seed, another image
    assert px[0].std() > 0  # not a blank image
    default = b.generate_image("a cat", seed=0)
    assert default[0].size == (16, 16)  # the pipeline's own size (sample_size 8 x VAE factor 2)


def test_image_to_image_starts_from_the_given_image(tiny_sd: Path, tmp_path: Path) -> None:
    b = _backend(tiny_sd, tmp_path)
    start = Image.new("RGB", (40, 24), (230, 20, 20))
    near = b.generate_image("a cat", image=start, strength=0.2, steps=10, seed=1)[0]
    far = b.generate_image("a cat", image=start, strength=1.0, steps=10, seed=1)[0]
    assert near.size == (40, 24)
    red = np.asarray(start.resize(near.size), dtype=np.float32)
    d_near = np.abs(np.asarray(near, dtype=np.float32) - red).mean()
    d_far = np.abs(np.asarray(far, dtype=np.float32) - red).mean()
    assert d_near < d_far  # low strength stays closer to the start image


def test_bad_input_and_bad_folders_are_refused(tiny_sd: Path, tmp_path: Path) -> None:
    b = _backend(tiny_sd, tmp_path)
    with pytest.raises(InputError, match="prompt is empty"):
        b.generate_image("  ")
    with pytest.raises(InputError, match="multiple of 8"):
        b.generate_image("a cat", width=30)
    with pytest.raises(InputError, match="steps must be"):
        b.generate_image("a cat", steps=0)
    with pytest.raises(ModelConfigError, match="does not exist"):
        _backend(tmp_path / "nope", tmp_path).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelConfigError, match="not a diffusers pipeline folder"):
        _backend(tmp_path / "empty", tmp_path).load()
    with pytest.raises(ValueError):
        _backend(tiny_sd, tmp_path, sampler="euler")  # an unknown option is an error, not a default


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OCULI_HOME": str(home), "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    return subprocess.run([sys.executable, "-m", "oculi", *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=home)


def test_generate_cli_writes_the_image_and_without_a_generator_says_what_to_configure(tiny_sd: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out.png"
    r = _cli(home, "generate", "a red bicycle against a brick wall", "-o", str(out))
    assert r.returncode == 4, r.stderr
    assert "no image generator is configured" in r.stderr and 'backend = "diffusers"' in r.stderr
    assert "[tasks]" in r.stderr and "generate" in r.stderr and not out.exists()
    (home / "oculi.toml").write_text(f'[models.sd]\nbackend = "diffusers"\npath = "{tiny_sd}"\nsteps = 2\n'
                                     '[tasks]\ngenerate = "sd"\n', encoding="utf-8")
    r = _cli(home, "generate", "a red bicycle against a brick wall", "-o", str(out), "--seed", "7", "--steps", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["seed"] == 7 and doc["steps"] == 2 and doc["model"] == "diffusers:tiny-sd"
    assert doc["images"] == [{"width": 16, "height": 16, "path": str(out)}]
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (16, 16)
    r = _cli(home, "generate", "a cat", "-o", str(out))
    assert r.returncode == 2 and "--overwrite" in r.stderr  # an existing file is kept
    r = _cli(home, "generate", "a cat", "-o", str(out), "--model", "builtin", "--overwrite")
    assert r.returncode == 4 and "builtin" in r.stderr


def test_python_api_twin(tiny_sd: Path, tmp_path: Path) -> None:
    from oculi.engine import Engine
    from oculi.tasks.generate import NoGeneratorError

    eng = Engine(Settings(home=tmp_path, read_config_files=False))
    with pytest.raises(NoGeneratorError, match=r"\[tasks\]"):
        eng.generate("a cat")
    eng = Engine(Settings(home=tmp_path, read_config_files=False,
                          models={"sd": {"backend": "diffusers", "path": str(tiny_sd), "steps": 2}}, tasks={"generate": "sd"}))
    g = eng.generate("a cat", seed=5)
    assert g.seed == 5 and g.model == "diffusers:tiny-sd" and len(g.images) == 1
    d = g.to_dict()
    assert d["schema_version"] and d["prompt"] == "a cat" and d["images"] == [{"width": 16, "height": 16}]
    g2 = eng.generate("a cat")  # a drawn seed is reported, so the image can be made again
    assert np.array_equal(np.asarray(eng.generate("a cat", seed=g2.seed).images[0]), np.asarray(g2.images[0]))
