"""What the collection tasks (index, search, retrieval evaluation) need from the models.

Indexing and search depend on these two small protocols, never on the ``Engine`` that
happens to satisfy them, so the tasks sit below the engine and nothing calls back up. A test,
a footage source or a Ray actor can hand the tasks anything with these methods.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from oculi.core.errors import OculiError
from oculi.core.types import Observation
from oculi.imageio import ImageSource


@runtime_checkable
class Embedder(Protocol):
    """Embeds texts and images into L2-normalised vectors (what search needs)."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``[N, D_text]``."""
        ...

    def embed_images(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """Visual embeddings ``[N, D_image]``."""
        ...


@runtime_checkable
class Vision(Embedder, Protocol):
    """Perceives images and writes about observations (what indexing needs, besides embedding)."""

    def observe_many(
        self, sources: Sequence[ImageSource], *, batch_size: int = 8, ocr: bool = True
    ) -> Iterator[tuple[ImageSource, Observation | OculiError]]:
        """Observe images in batches; a bad image yields its error and the batch goes on."""
        ...

    def describe_observation(self, observation: Observation, *, detailed: bool = False) -> str:
        """A caption written from an observation (by the configured describer).

        An ``Engine`` also takes ``image=`` (the decoded image, which a VLM describer needs) and
        has ``model_id_for(capability)`` (recorded with what it wrote), ``vector_spaces()`` and
        ``observation_embeddings_usable()``; indexing uses them when present
        (``oculi.tasks.index.stages``, ``oculi.tasks.index.spaces``).
        """
        ...
