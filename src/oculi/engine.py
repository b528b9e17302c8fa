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
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from oculi.backends.registry import backend_for, create_backend
from oculi.config import Settings
from oculi.core.errors import InputError, OculiError
from oculi.core.types import Answer, Caption, Classification, Detections, Observation, Reading
from oculi.imageio import ImageSource, LoadedImage, load_image, load_image_bytes
from oculi.perception.worker import DRAFT_LONG_SIDE
from oculi.tasks import ask as ask_task
from oculi.tasks import caption as caption_task
from oculi.tasks import classify as classify_task
from oculi.tasks import detect as detect_task
from oculi.tasks import read as read_task

__all__ = ["Engine", "ImageSource", "default_engine", "worker_engine"]


class Engine:
    """Runs oculi's tasks with the configured backends.

    Args:
        settings: Settings to use; ``Settings()`` (environment) when omitted.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._backends: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._heads: Any = None

    # --- wiring ------------------------------------------------------------------------------
    def backend(self, capability: str) -> Any:
        """The backend serving a capability (created on first use, then shared)."""
        name = backend_for(capability, self.settings)
        with self._lock:
            if name not in self._backends:
                self._backends[name] = create_backend(name, self.settings)
            return self._backends[name]

    @property
    def heads(self) -> Any:
        """The trained classifier heads of this home (``oculi.perception.heads.HeadSet``)."""
        if self._heads is None:
            from oculi.perception.heads import HeadSet
            from oculi.store.trained import TrainedStore

            self._heads = HeadSet(TrainedStore.for_home(self.settings.home))
        return self._heads

    def perceiver(self) -> Any:
        """The perceiver, with the trained heads' verdicts added to every observation."""
        from oculi.perception.heads import HeadedPerceiver
        from oculi.tasks.train.features import image_space

        inner = self.backend("observe")
        if not self.heads:
            return inner
        return HeadedPerceiver(inner, self.heads, {image_space(self)["model"]: self.embed_images})

    def load_image(self, source: ImageSource, *, draft: bool = False) -> LoadedImage:
        """Decode an image from a path, bytes, a PIL image or a ``LoadedImage``, with limits.

        ``draft`` decodes a large JPEG at the reduced size the built-in models still see in
        full (``imageio`` draft mode; ``info`` keeps the original size): indexing does.
        """
        s = self.settings
        if isinstance(source, LoadedImage):
            return source
        long_side = DRAFT_LONG_SIDE if draft else None
        if isinstance(source, (str, Path)):
            return load_image(source, max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels,
                              draft_long_side=long_side)
        if isinstance(source, (bytes, bytearray, memoryview)):
            return load_image_bytes(bytes(source), max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels,
                                    draft_long_side=long_side)
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
        return self.perceiver().observe(li.image, li.info, ocr=ocr)

    def observe_many(
        self, sources: Iterable[ImageSource], *, batch_size: int = 8, ocr: bool = True, draft: bool = False
    ) -> Iterator[tuple[ImageSource, Observation | OculiError]]:
        """Observe many images, in order; a bad image yields its error and the rest go on.

        With the built-in backend the images stream through its ``PerceptionPool``
        (``settings.perception_workers`` workers, one-thread sessions each); other backends
        get ``observe_batch`` calls of ``batch_size``. Sources are decoded as they are
        consumed, so a long iterable never sits in memory at once.

        Args:
            sources: Paths, bytes, PIL images or ``LoadedImage``s.
            batch_size: Images per call for backends without a stream.
            ocr: Read text too.
            draft: Decode large JPEGs at reduced size (see ``load_image``).
        """
        perceiver = self.perceiver()  # with the trained heads' verdicts

        def load(src: ImageSource) -> LoadedImage | OculiError:
            try:
                return self.load_image(src, draft=draft)
            except OculiError as e:
                return e

        loaded = ((src, load(src)) for src in sources)
        if hasattr(perceiver, "observe_stream"):
            ahead: deque[tuple[ImageSource, LoadedImage | OculiError]] = deque()

            def good() -> Iterator[LoadedImage]:
                for pair in loaded:
                    ahead.append(pair)
                    if isinstance(pair[1], LoadedImage):
                        yield pair[1]

            for obs in perceiver.observe_stream(good(), ocr=ocr):
                while not isinstance(ahead[0][1], LoadedImage):
                    yield ahead.popleft()  # type: ignore[misc]
                yield ahead.popleft()[0], obs
            yield from ahead  # type: ignore[misc]  # errors after the last good image
            return
        batch: list[tuple[ImageSource, LoadedImage | OculiError]] = []
        for pair in [*loaded, None]:  # type: ignore[list-item]
            if pair is not None:
                batch.append(pair)
            if batch and (pair is None or len(batch) >= batch_size):
                good_ = [(src, li) for src, li in batch if isinstance(li, LoadedImage)]
                results = iter(perceiver.observe_batch([li.image for _, li in good_], [li.info for _, li in good_],
                                                       ocr=ocr) if good_ else [])
                for src, li in batch:
                    yield src, next(results) if isinstance(li, LoadedImage) else li  # type: ignore[misc]
                batch = []

    def close(self) -> None:
        """Stop worker threads or processes the backends started (perception pools)."""
        with self._lock:
            backends = list(self._backends.values())
        for b in backends:
            if hasattr(b, "close"):
                b.close()

    def caption(self, source: ImageSource, *, detailed: bool = False) -> Caption:
        """One grounded sentence (or paragraph with ``detailed``) about an image."""
        return caption_task.caption(self.load_image(source), self.perceiver(), self.backend("describe"), detailed=detailed)

    def describe_observation(self, observation: Observation, *, detailed: bool = False) -> str:
        """A caption written from a stored observation (no pixels needed for the built-in model)."""
        from oculi.language.describe import describe

        return describe(observation, detailed=detailed)

    def ask(self, source: ImageSource, question: str) -> Answer:
        """Answer a question about an image, with evidence."""
        ask_task.validate_question(question)
        return ask_task.ask(self.load_image(source), question, self.perceiver(), self.backend("answer"))

    def detect(self, source: ImageSource, *, min_score: float = 0.0) -> Detections:
        """Objects with label, score, box and colour."""
        return detect_task.detect(self.load_image(source), self.backend("detect"), min_score=min_score)

    def read(self, source: ImageSource) -> Reading:
        """OCR: lines with boxes and the text in reading order."""
        return read_task.read(self.load_image(source), self.backend("read"))

    def classify(self, source: ImageSource, labels: str | list[str]) -> Classification:
        """Classification over the caller's labels: by a trained head whose classes include
        them all (``oculi train classifier``), else zero-shot."""
        labs = classify_task.parse_labels(labels)
        head = self.heads.covering(labs) if self.heads else None
        if head is not None:
            return self.classify_with_head(source, head.name, labs)
        return classify_task.classify(self.load_image(source), labs, self.backend("observe"), self.backend("embed_text"))

    def classify_with_head(self, source: ImageSource, head: str, labels: Sequence[str] | None = None) -> Classification:
        """Scores of a trained classifier head's classes (or of ``labels`` among them), best first.

        Raises:
            NotFoundError: no trained model ``head``; ModelAssetError: it is damaged;
            ConfigError: it needs features of another image embedder than the configured one.
        """
        from oculi.core.errors import ConfigError
        from oculi.core.types import ClassScore
        from oculi.tasks.train.features import image_space

        h = self.heads.get(head)
        if labels is not None and not h.covers(labels):
            raise InputError(f"trained head {h.name!r} knows the classes {', '.join(h.classes)}; not all of {', '.join(labels)}")
        space = image_space(self)
        if space["model"] != h.feature_space["model"]:
            raise ConfigError(f"trained head {h.name!r} takes {h.feature_space['model']} features; the configured image "
                              f"embedder gives {space['model']}: configure that embedder again or retrain the head")
        feats = self.embed_images([source])[0]
        return Classification(tuple(ClassScore(c, p) for c, p in h.scores(feats, labels)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``[N, D]``, L2-normalised."""
        return self.backend("embed_text").embed_texts(list(texts))

    def embed_images(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """Visual embeddings ``[N, D]``, L2-normalised."""
        imgs = [self.load_image(s).image for s in sources]
        return self.backend("embed_image").embed_images(imgs)


def worker_engine(settings: Settings) -> Engine:
    """The engine a distributed ingestion worker (a Ray actor) holds: the caller's settings with
    one perception worker in a thread, since each actor is given one CPU and the cluster runs
    many side by side (see ``oculi.tasks.index.distributed``)."""
    return Engine(settings.model_copy(update={"perception_workers": 1, "perception_pool": "thread", "engine": "local"}))


_default: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """A process-wide engine built from the environment's settings."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Engine()
        return _default

