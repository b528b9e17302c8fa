"""The ``transformers`` backend type: a model folder on your disk (or a hub id, with a network).

Two families, told apart from the folder's ``config.json`` (``kind = "auto"``) or named:

* **embedders** (``kind = "clip"`` / ``"siglip"``; CLIP, SigLIP, SigLIP 2, Chinese-CLIP...):
  ``AutoModel`` + ``AutoProcessor``, ``get_image_features`` / ``get_text_features``; serve
  ``embed_image`` and ``embed_text`` (one shared space: text→image search works) and zero-shot
  ``classify`` (the model's own logit scale, softmax; SigLIP's sigmoid).
* **vision-language generators** (``kind = "vlm"``; SmolVLM/Idefics3, Qwen2-VL, LLaVA,
  PaliGemma, BLIP...): ``AutoModelForImageTextToText`` + ``AutoProcessor`` and the processor's
  chat template; serve ``describe``, ``answer`` and multi-turn ``chat`` with any number of
  images, streamed through a ``TextIteratorStreamer``. A processor without a chat template
  (PaliGemma, BLIP) gets the task prefixes its family was trained on (``TASK_PROMPTS``) and the
  last user turn only; images larger than ``max_image_pixels`` are scaled down first (Qwen2-VL
  takes any size); a processor that names a video processor (Qwen2-VL, SmolVLM2) is built for
  images alone where torchvision, which transformers' video processors need, is not installed.

``oculi.toml``::

    [models.smolvlm]
    backend = "transformers"
    path = "~/models/SmolVLM-256M-Instruct"   # a folder; a hub id needs a network
    device = "auto"                            # auto | cpu | cuda | cuda:1
    dtype = "auto"                             # auto (float32 on CPU, bfloat16/float16 on GPU) | float32 | float16 | bfloat16

Models whose code lives in the repository (``trust_remote_code``) break across transformers
versions; pin ``revision`` and note the transformers version ``oculi models`` reports. torch and
transformers are imported on ``load()``, never at import.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal, Sequence

import numpy as np
from PIL import Image
from pydantic import Field

from oculi.backends.base import Backend, BackendOptions, ChatMessage, ChatOptions, ChatPart, ChatResult
from oculi.backends.torch_device import resolve_torch_device
from oculi.backends.vlm_common import JSON_INSTRUCTION, answer_of, caption_prompt, cut_at_stop
from oculi.core.errors import BackendError, InputError, ModelConfigError
from oculi.core.types import Answer, ClassScore, Observation

log = logging.getLogger(__name__)

EMBEDDER_TYPES = {"clip", "siglip", "siglip2", "chinese_clip", "altclip", "metaclip_2"}
EMBED_CAPS = frozenset({"embed_image", "embed_text", "classify"})
VLM_CAPS = frozenset({"describe", "answer", "chat"})
# 1280 tokens of 28x28 pixels: the cap Qwen2-VL's authors suggest; 3-4x what SmolVLM, PaliGemma, LLaVA and BLIP
# use anyway (they resize to a fixed size), so for them the cap only saves decoding and resizing time.
MAX_IMAGE_PIXELS = 1280 * 28 * 28
# Processors without a chat template want the task in the words they were trained on, not a chat prompt.
# Keyed by processor class (data, not branches in the code); {question} is the user's question.
TASK_PROMPTS: dict[str, dict[str, str]] = {
    "PaliGemmaProcessor": {"caption": "caption en", "detailed": "describe en", "answer": "answer en {question}"},
    "BlipProcessor": {"caption": "a picture of", "detailed": "a picture of", "answer": "question: {question} answer:"},
}
# Models that see exactly one image per prompt (BLIP's decoder attends to one image's features).
ONE_IMAGE_PROCESSORS = frozenset({"BlipProcessor"})


class TransformersOptions(BackendOptions):
    """Options of a ``transformers`` model (a ``[models.NAME]`` table with ``backend = "transformers"``)."""

    path: str = Field(description="model folder, or a hub id (needs a network)")
    revision: str | None = Field(None, description="hub revision (commit) to pin; ignored for a folder")
    kind: Literal["auto", "clip", "siglip", "vlm"] = "auto"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    batch_size: int = Field(8, ge=1, le=1024)
    max_new_tokens: int = Field(256, ge=1, le=32768)
    max_image_pixels: int = Field(
        MAX_IMAGE_PIXELS, ge=28 * 28, le=64_000_000,
        description="a larger image is scaled down (aspect kept) before the processor sees it; bounds the image "
                    "tokens of models that take any size (Qwen2-VL: one token per 28x28 pixels)")
    trust_remote_code: bool = False


class TransformersBackend(Backend):
    """A local transformers model: CLIP/SigLIP embedder or image-text-to-text generator."""

    type_name: ClassVar[str] = "transformers"
    Options: ClassVar[type[BackendOptions]] = TransformersOptions
    capabilities: ClassVar[frozenset[str]] = EMBED_CAPS | VLM_CAPS  # narrowed per instance by kind
    description = "a transformers model folder: CLIP/SigLIP (search, classify) or a VLM (caption, ask, chat)"

    def __init__(self, name: str, options: TransformersOptions, settings: Any) -> None:
        super().__init__(name, options, settings)
        self.options: TransformersOptions = options
        self._kind = options.kind if options.kind != "auto" else None
        if self._kind is not None:
            self.capabilities = EMBED_CAPS if self._kind in ("clip", "siglip") else VLM_CAPS
        elif self._folder() is not None and (self._folder() / "config.json").is_file():
            self._kind = self._detect_kind()
            self.capabilities = EMBED_CAPS if self._kind != "vlm" else VLM_CAPS
        self.model: Any = None
        self.processor: Any = None
        self.device = "cpu"
        self._run_lock = threading.Lock()  # one generate/forward at a time: memory stays bounded

    # --- lifecycle -----------------------------------------------------------------------------
    def _folder(self) -> Path | None:
        p = Path(self.options.path).expanduser()
        return p if p.is_dir() else None

    def _source(self) -> tuple[str, dict[str, Any]]:
        folder = self._folder()
        if folder is not None:
            return str(folder), {"local_files_only": True}
        if Path(self.options.path).expanduser().is_absolute() or self.options.path.startswith("."):
            raise ModelConfigError(f"model {self.name!r}: the folder {self.options.path} does not exist")
        return self.options.path, {"revision": self.options.revision}

    def _model_type(self) -> str:
        import json

        src, kw = self._source()
        folder = self._folder()
        try:
            if folder is not None:
                return str(json.loads((folder / "config.json").read_text()).get("model_type", ""))
            from transformers import AutoConfig

            return str(AutoConfig.from_pretrained(src, trust_remote_code=self.options.trust_remote_code, **kw).model_type)
        except (OSError, ValueError) as e:
            raise ModelConfigError(f"model {self.name!r}: cannot read the config of {self.options.path} ({e})") from None

    def _detect_kind(self) -> str:
        model_type = self._model_type()
        return "siglip" if model_type.startswith("siglip") else ("clip" if model_type in EMBEDDER_TYPES else "vlm")

    @property
    def kind(self) -> str:
        if self._kind is None:
            self._kind = self._detect_kind()
            self.capabilities = EMBED_CAPS if self._kind != "vlm" else VLM_CAPS
        return self._kind

    @property
    def model_id(self) -> str:
        p = self.options.path.rstrip("/")
        name = Path(p).name if self._folder() is not None else p
        return f"transformers:{name}" + (f"@{self.options.revision}" if self.options.revision else "")

    def _resolve_device(self) -> tuple[str, Any]:
        return resolve_torch_device(self.name, self.options.device, self.options.dtype, cuda_default="bfloat16")

    def _load(self) -> None:
        kind = self.kind
        src, kw = self._source()
        dev, dtype = self._resolve_device()
        try:
            from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

            try:
                self.processor = AutoProcessor.from_pretrained(src, trust_remote_code=self.options.trust_remote_code, **kw)
            except ImportError as e:
                if "torchvision" not in str(e).lower():
                    raise
                self.processor = self._processor_without_video(src, kw, e)
            cls = AutoModel if kind in ("clip", "siglip") else AutoModelForImageTextToText
            model = cls.from_pretrained(src, dtype=dtype, trust_remote_code=self.options.trust_remote_code, **kw)
        except ImportError as e:
            raise ModelConfigError(f"model {self.name!r} needs a package that is not installed: {str(e).strip()} "
                                   "(pip install 'oculi[transformers]')") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            hint = "" if self._folder() is not None else " (a hub id needs a network; point path at a local folder instead)"
            raise ModelConfigError(f"model {self.name!r}: {self.options.path} does not load as a {kind} model{hint}: {e}") from None
        self.model = model.to(dev).eval()
        self.device, self.dtype = dev, dtype
        log.info("loaded %s (%s) on %s as %s", self.options.path, kind, dev, dtype)

    def _processor_without_video(self, src: str, kw: dict[str, Any], error: ImportError) -> Any:
        """The model's processor without its video processor, for image-only use where torchvision is not
        installed (transformers' video processors need it; its image processors fall back to PIL).
        Qwen2-VL, Qwen2.5-VL and SmolVLM folders name a video processor; CPU-only installs often lack torchvision."""
        import inspect

        import transformers
        from transformers import AutoImageProcessor, AutoTokenizer, ProcessorMixin
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

        cls = getattr(transformers, PROCESSOR_MAPPING_NAMES.get(self._model_type()) or "", None)
        if cls is None or "video_processor" not in cls.get_attributes() or set(cls.get_attributes()) - {
                "image_processor", "tokenizer", "video_processor"}:
            raise error
        pdict, _ = cls.get_processor_dict(src, **kw)
        params = inspect.signature(cls.__init__).parameters
        extra = {k: v for k, v in pdict.items() if k in params and k not in cls.get_attributes()}
        check = cls.check_argument_for_proper_class
        image_only = type(cls.__name__, (cls,), {  # the same processor; no video processor is asked for or consulted
            "check_argument_for_proper_class": lambda s, n, a: None if a is None and n == "video_processor" else check(s, n, a),
            "apply_chat_template": ProcessorMixin.apply_chat_template})
        log.info("model %s: torchvision is not installed; its %s takes images only", self.name, cls.__name__)
        return image_only(image_processor=AutoImageProcessor.from_pretrained(src, **kw),
                          tokenizer=AutoTokenizer.from_pretrained(src, **kw), video_processor=None, **extra)

    def _unload(self) -> None:
        self.model = self.processor = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def health(self) -> dict[str, Any]:
        try:
            self.load()
        except Exception as e:  # noqa: BLE001 - health reports any failure as text
            return {"ok": False, "detail": str(e)}
        import transformers

        return {"ok": True, "detail": f"{self.kind} on {self.device} (transformers {transformers.__version__})"}

    def _need(self, family: str) -> None:
        if (family == "vlm") != (self.kind == "vlm"):
            what = "an image-text-to-text model (SmolVLM, Qwen2-VL, LLaVA...)" if family == "vlm" else "a CLIP or SigLIP model"
            raise ModelConfigError(f"model {self.name!r} is a {self.kind} model; this needs {what}")
        self.load()

    # --- embedder --------------------------------------------------------------------------------
    @staticmethod
    def _features(out: Any) -> Any:
        """Projected features from ``get_*_features`` (a tensor, or an output with ``pooler_output``)."""
        return out if hasattr(out, "norm") else out.pooler_output

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Image embeddings ``[N, D]``, float32, L2-normalised, in batches of ``batch_size``."""
        import torch

        self._need("embed")
        out = []
        for i in range(0, len(images), self.options.batch_size):
            batch = [im.convert("RGB") for im in images[i:i + self.options.batch_size]]
            enc = self.processor(images=batch, return_tensors="pt").to(self.device)
            enc["pixel_values"] = enc["pixel_values"].to(self.dtype)
            with self._run_lock, torch.inference_mode():
                f = self._features(self.model.get_image_features(**enc))  # [B, D]
            out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.image_dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text embeddings ``[N, D]`` in the image space, float32, L2-normalised."""
        import torch

        self._need("embed")
        padding = "max_length" if self.kind == "siglip" else True  # SigLIP was trained on padded text
        out = []
        for i in range(0, len(texts), self.options.batch_size):
            enc = self.processor(text=list(texts[i:i + self.options.batch_size]), padding=padding, truncation=True,
                                 return_tensors="pt").to(self.device)
            with self._run_lock, torch.inference_mode():
                f = self._features(self.model.get_text_features(**enc))  # [B, D]
            out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.text_dim), np.float32)

    @property
    def image_dim(self) -> int:
        return self._dim()

    @property
    def text_dim(self) -> int:
        return self._dim()

    def _dim(self) -> int:
        self._need("embed")
        cfg = self.model.config
        return int(getattr(cfg, "projection_dim", None) or cfg.text_config.hidden_size)

    def classify(self, image: Image.Image, labels: Sequence[str]) -> list[ClassScore]:
        """Zero-shot scores of ``labels`` ("a photo of a {label}"), best first: softmax over the
        model's scaled similarities (CLIP), or each label's own sigmoid (SigLIP, not summing to 1)."""
        import torch

        if len(labels) < 1:
            raise InputError("give at least one label")
        img = torch.from_numpy(self.embed_images([image]))  # [1, D]
        txt = torch.from_numpy(self.embed_texts([f"a photo of a {lab}" for lab in labels]))  # [L, D]
        scale = float(self.model.logit_scale.detach().exp()) if hasattr(self.model, "logit_scale") else 100.0
        logits = scale * (img @ txt.T)[0]  # [L]
        if self.kind == "siglip" and hasattr(self.model, "logit_bias"):
            probs = torch.sigmoid(logits + float(self.model.logit_bias.detach()))
        else:
            probs = torch.softmax(logits, dim=0)
        order = torch.argsort(probs, descending=True).tolist()
        return [ClassScore(labels[i], float(probs[i])) for i in order]

    # --- generator -------------------------------------------------------------------------------
    def describe(self, image: Image.Image, observation: Observation | None = None, *, detailed: bool = False) -> str:
        text = self._task_prompt("detailed" if detailed else "caption") or caption_prompt(detailed)
        msgs = [ChatMessage("user", [ChatPart("image", image=image), ChatPart("text", text)])]
        return self.chat(msgs, ChatOptions()).text.strip()

    def answer(self, image: Image.Image, observation: Observation | None, question: str) -> Answer:
        text = (self._task_prompt("answer") or "{question}").replace("{question}", question)
        msgs = [ChatMessage("user", [ChatPart("image", image=image), ChatPart("text", text)])]
        res, conf = self._generate(msgs, ChatOptions())
        return answer_of(question, res.text, conf)

    def _task_prompt(self, task: str) -> str | None:
        """The words a template-free processor's family was trained on for ``task`` (``TASK_PROMPTS``);
        None for a model with a chat template, which gets oculi's own prompt as a chat turn."""
        self._need("vlm")
        if getattr(self.processor, "chat_template", None):
            return None
        return TASK_PROMPTS.get(type(self.processor).__name__, {}).get(task)

    def chat(self, messages: Sequence[ChatMessage], options: ChatOptions | None = None) -> ChatResult:
        """A reply to a whole conversation, every image of it given to the model."""
        return self._generate(messages, options or ChatOptions())[0]

    def chat_stream(self, messages: Sequence[ChatMessage], options: ChatOptions | None = None) -> Iterator[str]:
        """The reply as it is generated (pieces of text), through a ``TextIteratorStreamer``."""
        from transformers import TextIteratorStreamer

        options = options or ChatOptions()
        enc, kw = self._inputs(messages, options)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []

        def run() -> None:
            import torch

            try:
                with self._run_lock, torch.inference_mode():
                    self.model.generate(**enc, **kw, streamer=streamer)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(e)
                streamer.end()

        t = threading.Thread(target=run, name=f"oculi-generate-{self.name}", daemon=True)
        t.start()
        sent = ""
        stopped = False
        for piece in streamer:
            text, stopped = cut_at_stop(sent + piece, options.stop)
            if len(text) > len(sent):
                yield text[len(sent):]
                sent = text
            if stopped:
                break
        if stopped:  # drain what is still coming, so the generating thread can finish
            for _ in streamer:
                pass
        t.join()
        if errors:
            raise BackendError(f"model {self.name!r} failed while generating: {errors[0]}") from errors[0]

    def _inputs(self, messages: Sequence[ChatMessage], options: ChatOptions) -> tuple[Any, dict[str, Any]]:
        self._need("vlm")
        images: list[Image.Image] = []
        conv: list[dict[str, Any]] = []
        templated = bool(getattr(self.processor, "chat_template", None))
        if not templated:  # a model without a chat template (BLIP, PaliGemma) holds no conversation: the last user turn
            messages = [m for m in messages if m.role == "user"][-1:] or list(messages)[-1:]
        for m in messages:
            content: list[dict[str, Any]] = []
            for p in m.parts:
                if p.type == "image" and p.image is not None:
                    images.append(self._bounded(p.image.convert("RGB")))
                    content.append({"type": "image"})
                elif p.text:
                    content.append({"type": "text", "text": p.text})
            conv.append({"role": m.role, "content": content})
        if options.response_format and options.response_format.get("type") in ("json_object", "json_schema"):
            if conv and conv[-1]["role"] == "user":
                conv[-1]["content"].append({"type": "text", "text": JSON_INSTRUCTION})
            else:
                conv.append({"role": "user", "content": [{"type": "text", "text": JSON_INSTRUCTION}]})
        if templated:
            prompt = self.processor.apply_chat_template(conv, add_generation_prompt=True)
        else:  # the processor puts the image tokens (PaliGemma) or the image (BLIP) before the text itself
            prompt = " ".join(c.get("text", "") for c in conv[-1]["content"] if c["type"] == "text").strip()
            if images and getattr(self.processor, "image_token", None):  # PaliGemma: "<image>" per image, then the text
                prompt = self.processor.image_token * len(images) + prompt
        if type(self.processor).__name__ in ONE_IMAGE_PROCESSORS and len(images) != 1:
            raise InputError(f"model {self.name!r} ({type(self.processor).__name__}) takes exactly one image per request; "
                             f"this conversation's last user turn has {len(images)}")
        try:  # one prompt with its images: a nested list, which every processor reads as "these images, this text"
            enc = self.processor(images=[images] if images else None, text=prompt, return_tensors="pt").to(self.device)
        except (ValueError, TypeError) as e:
            raise InputError(f"model {self.name!r} cannot take this conversation ({len(images)} images): {e}") from None
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(self.dtype)
        max_new = min(options.max_tokens or self.options.max_new_tokens, self.options.max_new_tokens)
        kw: dict[str, Any] = {"max_new_tokens": max_new}
        if options.temperature:
            kw.update(do_sample=True, temperature=float(options.temperature))
        else:
            kw.update(do_sample=False)
        if options.stop:
            from transformers import StoppingCriteriaList

            kw["stopping_criteria"] = StoppingCriteriaList([_StopOnText(self.processor.tokenizer, list(options.stop))])
        return enc, kw

    def _bounded(self, image: Image.Image) -> Image.Image:
        """``image`` scaled down (aspect kept) to at most ``max_image_pixels`` pixels."""
        area = image.width * image.height
        if area <= self.options.max_image_pixels:
            return image
        f = math.sqrt(self.options.max_image_pixels / area)
        return image.resize((max(1, int(image.width * f)), max(1, int(image.height * f))), Image.Resampling.BICUBIC)

    def _generate(self, messages: Sequence[ChatMessage], options: ChatOptions) -> tuple[ChatResult, float]:
        """The reply, and its confidence: the geometric mean of the chosen tokens' probabilities."""
        import torch

        enc, kw = self._inputs(messages, options)
        n_prompt = int(enc["input_ids"].shape[1])
        try:
            with self._run_lock, torch.inference_mode():
                out = self.model.generate(**enc, **kw, return_dict_in_generate=True, output_scores=True)
        except (RuntimeError, TypeError, ValueError) as e:
            raise BackendError(f"model {self.name!r} failed while generating: {e}") from e
        # the new tokens are the last len(scores): BLIP's decoder returns its prompt shortened by one token
        new = out.sequences[0, out.sequences.shape[1] - len(out.scores):]  # [T]
        logp = 0.0
        for step, tok in zip(out.scores, new.tolist()):
            logp += float(torch.log_softmax(step[0].float(), dim=-1)[tok])
        n_new = int(new.shape[0])
        conf = math.exp(logp / n_new) if n_new else 0.0
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, options.stop)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        ended = stopped or (n_new and int(new[-1]) in eos_ids) or n_new < kw["max_new_tokens"]
        return ChatResult(text.strip(), n_prompt, n_new, "stop" if ended else "length"), conf


class _StopOnText:
    """Stops generation once the decoded reply contains a stop string. transformers' own
    ``stop_strings`` needs a tokenizer it can map token pieces of; decoding works with any."""

    def __init__(self, tokenizer: Any, stops: list[str]) -> None:
        self.tokenizer, self.stops = tokenizer, [s for s in stops if s]
        self.n_prompt: int | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.n_prompt is None:  # first call: one token is new (BLIP's decoder prompt is not the processor's)
            self.n_prompt = int(input_ids.shape[1]) - 1
        done = [any(s in self.tokenizer.decode(row[self.n_prompt:], skip_special_tokens=True) for s in self.stops)
                for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
