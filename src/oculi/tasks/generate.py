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

from oculi.core.errors import ModelConfigError
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


def generate(generator: Any, prompt: str, *, image: Image.Image | None = None, steps: int | None = None,
             seed: int | None = None, width: int | None = None, height: int | None = None,
             strength: float | None = None, progress: Callable[[int, int], None] | None = None) -> Generation:
    """Run ``generator.generate_image``; a missing seed is drawn and recorded, so any image can be
    made again."""
    seed = int(seed) if seed is not None else secrets.randbelow(2**31)
    kw: dict[str, Any] = {"image": image, "steps": steps, "seed": seed, "width": width, "height": height, "strength": strength}
    if progress is not None and "progress" in inspect.signature(generator.generate_image).parameters:
        kw["progress"] = progress  # a plugin's generator may not report progress
    images = generator.generate_image(prompt.strip(), **kw)
    model = str(getattr(generator, "model_id", None) or getattr(generator, "name", "?"))
    return Generation(prompt.strip(), tuple(images), model, seed, steps if steps is not None else getattr(
        getattr(generator, "options", None), "steps", None), strength if image is not None else None)
