"""The built-in backend: registry-shipped perception models plus grounded language.

It implements the capability protocols in ``oculi.backends.base`` it declares (everything but
chat, image generation and patch features). Perception produces
facts (an ``Observation``); ``describe``/``answer`` turn those facts into words and never
state what perception did not find.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from oculi.backends.base import Backend, BackendOptions, Capability, VectorSpace
from oculi.config import Settings
from oculi.core.errors import InputError, OculiError
from oculi.core.types import Answer, ClassScore, DetectedObject, ImageInfo, Observation, TextLine
from oculi.language.answer import answer as answer_from_observation
from oculi.language.describe import describe as describe_observation
from oculi.core.labels import COCO_CLASSES
from oculi.imageio import LoadedImage

if TYPE_CHECKING:
    from oculi.perception.pool import PerceptionPool

WORD_MATCH_MIN = 0.55  # cosine similarity for mapping an unknown word onto a COCO class


class BuiltinOptions(BackendOptions):
    """The built-in model has no options of its own (``Settings`` tunes it)."""


class BuiltinBackend(Backend):
    """All capabilities from the built-in perception parts. Loads each part on first use;
    ``load()`` loads them all (servers warm up with it)."""

    type_name = "builtin"
    Options = BuiltinOptions
    capabilities = frozenset({Capability.OBSERVE, Capability.DESCRIBE, Capability.ANSWER, Capability.DETECT,
                              Capability.DETECT_FRAMES, Capability.READ, Capability.CLASSIFY,
                              Capability.EMBED_IMAGE, Capability.EMBED_TEXT, Capability.PATCH_FEATURES})
    description = "the built-in grounded model: detector, classifier, OCR, faces, colours, sentence encoder"

    def __init__(self, name: str | Settings = "builtin", options: BackendOptions | None = None,
                 settings: Settings | None = None) -> None:
        from oculi.perception.pipeline import BuiltinPerceiver
        from oculi.perception.text_encoder import MiniLMTextEncoder

        if isinstance(name, Settings):  # BuiltinBackend(settings), the older signature
            name, settings = "builtin", name
        if settings is None:
            raise TypeError("BuiltinBackend needs settings")
        super().__init__(name, options or BuiltinOptions(backend="builtin"), settings)
        self.perceiver = BuiltinPerceiver(settings)
        self.text_encoder = MiniLMTextEncoder(settings)
        self._coco_vecs: np.ndarray | None = None
        self._pool: PerceptionPool | None = None
        self._lock = threading.Lock()

    # --- identity and lifecycle ------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return "builtin"

    @property
    def image_dim(self) -> int:
        return int(self.perceiver.classifier.dim)

    @property
    def text_dim(self) -> int:
        return int(self.text_encoder.dim)

    @property
    def image_space(self) -> VectorSpace:
        """What ``embed_images`` gives (what trained models and collections record)."""
        return VectorSpace(f"builtin/{self.perceiver.classifier.name}", self.image_dim)

    @property
    def text_space(self) -> VectorSpace:
        return VectorSpace(f"builtin/{self.text_encoder.name}", self.text_dim)

    def health(self) -> dict[str, object]:
        """Whether every built-in asset is installed (present; the checksums are checked on
        load and by ``oculi models``), without loading the models."""
        from oculi.assets import list_assets

        bad = [s for s in list_assets(self.settings, verify=False) if s.state not in ("ok", "unchecked")]
        if bad:
            return {"ok": False, "detail": "; ".join(f"{s.asset.name} is {s.state}" for s in bad) + " (run `oculi models pull`)"}
        return {"ok": True, "detail": "assets installed"}

    def _load(self) -> None:
        self.perceiver.load()
        self.text_encoder.load()

    def _unload(self) -> None:
        self.close_pool()

    def close(self) -> None:
        """Stop the perception pool's workers, if any were started (the models stay loaded)."""
        self.close_pool()

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

    def close_pool(self) -> None:
        """Stop the perception pool's workers, if any were started."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # Describer
    def describe(self, image: Image.Image | None, observation: Observation | None, *, detailed: bool = False) -> str:
        if observation is None:  # the built-in model writes only from what perception found
            observation = self._observe_pil(image)
        return describe_observation(observation, detailed=detailed)

    # Answerer
    def answer(self, image: Image.Image, observation: Observation | None, question: str) -> Answer:
        if observation is None:
            observation = self._observe_pil(image)
        return answer_from_observation(observation, question, resolve=self.resolve_word)

    def _observe_pil(self, image: Image.Image | None) -> Observation:
        if image is None:
            raise InputError("the built-in model describes an image or its observation; neither was given")
        return self.observe(image, ImageInfo(width=image.width, height=image.height))

    # Classifier (zero-shot over the caller's labels)
    def classify(self, image: Image.Image, labels: Sequence[str]) -> list[ClassScore]:
        from oculi.tasks.classify import classify as classify_task
        from oculi.imageio import LoadedImage

        li = LoadedImage(image, ImageInfo(width=image.width, height=image.height))
        return list(classify_task(li, list(labels), self, self).scores)

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
