"""Trained heads at inference: small MLPs over features, run in NumPy (no torch at run time).

``oculi train`` writes a head's weights as safetensors with these names: ``mean`` and ``std``
(``[D]``, the standardisation of the input features) and ``layers.{i}.weight`` (``[out, in]``)
/ ``layers.{i}.bias`` (``[out]``), with ReLU between layers — the state dict of
``oculi.tasks.train.models.MLP``. ``ClassifierHead`` turns visual features into one of the
user's classes; ``HeadSet`` holds every trained classifier head of an ``OCULI_HOME`` and adds
their verdicts to observations as ``Attribute``\\ s (``defect type: crack``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from oculi.core.errors import ModelAssetError
from oculi.core.types import Attribute, Observation
from oculi.store.trained import Trained, TrainedKind, TrainedStore

log = logging.getLogger(__name__)

WEIGHTS = "weights.safetensors"


class MLP:
    """A standardise → (Linear → ReLU)* → Linear network from a tensor dict.

    Example:
        >>> m = MLP({"mean": np.zeros(2), "std": np.ones(2), "layers.0.weight": np.eye(2), "layers.0.bias": np.zeros(2)})
        >>> m(np.array([[1.0, -1.0]])).tolist()
        [[1.0, -1.0]]
    """

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.mean = np.asarray(tensors["mean"], dtype=np.float32)
        self.std = np.asarray(tensors["std"], dtype=np.float32)
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        i = 0
        while f"layers.{i}.weight" in tensors:
            self.layers.append((np.asarray(tensors[f"layers.{i}.weight"], dtype=np.float32),
                                np.asarray(tensors[f"layers.{i}.bias"], dtype=np.float32)))
            i += 1
        if not self.layers:
            raise ValueError("a head needs at least one layer")

    @classmethod
    def load(cls, path: Path) -> "MLP":
        from safetensors.numpy import load_file

        try:
            return cls(load_file(str(path)))
        except Exception as e:  # noqa: BLE001 - any unreadable weights file is a damaged model
            raise ModelAssetError(f"{path}: the head's weights cannot be read ({e})") from None

    @property
    def dim_in(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def dim_out(self) -> int:
        return int(self.layers[-1][0].shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits ``[N, out]`` for features ``[N, in]``."""
        h = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class ClassifierHead:
    """A trained classifier over visual features (``oculi train classifier``).

    Attributes:
        name: The trained model's name; ``title``: what it tells ("defect type");
        classes: Its classes in output order; ``feature_space``: ``{"model", "dim"}`` of the
        features it takes; ``version``: which version of the model this is.
    """

    def __init__(self, trained: Trained) -> None:
        if trained.kind is not TrainedKind.CLASSIFIER:
            raise ModelAssetError(f"trained model {trained.name!r} is a {trained.kind} model, not a classifier head")
        m = trained.manifest
        self.name = trained.name
        self.version = trained.version
        self.title: str = m.get("title") or trained.name.replace("-", " ").replace("_", " ")
        self.classes: list[str] = list(m["classes"])
        self.feature_space: dict = dict(m["feature_space"])
        self.mlp = MLP.load(trained.file(WEIGHTS))
        if self.mlp.dim_out != len(self.classes) or self.mlp.dim_in != int(self.feature_space["dim"]):
            raise ModelAssetError(f"trained model {self.name!r}: its weights do not match its manifest "
                                  f"({self.mlp.dim_in}→{self.mlp.dim_out}, manifest {self.feature_space['dim']}→{len(self.classes)})")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, C]`` for features ``[N, D]``."""
        return softmax(self.mlp(features))

    def scores(self, features: np.ndarray, labels: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """``(class, probability)`` for one image's features ``[D]``, best first; with ``labels``
        (a subset of the classes, any case) only those, renormalised to sum to 1."""
        probs = self.predict(np.asarray(features, dtype=np.float32)[None, :])[0]
        pairs = list(zip(self.classes, probs.tolist()))
        if labels is not None:
            want = {lab.strip().lower(): lab for lab in labels}
            pairs = [(want[c.lower()], p) for c, p in pairs if c.lower() in want]
            total = sum(p for _, p in pairs) or 1.0
            pairs = [(c, p / total) for c, p in pairs]
        return sorted(pairs, key=lambda cp: -cp[1])

    def covers(self, labels: Sequence[str]) -> bool:
        """Whether every label is one of this head's classes (any case)."""
        have = {c.lower() for c in self.classes}
        return all(lab.strip().lower() in have for lab in labels)

    def attribute(self, probs: np.ndarray) -> Attribute:
        j = int(np.argmax(probs))
        return Attribute(self.name, self.title, self.classes[j], float(min(1.0, max(0.0, probs[j]))))


EmbedFn = Callable[[Sequence[object]], np.ndarray]


class HeadSet:
    """Every trained classifier head of one ``OCULI_HOME``, applied to observations.

    New or retrained heads are picked up on the next call (the folder listing is cheap); a
    head is loaded and verified once per version. A damaged head raises ``ModelAssetError``
    naming the fix rather than being silently left out.

    Args:
        store: Where the trained models are.
        only: Apply only these heads (``None``: all).
    """

    def __init__(self, store: TrainedStore, only: Sequence[str] | None = None) -> None:
        self.store = store
        self.only = set(only) if only is not None else None
        self._heads: dict[tuple[str, int], ClassifierHead | None] = {}  # None: not a classifier head
        self._lock = threading.Lock()

    def heads(self) -> list[ClassifierHead]:
        """The newest version of each classifier head, loaded and verified."""
        out = []
        for name in self.store.names():
            if self.only is not None and name not in self.only:
                continue
            v = self.store.versions(name)[-1]
            with self._lock:
                if (name, v) not in self._heads:
                    kind = self.store.load(name, v, verify=False).kind
                    self._heads[(name, v)] = ClassifierHead(self.store.load(name, v)) if kind is TrainedKind.CLASSIFIER else None
                head = self._heads[(name, v)]
            if head is None:
                continue
            out.append(head)
        return out

    def get(self, name: str) -> ClassifierHead:
        """One head by name (``NotFoundError`` / ``ModelAssetError`` as ``TrainedStore.load``)."""
        t = self.store.load(name)
        with self._lock:
            head = self._heads.get((t.name, t.version))
            if head is None:
                head = self._heads[(t.name, t.version)] = ClassifierHead(t)  # not a classifier: ModelAssetError
        return head

    def covering(self, labels: Sequence[str]) -> ClassifierHead | None:
        """The head whose classes include all of ``labels`` (the newest-named first), if any."""
        return next((h for h in self.heads() if h.covers(labels)), None)

    def __bool__(self) -> bool:
        return bool(self.store.names())

    def apply(self, observations: Sequence[Observation], images: Sequence[object] | None = None, *,
              embed: dict[str, EmbedFn] | None = None) -> list[Observation]:
        """The observations with an ``Attribute`` from each head added.

        Args:
            observations: What perception saw.
            images: The images (only needed for a head over another model's features).
            embed: Feature-space model id → a function embedding ``images`` into that space,
                for heads not trained on the observation's own embedding.
        """
        heads = self.heads()
        if not heads or not observations:
            return list(observations)
        extra: list[list[Attribute]] = [[] for _ in observations]
        for head in heads:
            feats = self._features(head, observations, images, embed or {})
            if feats is None:
                continue
            probs = head.predict(feats)  # [N, C]
            for i in range(len(observations)):
                extra[i].append(head.attribute(probs[i]))
        return [replace(o, attributes=tuple(a for a in o.attributes if a.head not in {x.head for x in ex}) + tuple(ex),
                        models={**o.models, **{f"head:{h.name}": f"v{h.version}" for h in heads}}) if ex else o
                for o, ex in zip(observations, extra)]

    @staticmethod
    def _features(head: ClassifierHead, observations: Sequence[Observation], images: Sequence[object] | None,
                  embed: dict[str, EmbedFn]) -> np.ndarray | None:
        space = head.feature_space["model"]
        own = [o.embedding for o in observations]
        if all(e is not None and e.shape[0] == head.mlp.dim_in for e in own) and space in embed_spaces_of(observations):
            return np.stack(own)  # [N, D]
        fn = embed.get(space)
        if fn is None or images is None:
            log.debug("head %s needs %s features, which are not at hand; left out", head.name, space)
            return None
        return np.asarray(fn(images), dtype=np.float32)


def embed_spaces_of(observations: Sequence[Observation]) -> set[str]:
    """The feature spaces the observations' own embeddings are in (the built-in classifier's)."""
    return {f"builtin/{o.models['classifier']}" for o in observations if "classifier" in o.models}


class HeadedPerceiver:
    """A perceiver whose observations carry the trained heads' ``Attribute``\\ s.

    Wraps any perceiver (``observe``/``observe_batch``); everything else is passed through.

    Args:
        inner: The perceiver.
        heads: The trained heads to apply.
        embed: Feature-space model id → embedding function (for heads over another model's features).
    """

    def __init__(self, inner: object, heads: HeadSet, embed: dict[str, EmbedFn] | None = None) -> None:
        self.inner = inner
        self.heads = heads
        self.embed = embed or {}
        if hasattr(inner, "observe_stream"):  # only where the inner perceiver streams (callers test for it)
            self.observe_stream = self._observe_stream

    def observe(self, image: object, info: object, *, ocr: bool = True) -> Observation:
        obs = self.inner.observe(image, info, ocr=ocr)  # type: ignore[attr-defined]
        return self.heads.apply([obs], [image], embed=self.embed)[0]

    def observe_batch(self, images: Sequence[object], infos: Sequence[object], *, ocr: bool = True) -> list[Observation]:
        obs = self.inner.observe_batch(images, infos, ocr=ocr)  # type: ignore[attr-defined]
        return self.heads.apply(obs, images, embed=self.embed)

    def _observe_stream(self, images: object, *, ocr: bool = True) -> object:
        """The inner perceiver's stream (a worker pool), each observation with the heads' verdicts."""
        for obs in self.inner.observe_stream(images, ocr=ocr):  # type: ignore[attr-defined]
            yield self.heads.apply([obs], embed=self.embed)[0]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)
