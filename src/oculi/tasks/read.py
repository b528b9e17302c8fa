"""Read: OCR lines with boxes and the full text in reading order."""

from __future__ import annotations

from oculi.backends.base import Reader
from oculi.core.types import Reading
from oculi.imageio import LoadedImage


def read(loaded: LoadedImage, reader: Reader) -> Reading:
    return Reading(loaded.info, tuple(reader.read(loaded.image)))
