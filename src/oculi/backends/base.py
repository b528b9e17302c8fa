"""The backend seam: a base class with a lifecycle, typed options, capabilities, and the
capability protocols a task may ask of a model.

A task depends on a protocol, never on which backend is behind it. A backend *type* is a
``Backend`` subclass that declares

- ``type_name``: what ``backend = "..."`` in an ``[models.NAME]`` table names;
- ``Options``: a pydantic model (``extra="forbid"``) validating that table;
- ``capabilities``: which of ``CAPABILITIES`` it serves (an instance may narrow them, e.g. a
  trained model serves ``classify`` or ``answer`` depending on what was trained);

and implements the methods of the protocols below for those capabilities. Loading follows
immich's ``InferenceModel``: ``load()`` is idempotent and thread-safe and calls ``_load()``;
``unload()`` calls ``_unload()`` and a later ``load()`` works again. Heavy imports belong in
``_load`` so that listing models stays fast.

Images cross these seams as ``PIL.Image.Image`` in RGB mode, already validated by
``oculi.imageio.load_image``. Vectors are ``[N, D]`` float32, L2-normalised.

Example:
    >>> class Mean(Backend):
    ...     type_name = "mean"
    ...     capabilities = frozenset({"describe"})
    ...     def describe(self, image, observation, *, detailed=False):
    ...         return "a picture"
    >>> b = Mean("m", BackendOptions(backend="mean"), None)
    >>> b.load(); (b.model_id, b.supports("describe"), b.supports("chat"))
    ('mean:m', True, False)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal, Protocol, Sequence, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from oculi.core.errors import ConfigError
from oculi.core.types import Answer, ClassScore, DetectedObject, ImageInfo, Observation, TextLine

if TYPE_CHECKING:
    from PIL import Image

    from oculi.config import Settings


class Capability(StrEnum):
    """What a backend can be asked to do (the values are what ``capabilities`` holds)."""

    OBSERVE = "observe"  # image → Observation (objects, labels, text, colours, embedding)
    DESCRIBE = "describe"  # image (+ observation) → caption
    ANSWER = "answer"  # image (+ observation) + question → Answer
    CHAT = "chat"  # multi-turn messages with images → text
    DETECT = "detect"  # image → objects with boxes
    DETECT_FRAMES = "detect_frames"  # video frames → objects, down to a low score
    READ = "read"  # OCR
    CLASSIFY = "classify"  # image + labels → scores
    EMBED_IMAGE = "embed_image"  # images → [N, D] vectors
    EMBED_TEXT = "embed_text"  # texts → [N, D] vectors
    GENERATE_IMAGE = "generate_image"  # prompt (+ image) → images
    PATCH_FEATURES = "patch_features"  # image → [H', W', D] local features (inspection)


CAPABILITIES: frozenset[str] = frozenset(c.value for c in Capability)


class BackendOptions(BaseModel):
    """The options of an ``[models.NAME]`` table. Each backend type subclasses this with its
    own fields; unknown keys are refused, so a typo is an error and not a silent default.

    ``api_key_env``-style fields name an environment variable, never hold a secret.
    """

    model_config = ConfigDict(extra="forbid")

    backend: str  # the type name, e.g. "openai"


class Backend:
    """Base of every backend type: a named, configured model with a load/unload lifecycle.

    Args:
        name: The model's name (the ``NAME`` of ``[models.NAME]``; ``builtin`` for the built-in).
        options: The validated options (an instance of ``Options``).
        settings: The process settings (home, limits, threads).
    """

    type_name: ClassVar[str] = ""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities: ClassVar[frozenset[str]] = frozenset()  # may be narrowed per instance
    description: ClassVar[str] = ""  # one line for `oculi models`

    def __init__(self, name: str, options: BackendOptions, settings: "Settings") -> None:
        self.name = name
        self.options = options
        self.settings = settings
        self._lifecycle = threading.RLock()  # re-entrant: _load may call methods that call load()
        self._loaded = False
        self._resolver: Callable[[str], "Backend"] | None = None

    # --- identity ------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """A stable id recorded with what this model wrote (vectors, documents), e.g.
        ``"openai:qwen2.5vl:3b"``. Subclasses name the weights they run; the default is
        ``type:name``."""
        return f"{self.type_name}:{self.name}"

    def supports(self, capability: str) -> bool:
        """Whether this model serves ``capability`` (one of ``CAPABILITIES``)."""
        return str(capability) in self.capabilities

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load the model (idempotent, thread-safe). Raises what ``_load`` raises."""
        if self._loaded:
            return
        with self._lifecycle:
            if not self._loaded:
                self._load()
                self._loaded = True

    def unload(self) -> None:
        """Release the model; a later ``load()`` loads it again."""
        with self._lifecycle:
            if self._loaded:
                self._unload()
                self._loaded = False

    def close(self) -> None:
        """What the engine calls when it shuts down: unload by default."""
        self.unload()

    def _load(self) -> None:
        """Load weights, open sessions, check a server (subclasses)."""

    def _unload(self) -> None:
        """Drop what ``_load`` made (subclasses)."""

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, "detail": str}``: whether the model loads (or its server answers).

        The default loads the model; backends with a server override it with a cheap request.
        """
        try:
            self.load()
        except Exception as e:  # noqa: BLE001 - any failure is the answer to "does it load?"
            return {"ok": False, "detail": f"{type(e).__name__}: {e}" if not str(e) else str(e)}
        return {"ok": True, "detail": "loaded"}

    # --- composition ---------------------------------------------------------------------------
    def use_model(self, name: str) -> "Backend":
        """Another configured model by name, loaded (e.g. the base model a trained head builds on).

        The engine that created this backend resolves the name, so both share one instance.
        """
        if self._resolver is not None:
            b = self._resolver(name)
        else:
            from oculi.backends.registry import create_model

            b = create_model(name, self.settings)
        b.load()
        return b

    def bind(self, resolver: Callable[[str], "Backend"]) -> None:
        """Give this backend the function that resolves other models' names (the engine's)."""
        self._resolver = resolver

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.type_name})>"


@dataclass(frozen=True)
class VectorSpace:
    """Which model made a kind of vector, and its size: what collections and trained models
    record so vectors of two models are never compared."""

    model: str
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dim": int(self.dim)}


def vector_space(backend: Any, kind: Literal["image", "text"]) -> VectorSpace:
    """The space of ``backend``'s image or text vectors: its ``image_space``/``text_space``
    when it declares one, else its ``model_id`` and ``image_dim``/``text_dim``."""
    own = getattr(backend, f"{kind}_space", None)
    if own is not None:
        return own if isinstance(own, VectorSpace) else VectorSpace(str(own["model"]), int(own["dim"]))
    model = getattr(backend, "model_id", None) or getattr(backend, "name", type(backend).__name__)
    dim = getattr(backend, f"{kind}_dim", None)
    if dim is None:
        raise ConfigError(f"model {model!r} does not declare {kind}_dim; it cannot embed {kind}s")
    return VectorSpace(str(model), int(dim))


# --- chat messages ---------------------------------------------------------------------------
@dataclass
class ChatPart:
    """One part of a chat message: text or an image."""

    type: Literal["text", "image"]
    text: str | None = None
    image: "Image.Image | None" = None

    def __post_init__(self) -> None:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs text")
        if self.type == "image" and self.image is None:
            raise ValueError("an image part needs an image")
        if self.type not in ("text", "image"):
            raise ValueError(f"a chat part is text or image, not {self.type!r}")


@dataclass
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    parts: list[ChatPart] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The message's text parts joined by newlines."""
        return "\n".join(p.text for p in self.parts if p.type == "text" and p.text)

    @property
    def images(self) -> list["Image.Image"]:
        return [p.image for p in self.parts if p.type == "image" and p.image is not None]


@dataclass
class ChatOptions:
    max_tokens: int | None = None
    stop: list[str] | None = None
    temperature: float | None = None
    response_format: dict | None = None


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"


# --- capability protocols ----------------------------------------------------------------------
@runtime_checkable
class Perceiver(Protocol):
    """Turns an image into an ``Observation`` (objects, labels, text, colours, embedding).

    ``observe_batch`` (``BatchPerceiver``) and ``load`` are optional: the engine falls back to
    one ``observe`` per image and to ``Backend.load``.
    """

    def observe(self, image: "Image.Image", info: ImageInfo, *, ocr: bool = True) -> Observation: ...


@runtime_checkable
class BatchPerceiver(Perceiver, Protocol):
    def observe_batch(self, images: Sequence["Image.Image"], infos: Sequence[ImageInfo], *,
                      ocr: bool = True) -> list[Observation]: ...


@runtime_checkable
class Describer(Protocol):
    """Writes a caption for an image. ``observation`` is what perception found (``None`` when
    the caller has none); a VLM may ignore it and look at the pixels, the built-in model writes
    only from it. ``image`` may be ``None`` when only a stored observation is at hand
    (``Engine.describe_observation``); a backend that needs pixels then raises ``InputError``."""

    def describe(self, image: "Image.Image | None", observation: Observation | None, *, detailed: bool = False) -> str: ...


@runtime_checkable
class Answerer(Protocol):
    """Answers a question about an image."""

    def answer(self, image: "Image.Image", observation: Observation | None, question: str) -> Answer: ...


@runtime_checkable
class Chatter(Protocol):
    """Multi-turn chat with images in any message."""

    def chat(self, messages: list[ChatMessage], options: ChatOptions) -> ChatResult: ...


@runtime_checkable
class ChatStreamer(Protocol):
    """Chat streamed as text pieces (optional; the engine falls back to ``chat``)."""

    def chat_stream(self, messages: list[ChatMessage], options: ChatOptions) -> Iterator[str]: ...


@runtime_checkable
class Detector(Protocol):
    """Finds objects: label, score, box."""

    def detect(self, image: "Image.Image") -> list[DetectedObject]: ...


@runtime_checkable
class FrameDetector(Protocol):
    """Finds objects in video frames: the detector alone (no colours, no face finder), down to
    ``min_score`` so a tracker can continue tracks on weak detections. Footage calls this."""

    def detect_frames(self, images: Sequence["Image.Image"], *, min_score: float) -> list[list[DetectedObject]]: ...


@runtime_checkable
class Reader(Protocol):
    """Reads text (OCR): lines in reading order."""

    def read(self, image: "Image.Image") -> list[TextLine]: ...


@runtime_checkable
class Classifier(Protocol):
    """Scores an image against labels (a trained head's classes, or the caller's)."""

    def classify(self, image: "Image.Image", labels: Sequence[str]) -> list[ClassScore]: ...


@runtime_checkable
class ImageEmbedder(Protocol):
    """Embeds images into an L2-normalised vector space: returns ``[N, image_dim]`` float32."""

    image_dim: int

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Embeds texts into an L2-normalised vector space: returns ``[N, text_dim]`` float32."""

    text_dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class ImageGenerator(Protocol):
    """Text-to-image (and image-to-image with ``image`` and ``strength``). A generator that can edit
    inside a mask also takes ``mask`` (white = repaint, the size of ``image``); one without that
    keyword is refused a mask, never given one it would ignore."""

    def generate_image(self, prompt: str, *, image: "Image.Image | None" = None, steps: int | None = None,
                       seed: int | None = None, width: int | None = None, height: int | None = None,
                       strength: float | None = None) -> list["Image.Image"]: ...


@runtime_checkable
class PatchFeaturer(Protocol):
    """Mid-level patch features for anomaly detection (``oculi inspect``): ``[N, h, w, C]``
    float32, one C-vector per cell of a grid over each whole image (not normalised)."""

    def patch_features(self, images: Sequence["Image.Image"]) -> np.ndarray: ...


PatchEmbedder = PatchFeaturer  # the name the inspection code was written against


# The protocol each capability's method belongs to (the conformance test checks these).
PROTOCOLS: dict[str, type] = {
    Capability.OBSERVE: Perceiver,
    Capability.DESCRIBE: Describer,
    Capability.ANSWER: Answerer,
    Capability.CHAT: Chatter,
    Capability.DETECT: Detector,
    Capability.DETECT_FRAMES: FrameDetector,
    Capability.READ: Reader,
    Capability.CLASSIFY: Classifier,
    Capability.EMBED_IMAGE: ImageEmbedder,
    Capability.EMBED_TEXT: TextEmbedder,
    Capability.GENERATE_IMAGE: ImageGenerator,
    Capability.PATCH_FEATURES: PatchFeaturer,
}


def require(backend: Any, capability: str) -> Any:
    """``backend`` if it serves ``capability``, else a ``ConfigError`` naming what it serves."""
    caps = getattr(backend, "capabilities", None)
    if caps is not None and str(capability) not in caps:
        name = getattr(backend, "name", type(backend).__name__)
        raise ConfigError(f"model {name!r} does not serve {capability}; it serves: {', '.join(sorted(caps)) or 'nothing'}")
    return backend
