"""Editing an image: ``generate_image(image=..., mask=...)`` on a tiny random-weight Stable Diffusion
pipeline (the diffusers backend's inpainting form), ``Engine.generate(mask=...)``,
``oculi generate --image --mask`` and ``POST /v1/images/edits`` through the official ``openai``
client against oculi's own server on loopback.

An edit inside a mask must leave every pixel outside the mask as it was and change the inside;
bad input (not an image, too many pixels, a mask of another size or marking nothing, no prompt,
not multipart) is a 4xx or exit 2, and without a generator the answer is 400 ``no_generator``.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import InputError, ModelConfigError
from oculi.tasks.generate import mask_from

pytest.importorskip("diffusers")


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _start(w: int = 48, h: int = 24) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(np.repeat(np.repeat(rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8), 4, 0), 4, 1))


def _openai_mask(w: int, h: int, edit_box: tuple[int, int, int, int]) -> Image.Image:
    """OpenAI's convention: opaque everywhere, fully transparent where to edit."""
    m = Image.new("RGBA", (w, h), (0, 0, 0, 255))
    m.paste((0, 0, 0, 0), edit_box)
    return m


def _huge_png_header(w: int, h: int) -> bytes:
    """A valid PNG (one pixel's data) whose header claims ``w x h``: a size check must refuse it unread."""
    raw = _png(Image.new("RGB", (1, 1)))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[8 + 25:]


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("sd-edit") / "tiny-sd")


@pytest.fixture(scope="module")
def engine(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory):
    from oculi.engine import Engine

    return Engine(Settings(home=tmp_path_factory.mktemp("edit-home"), read_config_files=False,
                           models={"sd": {"backend": "diffusers", "path": str(tiny_sd), "device": "cpu", "steps": 2}},
                           tasks={"generate": "sd"}))


def test_mask_conventions_are_read_and_checked() -> None:
    m = mask_from(_openai_mask(8, 4, (0, 0, 4, 4)), (8, 4))  # transparent = edit → white
    assert m.mode == "L" and np.array_equal(np.asarray(m)[:, :4], np.full((4, 4), 255)) and np.asarray(m)[:, 4:].max() == 0
    white = Image.new("L", (8, 4), 0)
    white.paste(255, (4, 0, 8, 4))  # no alpha: white = edit, as diffusers reads it
    assert np.array_equal(np.asarray(mask_from(white, (8, 4))), np.asarray(white))
    with pytest.raises(InputError, match="the mask is 8x4; the image is 16x4"):
        mask_from(white, (16, 4))
    with pytest.raises(InputError, match="marks nothing to edit"):
        mask_from(Image.new("RGBA", (8, 4), (0, 0, 0, 255)), (8, 4))  # all opaque


def test_an_edit_changes_the_masked_pixels_and_keeps_every_other(engine) -> None:
    start = _start()
    mask = _openai_mask(48, 24, (0, 0, 24, 24))  # edit the left half
    g = engine.generate("a red cat", image=_png(start), mask=_png(mask), strength=1.0, steps=3, seed=2)
    out = np.asarray(g.images[0], dtype=np.int16)
    st = np.asarray(start, dtype=np.int16)
    assert g.images[0].size == (48, 24) and g.strength == 1.0
    assert np.array_equal(out[:, 24:], st[:, 24:])  # outside the mask: the start image's own pixels
    assert np.abs(out[:, :24] - st[:, :24]).mean() > 10  # inside: repainted
    again = engine.generate("a red cat", image=_png(start), mask=_png(mask), strength=1.0, steps=3, seed=2)
    assert np.array_equal(np.asarray(again.images[0], dtype=np.int16), out)  # same seed, same edit
    # without a mask the whole image changes (image-to-image)
    whole = np.asarray(engine.generate("a red cat", image=_png(start), strength=1.0, steps=3, seed=2).images[0], dtype=np.int16)
    assert np.abs(whole[:, 24:] - st[:, 24:]).mean() > 10
    with pytest.raises(InputError, match="must match"):
        engine.generate("a red cat", image=_png(start), mask=_png(_openai_mask(24, 24, (0, 0, 8, 8))), steps=2)
    with pytest.raises(InputError, match="needs an image"):
        engine.generate("a red cat", mask=_png(mask))
    with pytest.raises(InputError, match="not an image"):
        engine.generate("a red cat", image=_png(start), mask=b"this is not a png")


def test_a_generator_that_takes_no_mask_is_refused_one() -> None:
    """A plugin's generator written against the protocol without ``mask``: a mask is refused, never ignored."""
    from oculi.tasks.generate import generate

    class WholeImageOnly:
        name = "plain"

        def generate_image(self, prompt, *, image=None, steps=None, seed=None, width=None, height=None, strength=None):
            return [image]

    start = _start()
    with pytest.raises(ModelConfigError, match="cannot edit inside a mask"):
        generate(WholeImageOnly(), "a cat", image=start, mask=Image.new("L", start.size, 255))
    assert generate(WholeImageOnly(), "a cat", image=start, seed=1).images[0] is start  # no mask: fine


def test_cli_generate_with_image_and_mask(tiny_sd: Path, tmp_path: Path) -> None:
    from tests.unit.backends.test_diffusers_generate import _cli

    home = tmp_path / "home"
    home.mkdir()
    (home / "oculi.toml").write_text(f'[models.sd]\nbackend = "diffusers"\npath = "{tiny_sd}"\nsteps = 2\n'
                                     '[tasks]\ngenerate = "sd"\n', encoding="utf-8")
    start, mask = tmp_path / "start.png", tmp_path / "mask.png"
    _start().save(start)
    _openai_mask(48, 24, (24, 0, 48, 24)).save(mask)  # edit the right half
    out = tmp_path / "out.png"
    r = _cli(home, "generate", "a blue door", "--image", str(start), "--mask", str(mask), "--strength", "1", "--seed", "4",
             "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["images"] == [{"width": 48, "height": 24, "path": str(out)}] and doc["strength"] == 1.0
    with Image.open(out) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert np.array_equal(px[:, :24], np.asarray(_start(), dtype=np.int16)[:, :24])
    r = _cli(home, "generate", "a blue door", "--mask", str(mask), "-o", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "--mask needs --image" in r.stderr
    _openai_mask(20, 20, (0, 0, 4, 4)).save(mask)
    r = _cli(home, "generate", "a blue door", "--image", str(start), "--mask", str(mask), "-o", str(tmp_path / "y.png"))
    assert r.returncode == 2 and "must match" in r.stderr and not (tmp_path / "y.png").exists()


# --- POST /v1/images/edits ---------------------------------------------------------------------------
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def client(oculi_vlm_server):
    url, key, _ = oculi_vlm_server
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def _decoded(r) -> list[np.ndarray]:
    out = []
    for d in r.data:
        with Image.open(io.BytesIO(base64.b64decode(d.b64_json))) as im:
            assert im.format == "PNG"
            out.append(np.asarray(im.convert("RGB"), dtype=np.int16))
    return out


def test_images_edits_with_the_openai_client(client) -> None:
    start, mask = _png(_start()), _png(_openai_mask(48, 24, (0, 0, 24, 24)))
    r = client.images.edit(image=("start.png", start, "image/png"), mask=("mask.png", mask, "image/png"), prompt="a red cat",
                           n=2, extra_body={"seed": 9, "steps": 2, "strength": 1.0})
    ims = _decoded(r)
    st = np.asarray(_start(), dtype=np.int16)
    assert len(ims) == 2 and all(im.shape == (24, 48, 3) for im in ims)  # default size: the image's own
    assert all(np.array_equal(im[:, 24:], st[:, 24:]) for im in ims)  # outside the mask: kept
    assert not np.array_equal(ims[0][:, :24], ims[1][:, :24])  # seeds 9 and 10: two edits
    again = client.images.edit(image=("start.png", start, "image/png"), mask=("mask.png", mask, "image/png"),
                               prompt="a red cat", extra_body={"seed": 9, "steps": 2, "strength": 1.0})
    assert np.array_equal(_decoded(again)[0], ims[0])
    whole = client.images.edit(image=("start.png", start, "image/png"), prompt="a red cat", size="32x16",
                               extra_body={"seed": 9, "steps": 2})  # no mask: image-to-image, resized
    assert _decoded(whole)[0].shape == (16, 32, 3)
    assert whole.model_extra["oculi"]["seeds"] == [9] and whole.model_extra["oculi"]["model"] == "diffusers:tiny-sd"


def test_images_edits_refuses_bad_input_with_4xx(client, oculi_vlm_server) -> None:
    import httpx

    url, key, _ = oculi_vlm_server
    start = _png(_start())

    def post(files=None, data=None, **kw):
        return httpx.post(url + "/v1/images/edits", headers={"Authorization": f"Bearer {key}"}, files=files, data=data,
                          timeout=60, **kw)

    ok = {"prompt": "a red cat", "steps": "2"}
    cases = [
        (post(files={"image": ("a.png", b"not an image at all", "image/png")}, data=ok), 415, "not an image"),
        (post(files={"image": ("a.png", _huge_png_header(20000, 20000), "image/png")}, data=ok), 413, "pixels"),
        (post(files={"image": ("a.png", start, "image/png"), "mask": ("m.png", _png(_openai_mask(24, 24, (0, 0, 8, 8))),
                                                                        "image/png")}, data=ok), 400, "must match"),
        (post(files={"image": ("a.png", start, "image/png"), "mask": ("m.png", _png(Image.new("RGBA", (48, 24), (0, 0, 0, 255))),
                                                                        "image/png")}, data=ok), 400, "marks nothing"),
        (post(files={"image": ("a.png", start, "image/png")}, data={"steps": "2"}), 400, "'prompt' is required"),
        (post(files={"image": ("a.png", start, "image/png")}, data={**ok, "response_format": "url"}), 400, "b64_json"),
        (post(files={"image": ("a.png", start, "image/png")}, data={**ok, "size": "30x30"}), 400, "multiple of 8"),
        (post(files={"image": ("a.png", start, "image/png")}, data={**ok, "n": "9"}), 400, "'n' must lie"),
        (post(files={"image": ("a.png", start, "image/png")}, data={**ok, "model": "vlm"}), 400, "does not generate images"),
        (post(files={"image": ("a.png", start, "image/png")}, data={**ok, "quality": "high"}), 400, "quality is not supported"),
        (post(files={"image": ("a.png", start, "image/png")}, data={**ok, "output_format": "webp"}), 400, "output_format png"),
        (post(files=[("image", ("a.png", start, "image/png")), ("image", ("b.png", start, "image/png"))], data=ok), 400,
         "exactly one"),
        (post(data=ok), 415, "multipart"),  # a form without files is urlencoded
        (post(json={"prompt": "a red cat", "image": base64.b64encode(start).decode()}), 415, "multipart"),
    ]
    for r, status, words in cases:
        assert r.status_code == status and words in r.json()["error"]["message"], (status, words, r.status_code, r.text)
    with pytest.raises(openai.BadRequestError) as ei:  # the official client sees the same errors
        client.images.edit(image=("a.png", start, "image/png"), prompt="a cat", model="vlm")
    assert ei.value.body["param"] == "model"


def test_images_edits_without_a_generator_is_no_generator(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from oculi.engine import Engine
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig

    settings = Settings(home=tmp_path, read_config_files=False)
    key, _ = KeyStore(settings.home).create("read", name="edits")
    app = create_app(settings, Engine(settings), config=ServerConfig(rate_per_minute=0), warmup=False, start_jobs=False,
                     store_factory=None)
    with TestClient(app) as c:
        r = c.post("/v1/images/edits", headers={"Authorization": f"Bearer {key}"},
                   files={"image": ("a.png", _png(_start()), "image/png")}, data={"prompt": "a red cat"})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "no_generator" and err["param"] == "model" and "[tasks]" in err["message"]
