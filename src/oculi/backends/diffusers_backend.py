"""The ``diffusers`` backend type: text-to-image and image-to-image from a pipeline folder you supply.

oculi has no built-in image generator and nothing pretends to be one: ``oculi generate`` needs a
model of this type (or a plugin's) configured::

    [models.sd]
    backend = "diffusers"
    path = "~/models/stable-diffusion-v1-5"   # a folder saved by DiffusionPipeline.save_pretrained
    device = "auto"                            # auto | cpu | cuda | cuda:1
    steps = 25                                 # default number of denoising steps
    [tasks]
    generate = "sd"

The folder loads with ``DiffusionPipeline.from_pretrained`` (whatever pipeline class its
``model_index.json`` names: Stable Diffusion 1.x/2.x/XL, PixArt, ...). Image-to-image reuses the
same components through ``AutoPipelineForImage2Image.from_pipe`` (no second copy of the weights), and
an edit inside a mask through ``AutoPipelineForInpainting.from_pipe`` (an inpainting checkpoint uses
its extra UNet inputs; an ordinary one keeps the unmasked latents of the start image at every step).
torch and diffusers are imported on ``load()``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from PIL import Image
from pydantic import Field

from oculi.backends.base import Backend, BackendOptions
from oculi.backends.torch_device import resolve_torch_device
from oculi.core.errors import BackendError, InputError, ModelConfigError

log = logging.getLogger(__name__)

MAX_SIDE = 2048
MAX_STEPS = 500


class DiffusersOptions(BackendOptions):
    """Options of a ``diffusers`` model (a ``[models.NAME]`` table with ``backend = "diffusers"``)."""

    path: str = Field(description="a diffusers pipeline folder (model_index.json)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    steps: int = Field(25, ge=1, le=MAX_STEPS, description="default denoising steps")
    guidance_scale: float | None = Field(None, ge=0.0, le=50.0, description="classifier-free guidance (pipeline default when unset)")
    strength: float = Field(0.6, gt=0.0, le=1.0, description="image-to-image: how far from the input image")


class DiffusersBackend(Backend):
    """A diffusers pipeline: ``generate_image`` (text-to-image; image-to-image with ``image``)."""

    type_name: ClassVar[str] = "diffusers"
    Options: ClassVar[type[BackendOptions]] = DiffusersOptions
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate_image"})
    description = "a diffusers pipeline folder: text-to-image and image-to-image (oculi generate)"

    def __init__(self, name: str, options: DiffusersOptions, settings: Any) -> None:
        super().__init__(name, options, settings)
        self.options: DiffusersOptions = options
        self.pipe: Any = None
        self._img2img: Any = None
        self._inpaint: Any = None
        self.device = "cpu"
        self._run_lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return Path(self.options.path).expanduser()

    @property
    def model_id(self) -> str:
        return f"diffusers:{self.folder.name}"

    def _load(self) -> None:
        if not (self.folder / "model_index.json").is_file():
            what = "does not exist" if not self.folder.exists() else "has no model_index.json (not a diffusers pipeline folder)"
            raise ModelConfigError(f"model {self.name!r}: the folder {self.options.path} {what}; save one with "
                                   "DiffusionPipeline.save_pretrained(folder)")
        try:
            import torch
            from diffusers import DiffusionPipeline
        except ImportError as e:
            raise ModelConfigError(f"model {self.name!r} needs diffusers: pip install 'oculi[diffusers]' ({e})") from None
        dev, dtype = resolve_torch_device(self.name, self.options.device, self.options.dtype, cuda_default="float16")
        try:
            pipe = DiffusionPipeline.from_pretrained(self.folder, dtype=dtype, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelConfigError(f"model {self.name!r}: {self.options.path} does not load as a diffusers pipeline: {e}") from None
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(dev)
        self.device = dev
        self._img2img = self._inpaint = None
        log.info("loaded %s (%s) on %s", self.folder, type(pipe).__name__, dev)

    def _unload(self) -> None:
        self.pipe = self._img2img = self._inpaint = None

    def _image_to_image(self) -> Any:
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            try:
                self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe)
            except (ValueError, KeyError) as e:
                raise ModelConfigError(f"model {self.name!r} ({type(self.pipe).__name__}) has no image-to-image form: {e}") from None
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def _inpainting(self) -> Any:
        if self._inpaint is None:
            from diffusers import AutoPipelineForInpainting

            try:
                self._inpaint = AutoPipelineForInpainting.from_pipe(self.pipe)
            except (ValueError, KeyError) as e:
                raise ModelConfigError(f"model {self.name!r} ({type(self.pipe).__name__}) has no inpainting form, so it "
                                       f"cannot edit inside a mask: {e}") from None
            self._inpaint.set_progress_bar_config(disable=True)
        return self._inpaint

    def _side(self, value: int | None, name: str) -> int | None:
        if value is None:
            return None
        step = 8 * max(1, int(getattr(self.pipe, "vae_scale_factor", 8)) // 8)
        if not (step <= value <= MAX_SIDE) or value % step:
            raise InputError(f"{name} must be a multiple of {step} between {step} and {MAX_SIDE}; got {value}")
        return value

    def generate_image(self, prompt: str, *, image: Image.Image | None = None, steps: int | None = None,
                       seed: int | None = None, width: int | None = None, height: int | None = None,
                       strength: float | None = None, mask: Image.Image | None = None,
                       progress: Callable[[int, int], None] | None = None) -> list[Image.Image]:
        """Images for ``prompt`` (one), or ``image`` changed toward it (image-to-image), only inside
        ``mask`` when one is given.

        Args:
            prompt: What to draw.
            image: A start image: image-to-image with ``strength`` (0 keeps it, 1 ignores it). A start
                image larger than 2048 pixels a side is scaled down first (aspect kept).
            mask: With ``image``: where to edit, white (255) = repaint, black = keep (diffusers'
                convention), the size of ``image``. ``oculi.tasks.generate.mask_from`` reads
                OpenAI's convention (transparent = edit) into this one.
            steps: Denoising steps (default: the model's ``steps``).
            seed: Same seed, same prompt, same options → the same image.
            width, height: Output size in pixels (multiples of 8; default: the pipeline's).
            progress: Called with ``(step, steps)`` after each denoising step.

        Raises:
            InputError: empty prompt, bad size, steps or strength, a mask without an image or of
                another size; BackendError: the pipeline failed.
        """
        import torch

        if not prompt or not prompt.strip():
            raise InputError("the prompt is empty; say what to draw, e.g. \"a red bicycle against a brick wall\"")
        n_steps = steps if steps is not None else self.options.steps
        if not 1 <= n_steps <= MAX_STEPS:
            raise InputError(f"steps must be between 1 and {MAX_STEPS}; got {n_steps}")
        if strength is not None and not 0.0 < strength <= 1.0:
            raise InputError(f"strength must be in (0, 1]; got {strength}")
        if mask is not None and image is None:
            raise InputError("a mask needs the image it marks up (image-to-image)")
        if mask is not None and mask.size != image.size:
            raise InputError(f"the mask is {mask.width}x{mask.height}; the image is {image.width}x{image.height}: they must match")
        self.load()
        kw: dict[str, Any] = {"prompt": prompt, "num_inference_steps": n_steps}
        if self.options.guidance_scale is not None:
            kw["guidance_scale"] = self.options.guidance_scale
        if seed is not None:
            kw["generator"] = torch.Generator(device="cpu").manual_seed(int(seed))
        total = n_steps
        if image is not None:
            pipe = self._image_to_image() if mask is None else self._inpainting()
            s = strength if strength is not None else self.options.strength
            iw, ih = image.size
            if max(iw, ih) > MAX_SIDE:  # the start image's size is the output's: keep it within what a side may be
                f = MAX_SIDE / max(iw, ih)
                iw, ih = max(1, int(iw * f)), max(1, int(ih * f))
            w, h = self._side(width, "width") or iw, self._side(height, "height") or ih
            step = 8
            w, h = max(step, w // step * step), max(step, h // step * step)
            kw.update(image=image.convert("RGB").resize((w, h)), strength=s)
            if mask is not None:
                kw.update(mask_image=mask.convert("L").resize((w, h), Image.Resampling.NEAREST), width=w, height=h)
                kw["mask_image"] = kw["mask_image"].point(lambda v: 255 if v >= 128 else 0)
            total = max(1, int(n_steps * s))
        else:
            pipe = self.pipe
            kw.update(width=self._side(width, "width"), height=self._side(height, "height"))
        if progress is not None:
            def on_step(_pipe: Any, i: int, _t: Any, cb_kwargs: dict[str, Any]) -> dict[str, Any]:
                progress(min(i + 1, total), total)
                return cb_kwargs

            kw["callback_on_step_end"] = on_step
        try:
            with self._run_lock, torch.inference_mode():
                out = pipe(**kw)
        except (RuntimeError, ValueError) as e:
            raise BackendError(f"model {self.name!r} failed to generate: {e}") from e
        if mask is not None:
            # the VAE round trip changes every pixel a little (its group norms see the whole image): outside the
            # mask the start image's own pixels are put back, so an edit changes only what the mask marks
            return [Image.composite(im.convert("RGB"), kw["image"], kw["mask_image"]) for im in out.images]
        return list(out.images)
