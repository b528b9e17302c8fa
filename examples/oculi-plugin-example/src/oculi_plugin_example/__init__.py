"""An oculi backend plugin: describes an image by its mean colour.

The smallest complete backend: typed options, declared capabilities, a lifecycle, and the
capability methods oculi's tasks call. oculi finds it through the ``oculi.backends`` entry
point in this package's ``pyproject.toml``; nothing in oculi names it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from oculi.backends.base import Backend, BackendOptions, Capability
from oculi.core.types import Answer, AnswerKind, Evidence, Observation

# (name, RGB) of the colours this backend can name: the nearest one wins.
COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (200, 30, 30),
    "orange": (240, 140, 20), "yellow": (240, 220, 40), "green": (40, 160, 50), "blue": (30, 60, 210),
    "purple": (120, 40, 150), "pink": (240, 150, 190), "brown": (120, 75, 35),
}


class MeanColourOptions(BackendOptions):
    """The options of a ``[models.NAME]`` table with ``backend = "mean-colour"``."""

    colour_names: bool = True  # name the nearest colour; False: give the RGB value only
    size: int = 64  # images are shrunk to at most size×size before averaging


class MeanColourBackend(Backend):
    type_name = "mean-colour"
    Options = MeanColourOptions
    capabilities = frozenset({Capability.DESCRIBE, Capability.ANSWER, Capability.EMBED_IMAGE})
    description = "describes an image by its mean colour (example plugin)"
    image_dim = 3  # embed_images gives [N, 3]: the L2-normalised mean RGB

    options: MeanColourOptions

    def _load(self) -> None:
        # The expensive part of a real backend (weights, a session, a server check) goes here:
        # it runs once, under the base class's lock, on first use or at `oculi serve` warm-up.
        self._names = list(COLOURS)
        self._table = np.array([COLOURS[n] for n in self._names], dtype=np.float32)  # [C, 3]

    def _unload(self) -> None:
        del self._names, self._table

    @property
    def model_id(self) -> str:
        return f"mean-colour:{self.options.size}"

    def _mean(self, image: Image.Image) -> np.ndarray:
        self.load()
        small = image.convert("RGB")
        small.thumbnail((self.options.size, self.options.size))
        return np.asarray(small, dtype=np.float32).reshape(-1, 3).mean(0)  # [3]

    def _name(self, rgb: np.ndarray) -> str:
        return self._names[int(((self._table - rgb) ** 2).sum(1).argmin())]

    def describe(self, image: Image.Image | None, observation: Observation | None, *, detailed: bool = False) -> str:
        if image is None:
            from oculi.core.errors import InputError

            raise InputError("the mean-colour backend needs the image itself")
        rgb = self._mean(image)
        value = "rgb({}, {}, {})".format(*(int(round(v)) for v in rgb))
        if not self.options.colour_names:
            return f"An image whose mean colour is {value}."
        return f"A mostly {self._name(rgb)} image (mean colour {value})."

    def answer(self, image: Image.Image, observation: Observation | None, question: str) -> Answer:
        rgb = self._mean(image)
        if "colour" not in question.lower() and "color" not in question.lower():
            return Answer(question, "I can only tell the colour of an image.", 0.0, AnswerKind.UNKNOWN, answerable=False)
        name = self._name(rgb)
        return Answer(question, f"{name.capitalize()}.", 0.6, AnswerKind.COLOUR,
                      (Evidence("colour", f"mean colour {name}", 0.6),))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        v = np.stack([self._mean(im) for im in images]).astype(np.float32) + 1.0  # [N, 3]
        return v / np.linalg.norm(v, axis=1, keepdims=True)
