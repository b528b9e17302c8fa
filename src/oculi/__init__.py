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

from typing import TYPE_CHECKING, Any

from oculi.config import Settings
from oculi.core.errors import ConfigError, InputError, ModelAssetError, ModelConfigError, NotFoundError, OculiError
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
    from oculi.imageio import ImageSource
    from oculi.library import Library, default_library  # noqa: F401
    from oculi.tasks.index import IndexReport
    from oculi.tasks.search import SearchResults

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION", "Answer", "Box", "Caption", "Classification", "ConfigError", "DetectedObject",
    "Detections", "Engine", "ImageInfo", "InputError", "Label", "Library", "ModelAssetError", "ModelConfigError",
    "NotFoundError", "list_models",
    "Observation", "OculiError", "Reading", "Settings", "TextLine", "ask", "caption", "classify",
    "default_engine", "default_library", "detect", "index", "observe", "read", "search", "watch", "events",
    "ask_footage", "footage_report", "generate", "report",
]


def list_models(*, health: bool = True) -> dict[str, Any]:
    """The configured models (``oculi models --json`` without the asset list). See ``Engine.list_models``."""
    return default_engine().list_models(health=health)


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


def generate(prompt: str, *, image: "ImageSource | None" = None, steps: int | None = None, seed: int | None = None,
             width: int | None = None, height: int | None = None, strength: float | None = None,
             mask: "ImageSource | None" = None, model: str | None = None) -> Any:
    """Images from a prompt with the configured generator (``[tasks] generate``, e.g. a
    ``diffusers`` model); with ``image``, that image changed toward the prompt, only inside ``mask``
    (transparent = edit) when one is given. See ``Engine.generate``; raises ``NoGeneratorError``
    when none is configured.

    Example:
        >>> oculi.generate("a red bicycle against a brick wall", seed=1).images[0].save("out.png")  # doctest: +SKIP
        >>> oculi.generate("a blue door", image="house.png", mask="door-mask.png", seed=1)  # doctest: +SKIP
    """
    return default_engine().generate(prompt, image=image, steps=steps, seed=seed, width=width, height=height,
                                     strength=strength, mask=mask, model=model)


def index(paths: "list[str] | str", collection: str = "default", **kw: Any) -> "IndexReport":
    """Index folders/files into a collection with the default engine. See ``Library.index``."""
    from oculi.library import default_library

    return default_library().index([paths] if isinstance(paths, str) else list(paths), collection, **kw)


def search(text: str | None = None, *, image: "ImageSource | None" = None, collection: str = "default",
           **kw: Any) -> "SearchResults":
    """Search a collection by text or by image with the default engine. See ``Library.search``."""
    from oculi.library import default_library

    return default_library().search(collection, text=text, image=image, **kw)


def watch(source: str, camera: str, *, collection: str = "default", **options: Any) -> Any:
    """Watch a video file or stream into a collection: tracks, events and keyframes.

    ``options`` are the fields of ``oculi.tasks.footage.watch.WatchOptions`` (``start`` as epoch
    seconds, ``zones``, ``zone_names``, ``loiter_after`` ...). See ``Library.watch``.

    Example:
        >>> oculi.watch("gate.mp4", "main gate", zones=["0.5,0.5 1,0.5 1,1 0.5,1"], zone_names=["gate"])  # doctest: +SKIP
    """
    from oculi.library import default_library
    from oculi.tasks.footage.watch import WatchOptions

    return default_library().watch(str(source), WatchOptions(camera=camera, collection=collection, **options))


def events(collection: str = "default", **filters: Any) -> Any:
    """Footage events, oldest first; ``filters`` as ``oculi.tasks.footage.query.find_events``."""
    from oculi.library import default_library

    return default_library().events(collection, **filters)


def ask_footage(question: str, *, collection: str = "default", now: Any = None, tz: Any = None) -> Any:
    """Answer a question about the footage with evidence. See ``Library.ask_footage``."""
    from oculi.library import default_library

    return default_library().ask_footage(collection, question, now=now, tz=tz)


def footage_report(camera: str, day: Any, *, collection: str = "default", tz: Any = None, **kw: Any) -> Any:
    """A day of one camera as a ``FootageReport``. See ``Library.footage_report``."""
    from oculi.library import default_library

    return default_library().footage_report(collection, camera, day, tz=tz, **kw)


def report(images: Any, *, kind: str = "general", records: Any = None, output: Any = None, format: str | None = None,
           template: Any = None, **kw: Any) -> Any:
    """Images (and records) → a ``Report``; with ``output``, also written there (``format``
    from its extension unless given). See ``Library.report`` and ``oculi.tasks.report``.

    Example:
        >>> rep = oculi.report(["part-4711.png"], kind="inspection", records="log.csv",
        ...                    inspector="line-3", output="report.pdf")  # doctest: +SKIP
    """
    from pathlib import Path

    from oculi.library import default_library

    paths = [images] if isinstance(images, (str, Path)) else list(images)
    rep = default_library().report(paths, kind=kind, records=records, **kw)
    if output is not None:
        from oculi.tasks.report import write_report

        write_report(rep, format or Path(output).suffix.lstrip(".") or "md", output, template_dir=template)
    return rep


def __getattr__(name: str) -> Any:
    # ``oculi.Library`` without importing the store and the tasks at ``import oculi``
    if name in ("Library", "default_library"):
        from oculi import library

        return getattr(library, name)
    raise AttributeError(f"module 'oculi' has no attribute {name!r}")
