"""oculi: a private, offline vision-language platform.

Python API::

    import oculi
    oculi.caption("photo.jpg").caption
    oculi.ask("photo.jpg", "How many people are there?").answer
    oculi.detect("photo.jpg").objects
    oculi.read("scan.png").text

or, with explicit settings, ``oculi.Engine(oculi.Settings(home=...))``. Nothing heavy is
imported here: models load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oculi.config import Settings
from oculi.core.errors import ConfigError, InputError, ModelAssetError, NotFoundError, OculiError
from oculi.core.types import (
    SCHEMA_VERSION,
    Answer,
    Box,
    Caption,
    Classification,
    DetectedObject,
    Detections,
    ImageInfo,
    Label,
    Observation,
    Reading,
    TextLine,
)
from oculi.engine import Engine, default_engine

if TYPE_CHECKING:
    from oculi.engine import ImageSource

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION", "Answer", "Box", "Caption", "Classification", "ConfigError", "DetectedObject",
    "Detections", "Engine", "ImageInfo", "InputError", "Label", "ModelAssetError", "NotFoundError",
    "Observation", "OculiError", "Reading", "Settings", "TextLine", "ask", "caption", "classify",
    "default_engine", "detect", "index", "observe", "read", "search",
]


def caption(image: "ImageSource", *, detailed: bool = False) -> Caption:
    """Caption an image with the default engine. See ``Engine.caption``."""
    return default_engine().caption(image, detailed=detailed)


def ask(image: "ImageSource", question: str) -> Answer:
    """Answer a question about an image with the default engine. See ``Engine.ask``."""
    return default_engine().ask(image, question)


def detect(image: "ImageSource") -> Detections:
    """Detect objects with the default engine. See ``Engine.detect``."""
    return default_engine().detect(image)


def read(image: "ImageSource") -> Reading:
    """Read the text in an image with the default engine. See ``Engine.read``."""
    return default_engine().read(image)


def classify(image: "ImageSource", labels: str | list[str]) -> Classification:
    """Zero-shot classification with the default engine. See ``Engine.classify``."""
    return default_engine().classify(image, labels)


def observe(image: "ImageSource") -> Observation:
    """Everything perception finds in an image. See ``Engine.observe``."""
    return default_engine().observe(image)


def index(paths: list[str] | str, collection: str = "default", **kw):
    """Index folders/files into a collection with the default engine. See ``oculi.tasks.index.index_paths``."""
    from oculi.store import open_store
    from oculi.tasks.index import index_paths

    eng = default_engine()
    return index_paths(eng, open_store(eng.settings), [paths] if isinstance(paths, str) else list(paths), collection, **kw)


def search(text: str | None = None, *, image: "ImageSource | None" = None, collection: str = "default", **kw):
    """Search a collection by text or by image. See ``oculi.tasks.search.search``."""
    from oculi.store import open_store
    from oculi.tasks.search import search as _search

    eng = default_engine()
    return _search(eng, open_store(eng.settings), collection, text=text, image=image, **kw)
