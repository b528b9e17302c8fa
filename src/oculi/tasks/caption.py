"""Caption: one grounded sentence (or a short paragraph) per image."""

from __future__ import annotations

from oculi.backends.base import Describer, Perceiver
from oculi.core.types import Caption
from oculi.imageio import LoadedImage


def caption(loaded: LoadedImage, perceiver: Perceiver, describer: Describer, *, detailed: bool = False) -> Caption:
    """Perceive an image and describe it.

    Example:
        >>> from oculi import Engine  # doctest: +SKIP
        >>> Engine().caption("coffee.png").caption  # doctest: +SKIP
        'A photo of an orange cup (espresso coffee).'
    """
    obs = perceiver.observe(loaded.image, loaded.info)
    return Caption(describer.describe(loaded.image, obs, detailed=detailed), obs)
