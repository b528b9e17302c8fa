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
from dataclasses import replace
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from oculi.backends.registry import ModelRegistry, capabilities_of
from oculi.config import Settings
from oculi.core.errors import InputError, ModelConfigError, OculiError
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

    Which model serves each capability comes from the model configuration (``oculi.toml``
    ``[tasks]``, see ``oculi.config``); ``settings.model`` (``--model NAME``) serves every
    capability it can. ``builtin`` serves the rest.

    Args:
        settings: Settings to use; ``Settings()`` (environment) when omitted.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._backends: dict[str, Any] = {}  # model name → backend instance
        self._lock = threading.RLock()
        self._heads: Any = None
        self._models: ModelRegistry | None = None

    # --- wiring ------------------------------------------------------------------------------
    @property
    def models(self) -> ModelRegistry:
        """The configured models (read from the config files on first use)."""
        with self._lock:
            if self._models is None:
                self._models = ModelRegistry(self.settings)
            return self._models

    def model(self, name: str) -> Any:
        """The backend instance of the configured model ``name`` (created on first use, shared).

        Raises:
            ModelConfigError: no such model, or its table is invalid for its type.
        """
        with self._lock:
            if name not in self._backends:
                b = self.models.create(name)
                if hasattr(b, "bind"):
                    b.bind(self.model)
                self._backends[name] = b
            return self._backends[name]

    def model_name_for(self, capability: str) -> str:
        """The name of the model that serves ``capability`` (see the class docstring)."""
        override = self.settings.model
        if override is not None and str(capability) in capabilities_of(self.model(override)):
            return override
        return self.models.model_for(str(capability))

    def backend(self, capability: str) -> Any:
        """The backend serving a capability (created on first use, then shared).

        Raises:
            ModelConfigError: the model named for it is unknown or does not serve it.
        """
        name = self.model_name_for(capability)
        b = self.model(name)
        if getattr(b, "capabilities", None) is not None and str(capability) not in capabilities_of(b):
            raise ModelConfigError(f"model {name!r} ({getattr(b, 'type_name', '?')}) is configured for {capability} but does "
                                   f"not serve it; it serves: {', '.join(sorted(capabilities_of(b))) or 'nothing'}")
        return b

    def list_models(self, *, health: bool = True) -> dict[str, Any]:
        """The configured models (``oculi models``): ``{"models": [...], "tasks": {capability:
        model}, "backend_types": [...], "config_files": [...]}``; each model as
        ``oculi.backends.registry.model_status`` (with a health check unless ``health`` is False).

        Raises:
            ModelConfigError: a config file cannot be read (a broken model is listed, not raised).
        """
        from oculi.backends.base import CAPABILITIES
        from oculi.backends.registry import backend_type_status, list_backend_types, model_status

        reg = self.models
        models = []
        for name in reg.names():
            try:
                inst = self.model(name)
            except Exception:  # noqa: BLE001 - model_status reports it
                inst = None
            models.append(model_status(reg, name, instance=inst, health=health))
        tasks: dict[str, str | None] = {}
        for cap in sorted(CAPABILITIES):
            try:
                tasks[cap] = self.model_name_for(cap) if str(cap) in capabilities_of(self.backend(cap)) else None
            except OculiError:
                tasks[cap] = None
        for e in models:
            e["serves"] = [cap for cap, m in tasks.items() if m == e["name"]]
        return {"models": models, "tasks": tasks, "backend_types": [backend_type_status(t) for t in list_backend_types()],
                "config_files": [str(p) for p in reg.config.files]}

    def require_model(self, name: str, *capabilities: str) -> None:
        """Check that the model ``name`` exists and serves at least one of ``capabilities``
        (what ``--model`` on a command checks before any work).

        Raises:
            ModelConfigError: naming what the model serves.
        """
        caps = capabilities_of(self.model(name))
        if capabilities and not any(str(c) in caps for c in capabilities):
            raise ModelConfigError(f"model {name!r} serves {', '.join(sorted(caps)) or 'nothing'}; this needs "
                                   f"{' or '.join(str(c) for c in capabilities)}")

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
        if not hasattr(inner, "observe_batch"):  # a perceiver with only the Perceiver protocol
            inner = _OneByOne(inner)
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
        for cap in ("observe", "describe", "answer", "embed_image", "embed_text"):
            b = self.backend(cap)
            if hasattr(b, "load"):
                b.load()

    def model_id_for(self, capability: str) -> str:
        """The id of the model serving ``capability`` (what is recorded with its output)."""
        b = self.backend(capability)
        return str(getattr(b, "model_id", None) or getattr(b, "name", None) or self.model_name_for(capability))

    def vector_spaces(self) -> dict[str, Any]:
        """``{"image": VectorSpace, "text": VectorSpace}`` of the configured embedders: what a
        collection records and checks before vectors of another model are mixed in."""
        from oculi.backends.base import vector_space

        return {"image": vector_space(self.backend("embed_image"), "image"),
                "text": vector_space(self.backend("embed_text"), "text")}

    def observation_embeddings_usable(self) -> bool:
        """Whether the perceiver's observation embeddings are in the image embedder's space (then
        indexing stores them instead of embedding each image again)."""
        from oculi.backends.base import vector_space

        obs_b, emb_b = self.backend("observe"), self.backend("embed_image")
        if obs_b is emb_b:
            return True
        try:
            return vector_space(obs_b, "image") == vector_space(emb_b, "image")
        except OculiError:
            return False

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
        cap = caption_task.caption(self.load_image(source), self.perceiver(), self.backend("describe"), detailed=detailed)
        return replace(cap, model=self.model_id_for("describe"))

    def describe_observation(self, observation: Observation, *, image: ImageSource | None = None,
                             detailed: bool = False) -> str:
        """A caption from the configured describer, given what perception found (and the image,
        which a VLM describer needs; the built-in model writes from the observation alone).

        Indexing calls this for every image, so a configured describer writes the stored
        captions and documents too.

        Raises:
            InputError: the describer needs the pixels and ``image`` is None.
        """
        pil = None if image is None else self.load_image(image).image
        return self.backend("describe").describe(pil, observation, detailed=detailed)

    def ask(self, source: ImageSource, question: str) -> Answer:
        """Answer a question about an image, with evidence."""
        ask_task.validate_question(question)
        ans = ask_task.ask(self.load_image(source), question, self.perceiver(), self.backend("answer"))
        return ans if ans.model is not None else replace(ans, model=self.model_id_for("answer"))

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
        b = self.backend("classify")
        if getattr(b, "type_name", "builtin") != "builtin":  # a configured classifier ([tasks] classify, --model)
            scores = sorted(b.classify(self.load_image(source).image, labs), key=lambda c: -c.score)
            if not scores:
                raise InputError(f"model {self.model_name_for('classify')!r} gave no scores for {', '.join(labs)}")
            return Classification(tuple(scores))
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

    def generator(self, model: str | None = None) -> Any:
        """The model that generates images: ``model``, else ``--model``, else ``[tasks] generate``.

        Raises:
            NoGeneratorError: none is configured (the message shows the oculi.toml that fixes it);
            ModelConfigError: ``model`` does not exist or does not generate images.
        """
        from oculi.tasks.generate import FIX, NoGeneratorError

        name = model or self.model_name_for("generate_image")
        b = self.model(name)
        if "generate_image" not in capabilities_of(b):
            if model is None and name == "builtin":
                raise NoGeneratorError(f"no image generator is configured: oculi has no built-in one. To fix it, {FIX}")
            raise ModelConfigError(f"model {name!r} ({getattr(b, 'type_name', '?')}) does not generate images; it serves "
                                   f"{', '.join(sorted(capabilities_of(b))) or 'nothing'}. {FIX[0].upper()}{FIX[1:]}")
        return b

    def generate(self, prompt: str, *, image: ImageSource | None = None, steps: int | None = None, seed: int | None = None,
                 width: int | None = None, height: int | None = None, strength: float | None = None,
                 mask: ImageSource | None = None, model: str | None = None, progress: Any = None) -> Any:
        """Images from a prompt (text-to-image), or a start image changed toward it (image-to-image),
        only where ``mask`` says when one is given: a PNG the size of ``image`` whose fully
        transparent pixels mark what to change (OpenAI's convention), or white-on-black without
        transparency.

        Returns:
            ``oculi.tasks.generate.Generation`` (images, model, seed, steps).

        Raises:
            NoGeneratorError: no generator configured; InputError: empty prompt, bad size or steps, a
            mask without an image, of another size or marking nothing; ModelConfigError: a mask for a
            generator that cannot edit inside one.

        Example:
            >>> eng.generate("a red bicycle against a brick wall", seed=1).images[0].save("out.png")  # doctest: +SKIP
        """
        from oculi.tasks import generate as generate_task

        if not prompt or not prompt.strip():
            raise InputError("the prompt is empty; say what to draw, e.g. \"a red bicycle against a brick wall\"")
        if mask is not None and image is None:
            raise InputError("a mask needs an image to edit (give the image too)")
        gen = self.generator(model)
        start = None if image is None else self.load_image(image).image
        edit = None
        if mask is not None:
            edit = generate_task.mask_from(self._load_mask(mask), start.size)
        return generate_task.generate(gen, prompt, image=start, steps=steps, seed=seed, width=width, height=height,
                                      strength=strength, mask=edit, progress=progress)

    def _load_mask(self, source: ImageSource) -> Image.Image:
        """An edit mask decoded with the image limits, its transparency kept."""
        s = self.settings
        if isinstance(source, LoadedImage):
            return source.image
        if isinstance(source, Image.Image):
            return source
        if isinstance(source, (str, Path)):
            return load_image(source, max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels, keep_alpha=True).image
        return load_image_bytes(bytes(source), name="mask", max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels,
                                keep_alpha=True).image

    def chat(self, messages: Sequence[Any], options: Any = None, *, model: str | None = None) -> Any:
        """A configured chat model's reply to a whole conversation (``oculi.backends.base.ChatMessage``
        list, any number of images). The built-in model does not chat; ``caption``/``ask`` it per image.

        Raises:
            ModelConfigError: no chat model is configured (``[tasks] chat``, ``--model``) or ``model`` does not chat.

        Example:
            >>> from oculi.backends.base import ChatMessage, ChatPart  # doctest: +SKIP
            >>> eng.chat([ChatMessage("user", [ChatPart("image", image=img), ChatPart("text", text="Compare")])]).text  # doctest: +SKIP
        """
        from oculi.backends.base import ChatOptions

        b = self.chat_model(model)
        if b is None:
            raise ModelConfigError("no chat model is configured: the built-in model answers one image at a time (caption, ask). "
                                   "Add a [models.NAME] table of type openai or transformers to oculi.toml and [tasks] chat = "
                                   "\"NAME\" (docs/BACKENDS.md)")
        return b.chat(list(messages), options or ChatOptions())

    def chat_model(self, model: str | None = None) -> Any:
        """The model that serves multi-turn ``chat`` (``model``, else ``--model``/``[tasks] chat``);
        ``None`` when that is the built-in model (the server answers each image itself)."""
        name = model or self.model_name_for("chat")
        b = self.model(name)
        if "chat" in capabilities_of(b):
            return b
        if model is not None or name != "builtin":  # asked for, or configured for chat: not silently the built-in
            raise ModelConfigError(f"model {name!r} does not chat; it serves {', '.join(sorted(capabilities_of(b))) or 'nothing'}")
        return None


class _OneByOne:
    """``observe_batch`` for a perceiver that implements only ``observe``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def observe(self, image: Any, info: Any, *, ocr: bool = True) -> Observation:
        return self.inner.observe(image, info, ocr=ocr)

    def observe_batch(self, images: Sequence[Any], infos: Sequence[Any], *, ocr: bool = True) -> list[Observation]:
        return [self.inner.observe(im, inf, ocr=ocr) for im, inf in zip(images, infos)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


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

