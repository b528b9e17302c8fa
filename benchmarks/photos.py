"""The photo sets the speed benchmarks and the output comparison run on (deterministic).

- ``make_photos``: 640×480 JPEGs, the scikit-image colour photos randomly cropped, flipped,
  tinted and resized (every one distinct content, so every one is perceived);
- ``phone_photos``: 12-megapixel (4032×3024) JPEGs like a phone writes them: the same photos
  upscaled, with a little sensor-like noise, quality 90 with 4:2:0 chroma subsampling, and an
  EXIF block (camera, capture time, and an orientation tag: most stored sideways with
  orientation 6 or 8, some upside down with 3, as phones do);
- ``sample_photos``: the scikit-image samples at their own sizes (a page, text, coins, a
  clock, a camera man, ...);
- ``text_phone_photos``: 12 MP phone-style JPEGs of a printed page and of a sign (text 40-80
  px high), for what draft decoding does to OCR;
- ``face_photos``: close-ups of the two faces among them (the astronaut, the camera man) at
  several zooms, where the detector may or may not see a person and the face finder runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

PHONE_SIZE = (4032, 3024)
PHONE_QUALITY = 90
# the transpose that stores an upright picture so that EXIF orientation N shows it upright
_STORE_FOR_ORIENTATION = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                          8: Image.Transpose.ROTATE_270}
_ORIENTATIONS = (6, 1, 6, 8, 1, 3, 6)


def _sources() -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.stereo_motorcycle()[0],
            data.immunohistochemistry(), data.hubble_deep_field()]


def _variant(src: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    img = Image.fromarray(src)
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))


def make_photos(d: Path, n: int) -> list[Path]:
    """``n`` distinct 640×480 JPEGs (quality 90) in ``d``."""
    srcs = _sources()
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = _variant(srcs[i % len(srcs)], rng, (640, 480))
        p = d / f"photo{i:04d}.jpg"
        img.save(p, quality=90)
        out.append(p)
    return out


def phone_photos(d: Path, n: int) -> list[Path]:
    """``n`` distinct 12 MP phone-style JPEGs in ``d`` (see the module notes), upright when
    their EXIF orientation is applied."""
    srcs = _sources()
    rng = np.random.default_rng(1)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = _variant(srcs[i % len(srcs)], rng, (PHONE_SIZE[0] // 4, PHONE_SIZE[1] // 4))
        img = img.resize(PHONE_SIZE, Image.Resampling.BICUBIC)
        noise = rng.normal(0.0, 3.0, size=(PHONE_SIZE[1], PHONE_SIZE[0], 1)).astype(np.float32)
        img = Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))
        orientation = _ORIENTATIONS[i % len(_ORIENTATIONS)]
        store = _STORE_FOR_ORIENTATION[orientation]
        if store is not None:
            img = img.transpose(store)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "OculiPhone", "OculiPhone 12", orientation
        exif.get_ifd(0x8769)[0x9003] = f"2024:05:{1 + i % 28:02d} 12:{i % 60:02d}:00"
        p = d / f"phone{i:04d}.jpg"
        img.save(p, quality=PHONE_QUALITY, subsampling="4:2:0", exif=exif)
        out.append(p)
    return out


def sample_photos(d: Path) -> list[Path]:
    """The scikit-image samples at their own sizes, as PNG (``oculi.demo``'s set)."""
    from oculi.demo import sample_images

    return sample_images(d)


FACE_CROPS = {"astronaut": [(150, 40, 300, 200), (120, 10, 340, 260), (100, 0, 380, 300), (160, 60, 290, 180),
                            (60, 0, 460, 380)],
              "camera": [(180, 40, 330, 190), (150, 20, 360, 260)]}


def face_photos(d: Path) -> list[Path]:
    """Face close-ups (640 px wide JPEGs) cut from the scikit-image astronaut and camera photos."""
    from skimage import data

    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, boxes in FACE_CROPS.items():
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            crop = img.crop((x1, y1, x2, y2))
            crop = crop.resize((640, round(640 * (y2 - y1) / (x2 - x1))), Image.Resampling.BICUBIC)
            p = d / f"{name}_face{i}.jpg"
            crop.save(p, quality=90)
            out.append(p)
    return out


def text_phone_photos(d: Path) -> list[Path]:
    """12 MP phone-style JPEGs of printed text: the scikit-image page (x5, x8) and a sign (x2, x3)."""
    from PIL import ImageDraw, ImageFont
    from skimage import data

    sign = Image.new("RGB", (1200, 600), "white")
    draw = ImageDraw.Draw(sign)
    for i, (size, text) in enumerate([(60, "OPEN 24 HOURS"), (40, "Fresh bread and coffee"),
                                      (28, "Ask inside for today's specials"), (20, "No parking in front of the gate")]):
        try:
            font = ImageFont.truetype("DejaVuSans.ttf", size)
        except OSError:
            font = ImageFont.load_default(size)
        draw.text((40, 40 + i * 130), text, fill="black", font=font)
    page = Image.fromarray(data.page()).convert("RGB")
    rng = np.random.default_rng(2)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, img, scale in (("page5", page, 5), ("page8", page, 8), ("sign2", sign, 2), ("sign3", sign, 3)):
        big = img.resize((img.width * scale, img.height * scale), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", PHONE_SIZE, (200, 190, 170))
        canvas.paste(big, ((PHONE_SIZE[0] - big.width) // 2, (PHONE_SIZE[1] - big.height) // 2))
        noise = rng.normal(0.0, 3.0, size=(PHONE_SIZE[1], PHONE_SIZE[0], 1)).astype(np.float32)
        canvas = Image.fromarray(np.clip(np.asarray(canvas, np.float32) + noise, 0, 255).astype(np.uint8))
        p = d / f"text_{name}.jpg"
        canvas.save(p, quality=PHONE_QUALITY, subsampling="4:2:0")
        out.append(p)
    return out
