"""What a file says about itself besides its pixels: EXIF capture time, camera and GPS; and the
JPEG thumbnail stored with each item."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from PIL import Image

THUMBNAIL_SIZE = 256
THUMBNAIL_QUALITY = 80


@dataclass(frozen=True)
class ExifMeta:
    """Capture time (epoch seconds), camera and GPS position read from EXIF; None where absent."""

    taken_at: float | None = None
    camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


def _exif_time(value: Any, offset: Any) -> float | None:
    if not isinstance(value, str):
        return None
    s = value.strip().replace("\x00", "")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y:%m:%d"):
        try:
            dt = datetime.strptime(s[: len(datetime(2000, 1, 1).strftime(fmt))], fmt)
            break
        except ValueError:
            continue
    else:
        return None
    tz = timezone.utc
    if isinstance(offset, str) and len(offset.strip()) >= 6 and offset.strip()[0] in "+-":
        o = offset.strip()
        try:
            delta = timedelta(hours=int(o[1:3]), minutes=int(o[4:6]))
            tz = timezone(delta if o[0] == "+" else -delta)
        except ValueError:
            pass
    try:
        return dt.replace(tzinfo=tz).timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def _gps_coord(values: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    v = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode(errors="ignore")
    if isinstance(ref, str) and ref.strip().upper() in ("S", "W"):
        v = -v
    return round(v, 7) if np.isfinite(v) else None


def read_exif(data: bytes) -> ExifMeta:
    """Capture time (``DateTimeOriginal``, else ``DateTime``), camera and GPS from EXIF.

    Naive EXIF times (no ``OffsetTimeOriginal``) are read as UTC, so ``--after 2021-06-01``
    compares wall-clock dates as written by the camera.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            if not exif:
                return ExifMeta()
            sub = exif.get_ifd(0x8769)
            taken = _exif_time(sub.get(0x9003) or sub.get(0x9004) or exif.get(0x0132), sub.get(0x9011) or sub.get(0x9010))
            make = str(exif.get(0x010F) or "").strip().strip("\x00")
            model = str(exif.get(0x0110) or "").strip().strip("\x00")
            camera = model if make and model.lower().startswith(make.lower()) else " ".join(x for x in (make, model) if x)
            gps = exif.get_ifd(0x8825)
            lat = _gps_coord(gps.get(2), gps.get(1)) if gps else None
            lon = _gps_coord(gps.get(4), gps.get(3)) if gps else None
            if lat is not None and not -90 <= lat <= 90:
                lat = None
            if lon is not None and not -180 <= lon <= 180:
                lon = None
            return ExifMeta(taken, camera or None, lat, lon)
    except Exception:  # noqa: BLE001 - EXIF is best effort; a bad EXIF block never fails a file
        return ExifMeta()


def make_thumbnail(img: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG thumbnail no larger than ``size`` on its longer side."""
    t = img.copy()
    t.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    t.convert("RGB").save(buf, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buf.getvalue()
