"""The built-in backend: registry-shipped perception models plus grounded language.

It implements every capability protocol in ``oculi.backends.base``. Perception produces
facts (an ``Observation``); ``describe``/``answer`` turn those facts into words and never
state what perception did not find.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import OculiError
from oculi.core.types import Answer, DetectedObject, ImageInfo, Observation, TextLine
from oculi.language.answer import answer as answer_from_observation
from oculi.language.describe import describe as describe_observation
from oculi.core.labels import COCO_CLASSES
from oculi.imageio import LoadedImage

if TYPE_CHECKING:
    from oculi.perception.pool import PerceptionPool

WORD_MATCH_MIN = 0.55  # cosine similarity for mapping an unknown word onto a COCO class


class BuiltinBackend:
    """All capabilities from the built-in perception parts. Loads each part on first use."""

    name = "builtin"

    def __init__(self, settings: Settings) -> None:
        from oculi.perception.pipeline import BuiltinPerceiver
        from oculi.perception.text_encoder import MiniLMTextEncoder

        self.settings = settings
        self.perceiver = BuiltinPerceiver(settings)
        self.text_encoder = MiniLMTextEncoder(settings)
        self._coco_vecs: np.ndarray | None = None
        self._pool: PerceptionPool | None = None
        self._lock = threading.Lock()

    # Perceiver
    def observe(self, image: Image.Image, info: ImageInfo, *, ocr: bool = True) -> Observation:
        return self.perceiver.observe(image, info, ocr=ocr)

    def observe_batch(self, images: Sequence[Image.Image], infos: Sequence[ImageInfo], *, ocr: bool = True) -> list[Observation]:
        return self.perceiver.observe_batch(images, infos, ocr=ocr)

    def observe_stream(self, images: Iterable[LoadedImage], *, ocr: bool = True) -> Iterator[Observation | OculiError]:
        """Observe a stream of images on the perception pool, in order (see ``PerceptionPool``)."""
        return self.pool().observe(images, ocr=ocr)

    def pool(self) -> "PerceptionPool":
        """The backend's ``PerceptionPool`` (``settings.perception_workers``), started on first use."""
        from oculi.perception.pool import PerceptionPool

        with self._lock:
            if self._pool is None:
                s = self.settings
                self._pool = PerceptionPool(s, s.perception_workers or None, kind=s.perception_pool)
        return self._pool.start()

    def close(self) -> None:
        """Stop the perception pool's workers, if any were started."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # Describer
    def describe(self, image: Image.Image, observation: Observation, *, detailed: bool = False) -> str:
        return describe_observation(observation, detailed=detailed)

    # Answerer
    def answer(self, image: Image.Image, observation: Observation, question: str) -> Answer:
        return answer_from_observation(observation, question, resolve=self.resolve_word)

    def resolve_word(self, word: str) -> str | None:
        """Nearest COCO class to a word by sentence-encoder similarity, if close enough."""
        with self._lock:
            if self._coco_vecs is None:
                self._coco_vecs = self.text_encoder.embed_texts(list(COCO_CLASSES))  # [80, 384]
        q = self.text_encoder.embed_texts([word])[0]  # [384]
        sims = self._coco_vecs @ q
        best = int(np.argmax(sims))
        return COCO_CLASSES[best] if float(sims[best]) >= WORD_MATCH_MIN else None

    # Detector
    def detect(self, image: Image.Image) -> list[DetectedObject]:
        return self.perceiver.detect_objects(image)

    # FrameDetector
    def detect_frames(self, images: Sequence[Image.Image], *, min_score: float) -> list[list[DetectedObject]]:
        self.perceiver.detector.load()
        return self.perceiver.detector.detect_batch(images, threshold=min_score)

    # Reader
    def read(self, image: Image.Image) -> list[TextLine]:
        self.perceiver.reader.load()
        return self.perceiver.reader.read(image)

    # ImageEmbedder
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.perceiver.classifier.load()
        return self.perceiver.classifier.embed_images(images)

    # PatchEmbedder
    def patch_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """EfficientNet-Lite0 mid-level patch features, ``[N, h, w, C]`` (``oculi.perception.patches``)."""
        from oculi.perception.patches import shared_extractor

        return shared_extractor(self.settings).patch_features(images)

    # TextEmbedder
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_encoder.embed_texts(texts)
