"""Loading images safely.

Every image that enters oculi (a CLI path, an uploaded body, a file found while indexing)
goes through ``load_image`` or ``load_image_bytes``: size limits are checked before decoding,
the decoded pixel count is checked against ``Settings.max_image_pixels`` (decompression bombs),
truncated and corrupt files raise ``InputError`` with one clear sentence, and the result is an
RGB ``PIL.Image`` with EXIF orientation applied.

High-bit-depth and floating-point images (16-bit greyscale PNG/TIFF: modes ``I;16``, ``I;16B``,
``I``; 32-bit float TIFF: ``F`` — what microscopes, medical and industrial cameras write) are
scaled to 8 bits by their own range: the ``HIGH_BIT_PERCENTILES`` (0.1 % and 99.9 %) of the
finite pixel values map to 0 and 255, so a 12-bit sensor's image in a 16-bit file uses the
whole 8-bit range and a few hot or dead pixels do not flatten the rest; NaN and infinities
become black. A flat image keeps its level relative to the type's full scale (65535 for 16
bits, 1.0 for float). A plain ``convert("RGB")`` clips these modes instead: 16-bit images
came out solid white and float images black.

Files are opened without blocking and must be regular files: a FIFO or a device named
``x.jpg`` is refused, never read.

Draft decoding (``draft_long_side``): a JPEG can be decoded directly at 1/2, 1/4 or 1/8 of
its size (libjpeg's DCT scaling, PIL's ``Image.draft``), much cheaper than decoding every
pixel and shrinking afterwards. Given ``draft_long_side``, a JPEG is decoded at the smallest
such scale that keeps its longer side at least that long; smaller images and other formats
decode in full. ``ImageInfo`` keeps the original (upright) size either way, so a consumer
that finds ``image.size`` smaller reports boxes in the original's pixels. Measured on a
4032×3024 phone JPEG (this machine, CPU time): 61 ms in full, 31 ms at 1/2, 23 ms at 1/4,
19 ms at 1/8 (entropy decoding is the floor).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat as stat_mod
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from oculi.core.errors import InputError, input_error_from_os
from oculi.core.types import ImageInfo

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO", "HEIF"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"})
#: How the accepted formats are named to users.
SUPPORTED_NAMES = "JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
# ISO-BMFF brands of HEIF still images (HEVC-coded: what phones write); AVIF is not decoded.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})

#: Percentiles of a high-bit-depth image's values that map to black and white.
HIGH_BIT_PERCENTILES = (0.1, 99.9)
_PERCENTILE_SAMPLE = 1_000_000  # pixels the percentiles are computed on (strided), at most

ImageSource = Union[str, Path, bytes, Image.Image, "LoadedImage"]
"""Anything an image can be given as: a path, encoded bytes, a PIL image or a ``LoadedImage``."""


def sniff_format(data: bytes) -> str | None:
    """The image format the first bytes announce (``jpeg``, ``png``, ``gif``, ``bmp``, ``tiff``,
    ``webp``, ``heif``), or None. Reads only the signature; decoding may still fail later.

    Example:
        >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff_format(b"%PDF-1.7")
        ('png', None)
    """
    head = bytes(data[:32])
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    for sig, fmt in _SIGNATURES:
        if head.startswith(sig):
            return fmt
    return None


@dataclass(frozen=True)
class ImageLimits:
    """The limits every decoded image is held to (``Settings.max_image_bytes`` / ``max_image_pixels``),
    and, for bulk work, the longer side a large JPEG may be draft-decoded down to (``None``: full)."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 80_000_000
    draft_long_side: int | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "ImageLimits":
        return cls(settings.max_image_bytes, settings.max_image_pixels)


def _register_heif() -> None:
    """Let PIL open HEIC/HEIF (phone photos) through pillow-heif, when it is installed."""
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return
    pillow_heif.register_heif_opener()


_register_heif()


@dataclass(frozen=True)
class LoadedImage:
    """A decoded RGB image and what is known about it."""

    image: Image.Image
    info: ImageInfo


def is_high_bit_depth(mode: str) -> bool:
    """Whether a PIL mode holds more than 8 bits per sample (16/32-bit integer or float)."""
    return mode in ("I", "F") or mode.startswith(("I;", "F;"))


def scale_to_8bit(img: Image.Image) -> Image.Image:
    """A high-bit-depth or float single-channel image as 8-bit greyscale (mode ``L``), scaled by
    the image's own range (see the module notes: robust percentiles, NaN → black).

    Example:
        >>> a = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 4)  # 14 bits used of 16
        >>> np.asarray(scale_to_8bit(Image.fromarray(a)))[[0, -1], [0, -1]].tolist()
        [0, 255]
    """
    a = np.asarray(img).astype(np.float32, copy=False)  # [H, W]; uint16 / int32 / float32
    if a.ndim != 2:
        return img.convert("RGB")
    finite = np.isfinite(a)
    step = max(1, math.ceil(math.sqrt(a.size / _PERCENTILE_SAMPLE)))
    sample = a[::step, ::step][finite[::step, ::step]]
    if sample.size == 0:
        return Image.new("L", img.size, 0)
    lo, hi = (float(v) for v in np.percentile(sample, HIGH_BIT_PERCENTILES))
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi > lo:
        out = (a - lo) * (255.0 / (hi - lo))
    else:  # flat: its level relative to the type's full scale
        full = 1.0 if img.mode.startswith("F") else (65535.0 if lo <= 65535 else float(2**31 - 1))
        out = np.full(a.shape, 255.0 * lo / full, dtype=np.float32)
    out = np.where(finite, out, 0.0)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), mode="L")


def file_kind(mode: int) -> str:
    """What a ``st_mode`` that is not a regular file is, in words."""
    if stat_mod.S_ISDIR(mode):
        return "a directory"
    if stat_mod.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat_mod.S_ISCHR(mode):
        return "a character device"
    if stat_mod.S_ISBLK(mode):
        return "a block device"
    if stat_mod.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_regular_file(path: str | Path, *, max_bytes: int, name: str | None = None,
                      missing: str = "no such file") -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file and its ``stat``, with a clear ``InputError`` otherwise.

    The file is opened non-blocking and checked with ``fstat`` before anything is read, so a
    FIFO, a device or a socket (even one swapped in after a directory walk) is refused instead
    of blocking or reading forever; a file over ``max_bytes`` is refused unread.
    """
    label = str(path) if name is None else name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise input_error_from_os(label, e, missing=missing) from None
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise InputError(f"{label}: is a directory, not an image file")
        if not stat_mod.S_ISREG(st.st_mode):
            raise InputError(f"{label}: is {file_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise InputError(f"{label}: {st.st_size:,} bytes is over the limit of {max_bytes:,} (OCULI_MAX_IMAGE_BYTES)")
        with os.fdopen(fd, "rb") as f:
            fd = -1  # closed by the file object
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise input_error_from_os(label, e, missing=missing) from None
    finally:
        if fd >= 0:
            os.close(fd)
    return data, st


def _draft_scale(w: int, h: int, long_side: int | None) -> int:
    """The largest JPEG DCT reduction (1, 2, 4, 8) keeping ``max(w, h) >= long_side``."""
    if not long_side:
        return 1
    for scale in (8, 4, 2):
        if max(w, h) // scale >= long_side:
            return scale
    return 1


def _decode(data: bytes, name: str, max_pixels: int, draft_long_side: int | None = None,
            keep_alpha: bool = False) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode to RGB (RGBA with ``keep_alpha`` where the image has transparency: an edit mask);
    returns ``(image, format, (width, height) of the full upright image)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own limit below replaces PIL's global one
            # a truncated file is an error here, whatever a library imported into this process set
            # (WeasyPrint turns PIL's process-wide flag on when it is imported)
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise InputError(f"{name}: unsupported image format {fmt}; supported: {SUPPORTED_NAMES}")
            w, h = img.size
            if w <= 0 or h <= 0:
                raise InputError(f"{name}: image has no pixels")
            if w * h > max_pixels:
                raise InputError(
                    f"{name}: image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                    "(set OCULI_MAX_IMAGE_PIXELS to raise it)"
                )
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF/WebP/TIFF: the first frame
            scale = _draft_scale(w, h, draft_long_side) if fmt in ("JPEG", "MPO") else 1
            if scale > 1:
                img.draft(img.mode, (w // scale, h // scale))
            img.load()
            stored = img.size
            img = ImageOps.exif_transpose(img)
            full = (h, w) if img.size != stored else (w, h)  # orientations 5-8 turn the picture
            if is_high_bit_depth(img.mode):
                img = scale_to_8bit(img)
            if img.mode != "RGB":
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    img = img.convert("RGBA")
                    if keep_alpha:
                        return img, fmt, full
                    bg = Image.new("RGB", img.size, (255, 255, 255))
                    bg.paste(img, mask=img.getchannel("A"))
                    img = bg
                else:
                    img = img.convert("RGB")
            return img, fmt, full
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (the bytes are not a format oculi can decode)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower() or "premature" in msg.lower():
            raise InputError(f"{name}: image file is truncated ({msg})") from None
        raise InputError(f"{name}: image is corrupt or unreadable ({msg})") from None


def load_image_bytes(
    data: bytes,
    *,
    name: str = "image",
    path: str | None = None,
    max_bytes: int = 64 * 1024 * 1024,
    max_pixels: int = 80_000_000,
    draft_long_side: int | None = None,
    keep_alpha: bool = False,
) -> LoadedImage:
    """Decode image bytes with oculi's limits.

    Args:
        data: The encoded image.
        name: How to name the image in error messages.
        path: Recorded in ``ImageInfo.path``.
        max_bytes: Largest encoded size accepted.
        max_pixels: Largest width × height accepted.
        draft_long_side: Decode a large JPEG at a reduced size whose longer side is still at
            least this (see the module notes); ``info`` keeps the original size.
        keep_alpha: An image with transparency stays RGBA (edit masks) instead of being laid on white.

    Raises:
        InputError: empty, oversized, corrupt, truncated or unsupported data.
    """
    if not data:
        raise InputError(f"{name}: file is empty")
    if len(data) > max_bytes:
        raise InputError(f"{name}: {len(data):,} bytes is over the limit of {max_bytes:,} (OCULI_MAX_IMAGE_BYTES)")
    img, fmt, (width, height) = _decode(data, name, max_pixels, draft_long_side, keep_alpha)
    info = ImageInfo(
        width=width,
        height=height,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt.lower(),
    )
    return LoadedImage(img, info)


def load_image(
    path: str | Path,
    *,
    max_bytes: int = 64 * 1024 * 1024,
    max_pixels: int = 80_000_000,
    draft_long_side: int | None = None,
    keep_alpha: bool = False,
) -> LoadedImage:
    """Read and decode an image file (``draft_long_side``, ``keep_alpha`` as in ``load_image_bytes``).

    Example:
        >>> loaded = load_image("photo.jpg")  # doctest: +SKIP
        >>> loaded.info.width, loaded.image.mode  # doctest: +SKIP
        (640, 'RGB')

    Raises:
        InputError: missing file, a directory, unreadable, empty, oversized, corrupt, truncated,
            unsupported format, or too many pixels.
    """
    p = Path(path)
    name = str(path)
    data, _ = read_regular_file(p, max_bytes=max_bytes, name=name)
    return load_image_bytes(data, name=name, path=str(p.resolve()), max_bytes=max_bytes, max_pixels=max_pixels,
                            draft_long_side=draft_long_side, keep_alpha=keep_alpha)
