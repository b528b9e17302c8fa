"""The ``trained`` backend type: models ``oculi train`` made, served through the model registry.

Written for the backend seam (``oculi.backends.base.Backend``, ``oculi.toml`` ``[models.NAME]``,
``$OCULI_HOME/models/NAME/model.toml``): a trained classifier head serves ``classify`` over its
own classes, an answer model serves ``answer``; both build on their ``base`` model (default
``builtin``) for image and text vectors through ``use_model``. Not imported until the seam
registers the type (``"trained": "oculi.backends.trained_backend:TrainedBackend"``) and
``TrainedStore.save`` writes the ``model.toml`` (see ``model_table``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from oculi.backends.base import Backend, BackendOptions, Capability  # the seam's base
from oculi.core.types import Answer, ClassScore, Observation
from oculi.store.trained import TrainedKind, TrainedStore


class TrainedOptions(BackendOptions):
    artefact: str | None = None  # the trained model's name (default: this model's name)
    base: str = "builtin"  # the model whose image and text vectors it was trained on


_CAPS = {TrainedKind.CLASSIFIER: frozenset({Capability.CLASSIFY}), TrainedKind.VQA: frozenset({Capability.ANSWER})}


def model_table(kind: str, base: str = "builtin") -> str:
    """The ``model.toml`` a trained model gets beside its versions."""
    return f'backend = "trained"\nbase = "{base}"\n# {kind} trained by `oculi train`; the newest version in this folder is used\n'


class TrainedBackend(Backend):
    type_name = "trained"
    Options = TrainedOptions
    capabilities = frozenset({Capability.CLASSIFY, Capability.ANSWER})
    description = "a model trained by `oculi train` (classifier head: classify; answer model: answer)"

    def __init__(self, name: str, options: TrainedOptions, settings: Any) -> None:
        super().__init__(name, options, settings)
        self.store = TrainedStore.for_home(settings.home)
        self.artefact = options.artefact or name
        kind = self.store.load(self.artefact, verify=False).kind
        self.capabilities = _CAPS.get(kind, frozenset())
        self._impl: Any = None

    def _load(self) -> None:
        t = self.store.load(self.artefact)  # verified: a damaged file is a ModelAssetError naming the fix
        base = self.use_model(self.options.base)
        if t.kind is TrainedKind.CLASSIFIER:
            from oculi.perception.heads import ClassifierHead

            self._impl = ClassifierHead(t)
        else:
            from oculi.backends.trained import TrainedAnswerModel

            self._impl = TrainedAnswerModel(t, _Vectors(base, self.settings))
        self._base = base

    def _unload(self) -> None:
        self._impl = None

    @property
    def model_id(self) -> str:
        return f"trained:{self.artefact}"

    def classify(self, image: Any, labels: Sequence[str]) -> list[ClassScore]:
        self.load()
        feats = np.asarray(self._base.embed_images([image]), dtype=np.float32)[0]
        use = list(labels) if labels and self._impl.covers(labels) else None
        return [ClassScore(c, p) for c, p in self._impl.scores(feats, use)]

    def answer(self, image: Any, observation: Observation | None, question: str) -> Answer:
        self.load()
        return self._impl.answer(image, observation, question)


class _Vectors:
    """What ``TrainedAnswerModel`` needs of an engine, from the base model."""

    def __init__(self, base: Any, settings: Any) -> None:
        self.base, self.settings = base, settings

    def backend(self, task: str) -> Any:
        return self.base

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        return self.base.embed_images(list(images))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.embed_texts(list(texts))

    def load_image(self, path: Any) -> Any:
        from oculi.imageio import load_image

        return load_image(path, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels)
