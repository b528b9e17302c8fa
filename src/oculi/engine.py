"""The engine: one object that holds the settings and the loaded backends, and runs tasks.

Models load lazily on first use and once per process; the CLI, the HTTP server and Python
callers all go through an ``Engine``. It is safe to share one engine between threads.

Example:
    >>> from oculi import Engine
    >>> eng = Engine()  # doctest: +SKIP
    >>> eng.caption("photo.jpg").caption  # doctest: +SKIP
    'A photo of one person, with text reading "NASA".'
    >>> eng.ask("photo.jpg", "How many people are there?").answer  # doctest: +SKIP
    '1 — there is one person.'
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from oculi.backends.registry import backend_for, create_backend
from oculi.config import Settings
from oculi.core.errors import InputError, OculiError
from oculi.core.types import Answer, Caption, Classification, Detections, Observation, Reading
from oculi.imageio import ImageSource, LoadedImage, load_image, load_image_bytes
from oculi.tasks import ask as ask_task
from oculi.tasks import caption as caption_task
from oculi.tasks import classify as classify_task
from oculi.tasks import detect as detect_task
from oculi.tasks import read as read_task

__all__ = ["Engine", "ImageSource", "default_engine"]


class Engine:
    """Runs oculi's tasks with the configured backends.

    Args:
        settings: Settings to use; ``Settings()`` (environment) when omitted.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._backends: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- wiring ------------------------------------------------------------------------------
    def backend(self, capability: str) -> Any:
        """The backend serving a capability (created on first use, then shared)."""
        name = backend_for(capability, self.settings)
        with self._lock:
            if name not in self._backends:
                self._backends[name] = create_backend(name, self.settings)
            return self._backends[name]

    def load_image(self, source: ImageSource) -> LoadedImage:
        """Decode an image from a path, bytes, a PIL image or a ``LoadedImage``, with limits."""
        s = self.settings
        if isinstance(source, LoadedImage):
            return source
        if isinstance(source, (str, Path)):
            return load_image(source, max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels)
        if isinstance(source, (bytes, bytearray, memoryview)):
            return load_image_bytes(bytes(source), max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels)
        if isinstance(source, Image.Image):
            if source.width * source.height > s.max_image_pixels:
                raise InputError(f"image is {source.width}x{source.height}, over the pixel limit")
            buf = io.BytesIO()
            source.convert("RGB").save(buf, format="PNG")
            return load_image_bytes(buf.getvalue(), max_bytes=max(s.max_image_bytes, buf.tell()), max_pixels=s.max_image_pixels)
        raise InputError(f"cannot read an image from a {type(source).__name__}")

    def warmup(self) -> None:
        """Load every model now instead of on the first request (servers call this)."""
        b = self.backend("observe")
        b.perceiver.load()
        self.backend("embed_text").embed_texts(["warm up"])

    # --- tasks -------------------------------------------------------------------------------
    def observe(self, source: ImageSource, *, ocr: bool = True) -> Observation:
        """What perception finds in an image."""
        li = self.load_image(source)
        return self.backend("observe").observe(li.image, li.info, ocr=ocr)

    def observe_many(
        self, sources: Sequence[ImageSource], *, batch_size: int = 8, ocr: bool = True
    ) -> Iterator[tuple[ImageSource, Observation | OculiError]]:
        """Observe many images in batches; a bad image yields its error and the batch goes on."""
        perceiver = self.backend("observe")
        for start in range(0, len(sources), batch_size):
            chunk = sources[start : start + batch_size]
            good: list[tuple[ImageSource, LoadedImage]] = []
            for src in chunk:
                try:
                    good.append((src, self.load_image(src)))
                except OculiError as e:
                    yield src, e
            if not good:
                continue
            observations = perceiver.observe_batch([g.image for _, g in good], [g.info for _, g in good], ocr=ocr)
            for (src, _), obs in zip(good, observations):
                yield src, obs

    def caption(self, source: ImageSource, *, detailed: bool = False) -> Caption:
        """One grounded sentence (or paragraph with ``detailed``) about an image."""
        return caption_task.caption(self.load_image(source), self.backend("observe"), self.backend("describe"), detailed=detailed)

    def describe_observation(self, observation: Observation, *, detailed: bool = False) -> str:
        """A caption written from a stored observation (no pixels needed for the built-in model)."""
        from oculi.language.describe import describe

        return describe(observation, detailed=detailed)

    def ask(self, source: ImageSource, question: str) -> Answer:
        """Answer a question about an image, with evidence."""
        ask_task.validate_question(question)
        return ask_task.ask(self.load_image(source), question, self.backend("observe"), self.backend("answer"))

    def detect(self, source: ImageSource, *, min_score: float = 0.0) -> Detections:
        """Objects with label, score, box and colour."""
        return detect_task.detect(self.load_image(source), self.backend("detect"), min_score=min_score)

    def read(self, source: ImageSource) -> Reading:
        """OCR: lines with boxes and the text in reading order."""
        return read_task.read(self.load_image(source), self.backend("read"))

    def classify(self, source: ImageSource, labels: str | list[str]) -> Classification:
        """Zero-shot classification over the caller's labels."""
        labs = classify_task.parse_labels(labels)
        return classify_task.classify(self.load_image(source), labs, self.backend("observe"), self.backend("embed_text"))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``[N, D]``, L2-normalised."""
        return self.backend("embed_text").embed_texts(list(texts))

    def embed_images(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """Visual embeddings ``[N, D]``, L2-normalised."""
        imgs = [self.load_image(s).image for s in sources]
        return self.backend("embed_image").embed_images(imgs)


_default: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """A process-wide engine built from the environment's settings."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Engine()
        return _default

