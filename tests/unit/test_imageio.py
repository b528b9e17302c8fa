"""Bad input gets one clear InputError; good images of every supported format decode to RGB."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from oculi.core.errors import InputError
from oculi.imageio import load_image, load_image_bytes, sniff_format


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"])
def test_formats_decode_to_rgb(fmt):
    img = Image.fromarray(data.astronaut())
    li = load_image_bytes(_encode(img, fmt), name=f"x.{fmt}")
    assert li.image.mode == "RGB" and li.image.size == (512, 512)
    assert li.info.format == fmt.lower() and len(li.info.sha256) == 64


def test_rgba_and_grey_become_rgb():
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    li = load_image_bytes(_encode(rgba, "PNG"))
    assert li.image.getpixel((0, 0)) == (255, 255, 255)  # transparent → white background
    grey = Image.fromarray(data.camera())
    assert load_image_bytes(_encode(grey, "PNG")).image.mode == "RGB"


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    li = load_image_bytes(_encode(img, "JPEG", exif=exif))
    assert li.image.size == (20, 40)


def test_missing_dir_empty_and_not_image(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "notes.txt").write_text("hello, not an image")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "notes.txt")


def test_truncated_jpeg(tmp_path: Path):
    full = _encode(Image.fromarray(data.coffee()), "JPEG", quality=90)
    p = tmp_path / "cut.jpg"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputError, match="truncated|corrupt"):
        load_image(p)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height with a tiny (invalid) body: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(InputError, match="pixels"):
        load_image_bytes(_png_header_only(50000, 50000))


def test_byte_limit():
    with pytest.raises(InputError, match="over the limit"):
        load_image_bytes(b"x" * 101, max_bytes=100)


def test_unsupported_format():
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="unsupported"):
        load_image_bytes(_encode(img, "PPM"))


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    li = load_image_bytes(buf.getvalue())
    r, g, b = li.image.getpixel((0, 0))
    assert r > 200 and g < 50


def test_heic_phone_photo_decodes():
    pytest.importorskip("pillow_heif")
    img = Image.fromarray(data.coffee())
    li = load_image_bytes(_encode(img, "HEIF", quality=80), name="IMG_0001.HEIC")
    assert li.info.format == "heif" and li.image.size == (600, 400) and li.image.mode == "RGB"


def test_one_sniffer_knows_every_decodable_format():
    img = Image.fromarray(data.astronaut()[::8, ::8])
    for fmt, name in (("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff")):
        encoded = _encode(img, fmt)
        assert sniff_format(encoded) == name, fmt
        assert load_image_bytes(encoded).info.format in (name, "mpo")
    big_endian_tiff = b"MM\x00*" + bytes(60)
    assert sniff_format(big_endian_tiff) == "tiff"
    for junk in (b"", b"RIFF\0\0\0\0WAVE", b"%PDF-1.7\n", b"\x00\x00\x00\x18ftypmp42", b"<svg xmlns=...>"):
        assert sniff_format(junk) is None, junk


def test_sniffer_accepts_heic():
    pytest.importorskip("pillow_heif")
    encoded = _encode(Image.fromarray(data.coffee()[::4, ::4]), "HEIF", quality=80)
    assert encoded[4:12] == b"ftypheic"
    assert sniff_format(encoded) == "heif"
    assert load_image_bytes(encoded).info.format == "heif"


# --- high bit depth: 16-bit and float images are scaled by their own range ------------------------

def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def _grey(li) -> np.ndarray:
    arr = np.asarray(li.image)
    assert li.image.mode == "RGB" and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    return arr[..., 0]


@pytest.mark.parametrize("fmt,bits", [("PNG", 16), ("PNG", 12), ("TIFF", 16), ("TIFF", 10)])
def test_16bit_greyscale_photo_keeps_its_picture(fmt: str, bits: int) -> None:
    cam = data.camera()  # 8-bit greyscale photo
    wide = (cam.astype(np.uint16) << (bits - 8)) | (cam.astype(np.uint16) >> (16 - bits))  # the sensor's bits, 0-padded above
    encoded = _encode(Image.fromarray(wide), fmt)
    assert Image.open(io.BytesIO(encoded)).mode.startswith("I;16")
    g = _grey(load_image_bytes(encoded))
    assert _corr(g, cam) > 0.999  # the same picture...
    assert g.min() <= 2 and g.max() >= 253 and 30 < g.std() < 100  # ...using the 8-bit range, not solid white


def test_big_endian_and_32bit_integer_greyscale() -> None:
    ramp = np.tile(np.linspace(1000, 3000, 128), (32, 1))
    big = Image.frombytes("I;16B", (128, 32), ramp.astype(">u2").tobytes())
    tif = _encode(big, "TIFF")
    assert Image.open(io.BytesIO(tif)).mode == "I;16B"
    g = _grey(load_image_bytes(tif))
    assert g[0, 0] == 0 and g[0, -1] == 255 and (np.diff(g[0].astype(int)) >= 0).all()
    i32 = Image.fromarray((ramp * 1000).astype(np.int32))  # mode "I"
    g32 = _grey(load_image_bytes(_encode(i32, "TIFF")))
    assert np.abs(g32.astype(int) - g.astype(int)).max() <= 1


def test_float_tiff_with_outliers_and_nan() -> None:
    coins = data.coins().astype(np.float32) / 255.0 * 0.02 - 0.005  # a tiny, partly negative range
    coins[0, 0] = 1e6  # one hot pixel must not flatten the rest
    coins[1, :5] = np.nan
    tif = _encode(Image.fromarray(coins), "TIFF")
    assert Image.open(io.BytesIO(tif)).mode == "F"
    g = _grey(load_image_bytes(tif))
    ref = data.coins()
    inner = (slice(2, None), slice(None))
    assert _corr(g[inner], ref[inner]) > 0.99 and g[inner].std() > 30  # was solid black
    assert (g[1, :5] == 0).all() and g[0, 0] == 255


def test_flat_high_bit_images_keep_their_level() -> None:
    g16 = _grey(load_image_bytes(_encode(Image.fromarray(np.full((8, 8), 32768, np.uint16)), "PNG")))
    assert (g16 == 128).all()
    gf = _grey(load_image_bytes(_encode(Image.fromarray(np.full((8, 8), 0.25, np.float32)), "TIFF")))
    assert (gf == 64).all()


# --- special files --------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_named_like_an_image_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def go() -> None:
        try:
            load_image(fifo)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("load_image blocked on a FIFO")
    assert isinstance(outcome[0], InputError) and "FIFO" in str(outcome[0]) and "not a regular file" in str(outcome[0])
    with pytest.raises(InputError, match="character device, not a regular file"):
        load_image("/dev/zero")
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)


# --- draft (reduced-size) JPEG decoding ------------------------------------------------------

def _quadrants(w: int, h: int) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = 255
    return Image.fromarray(a)


def _corner_colours(img: Image.Image) -> list[tuple[int, ...]]:
    w, h = img.size
    return [img.getpixel((round(x * w), round(y * h))) for x, y in ((0.1, 0.1), (0.9, 0.1), (0.1, 0.9), (0.9, 0.9))]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_draft_decode_keeps_orientation_and_reports_the_full_size(orientation: int):
    upright = _quadrants(2400, 1600)
    stored = {1: upright, 3: upright.transpose(Image.Transpose.ROTATE_180),
              6: upright.transpose(Image.Transpose.ROTATE_90), 8: upright.transpose(Image.Transpose.ROTATE_270)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data_ = _encode(stored, "JPEG", exif=exif, quality=90)
    full = load_image_bytes(data_)
    small = load_image_bytes(data_, draft_long_side=1000)
    assert full.image.size == (2400, 1600)
    assert small.image.size == (1200, 800)  # 1/2: the largest reduction keeping >= 1000 px
    assert (small.info.width, small.info.height) == (2400, 1600) == (full.info.width, full.info.height)
    assert small.info.sha256 == full.info.sha256
    for a, b in zip(_corner_colours(small.image), _corner_colours(full.image)):
        assert max(abs(x - y) for x, y in zip(a, b)) < 12  # same picture, same way up


def test_draft_is_used_only_when_the_result_is_large_enough():
    data_ = _encode(_quadrants(1800, 1200), "JPEG")
    assert load_image_bytes(data_, draft_long_side=1000).image.size == (1800, 1200)  # 1/2 would be 900
    assert load_image_bytes(data_, draft_long_side=451).image.size == (900, 600)
    assert load_image_bytes(data_, draft_long_side=450).image.size == (450, 300)
    assert load_image_bytes(data_, draft_long_side=200).image.size == (225, 150)  # 1/8 at most
    png = _encode(_quadrants(1800, 1200), "PNG")
    assert load_image_bytes(png, draft_long_side=200).image.size == (1800, 1200)  # only JPEG has DCT scaling


def test_draft_still_checks_the_pixel_limit_on_the_full_size():
    data_ = _encode(_quadrants(2400, 1600), "JPEG")
    with pytest.raises(InputError, match="over the limit"):
        load_image_bytes(data_, draft_long_side=300, max_pixels=2_000_000)


def test_truncated_jpeg_still_refused_after_weasyprint_is_imported(tmp_path: Path) -> None:
    # WeasyPrint (PDF reports) turns PIL's process-wide LOAD_TRUNCATED_IMAGES on at import;
    # oculi's loader must keep refusing truncated files in the same process.
    pytest.importorskip("weasyprint")
    from PIL import ImageFile

    from oculi.tasks.report.render import html_to_pdf

    assert html_to_pdf("<p>x</p>").startswith(b"%PDF")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    full = _encode(Image.fromarray(data.coffee()), "JPEG", quality=90)
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # whatever another library does
    try:
        with pytest.raises(InputError, match="truncated|corrupt"):
            load_image_bytes(full[: len(full) // 2], max_bytes=10**7, max_pixels=10**7)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
