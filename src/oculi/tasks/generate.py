"""Generate: images from a prompt (and optionally a start image) with a configured generator.

oculi ships no image generator. The model comes from ``[tasks] generate = "NAME"`` (or
``--model NAME``), a ``[models.NAME]`` table of a type that serves ``generate_image`` (the
``diffusers`` type, or a plugin's). Without one, ``NoGeneratorError`` says so and names the
configuration that fixes it.
"""

from __future__ import annotations

import base64
import inspect
import io
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from oculi.core.errors import InputError, ModelConfigError
from oculi.core.types import SCHEMA_VERSION

FIX = ('add to oculi.toml (in OCULI_HOME, ./oculi.toml or --config FILE) a diffusers pipeline folder: '
       '[models.sd] backend = "diffusers", path = "/path/to/pipeline/folder", and [tasks] generate = "sd"; '
       'or pass --model NAME for a configured model that serves generate_image (see `oculi models`, docs/BACKENDS.md)')


class NoGeneratorError(ModelConfigError):
    """No configured model serves ``generate_image`` (exit 4; HTTP 400 ``no_generator``)."""


@dataclass(frozen=True)
class Generation:
    """Images generated for a prompt, with what reproduces them (model, seed, steps, size)."""

    prompt: str
    images: tuple[Image.Image, ...]
    model: str
    seed: int
    steps: int | None
    strength: float | None = None
    paths: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "prompt": self.prompt,
            "model": self.model,
            "seed": self.seed,
            "steps": self.steps,
            "strength": self.strength,
            "images": [{"width": im.width, "height": im.height, **({"path": p} if p else {})}
                       for im, p in zip(self.images, self.paths or ("",) * len(self.images))],
        }


def png_b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def mask_from(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """An edit mask in the generators' convention (``L``: 255 = repaint, 0 = keep) from a mask in
    OpenAI's: a PNG whose **fully transparent** pixels mark where to edit. A mask without an alpha
    channel (``L``, ``1``, RGB) is read as already in the generators' convention: white = repaint.

    Raises:
        InputError: the mask is not the size of the image, or marks nothing to edit.
    """
    if mask.size != tuple(size):
        raise InputError(f"the mask is {mask.width}x{mask.height}; the image is {size[0]}x{size[1]}: they must match")
    if mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info):
        alpha = mask.convert("RGBA").getchannel("A")
        out = alpha.point(lambda a: 255 if a == 0 else 0)
    else:
        out = mask.convert("L").point(lambda v: 255 if v >= 128 else 0)
    if out.getextrema()[1] == 0:
        raise InputError("the mask marks nothing to edit: make the area to change fully transparent (OpenAI's convention) "
                         "or white on black")
    return out


def generate(generator: Any, prompt: str, *, image: Image.Image | None = None, steps: int | None = None,
             seed: int | None = None, width: int | None = None, height: int | None = None,
             strength: float | None = None, mask: Image.Image | None = None,
             progress: Callable[[int, int], None] | None = None) -> Generation:
    """Run ``generator.generate_image``; a missing seed is drawn and recorded, so any image can be
    made again. ``mask`` (generators' convention, see ``mask_from``) needs ``image`` and a generator
    whose ``generate_image`` takes ``mask``."""
    seed = int(seed) if seed is not None else secrets.randbelow(2**31)
    kw: dict[str, Any] = {"image": image, "steps": steps, "seed": seed, "width": width, "height": height, "strength": strength}
    params = inspect.signature(generator.generate_image).parameters
    if mask is not None:
        if image is None:
            raise InputError("a mask needs the image it marks up")
        if "mask" not in params:
            name = getattr(generator, "name", type(generator).__name__)
            raise ModelConfigError(f"model {name!r} cannot edit inside a mask (its generate_image takes no mask); "
                                   "leave the mask out for an image-to-image change of the whole image")
        kw["mask"] = mask
    if progress is not None and "progress" in params:
        kw["progress"] = progress  # a plugin's generator may not report progress
    images = generator.generate_image(prompt.strip(), **kw)
    model = str(getattr(generator, "model_id", None) or getattr(generator, "name", "?"))
    return Generation(prompt.strip(), tuple(images), model, seed, steps if steps is not None else getattr(
        getattr(generator, "options", None), "steps", None), strength if image is not None else None)
