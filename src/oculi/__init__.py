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
    "default_engine", "detect", "index", "observe", "read", "search", "watch", "events", "ask_footage", "footage_report",
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


def watch(source: str, camera: str, *, collection: str = "default", **options):
    """Watch a video file or stream: tracks, events and keyframes into a collection.

    ``options`` are the fields of ``oculi.tasks.footage.watch.WatchOptions`` (``start`` as epoch
    seconds, ``zones``, ``zone_names``, ``loiter_after`` ...). See ``watch_source``.

    Example:
        >>> oculi.watch("gate.mp4", "main gate", zones=["0.5,0.5 1,0.5 1,1 0.5,1"], zone_names=["gate"])  # doctest: +SKIP
    """
    from oculi.store import open_store
    from oculi.tasks.footage.watch import WatchOptions, watch_source

    eng = default_engine()
    return watch_source(eng, open_store(eng.settings), str(source), WatchOptions(camera=camera, collection=collection, **options))


def events(*, collection: str = "default", **filters):
    """Footage events (``EventRecord``), oldest first; ``filters`` as ``oculi.tasks.footage.query.find_events``."""
    from oculi.store import open_store
    from oculi.tasks.footage.query import find_events

    return find_events(open_store(default_engine().settings).open_collection(collection), **filters)


def ask_footage(question: str, *, collection: str = "default", now=None, tz=None):
    """Answer a question about the footage with evidence. See ``oculi.tasks.footage.ask.ask_footage``."""
    from oculi.store import open_store
    from oculi.tasks.footage.ask import ask_footage as _ask
    from oculi.tasks.footage.zones import resolve_tz

    s = default_engine().settings
    return _ask(open_store(s).open_collection(collection), question, now=now, tz=tz or resolve_tz(s.timezone))


def footage_report(camera: str, day, *, collection: str = "default", tz=None, **kw):
    """A day of one camera as a ``FootageReport``. See ``oculi.tasks.footage.report.build_footage_report``."""
    import datetime as _dt

    from oculi.store import open_store
    from oculi.tasks.footage.report import build_footage_report
    from oculi.tasks.footage.zones import resolve_tz

    s = default_engine().settings
    d = _dt.date.fromisoformat(day) if isinstance(day, str) else day
    return build_footage_report(open_store(s).open_collection(collection), camera, d, tz=tz or resolve_tz(s.timezone), **kw)
