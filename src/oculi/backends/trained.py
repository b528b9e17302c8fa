"""Trained answer models (``oculi train vqa``) at inference: image + question → an answer.

The inputs are rebuilt exactly as in training (``oculi.tasks.train.vqa.vqa_inputs``): the
image embedder's features, the 64-bin colour histogram and the question's sentence embedding;
the MLP runs in NumPy. The answer carries its probability as confidence and the runner-up
answers as evidence.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from oculi.core.errors import ConfigError, ModelAssetError
from oculi.core.types import Answer, AnswerKind, Evidence, Observation
from oculi.perception.heads import MLP, WEIGHTS, softmax
from oculi.store.trained import Trained, TrainedKind


class TrainedAnswerModel:
    """Answers questions with a trained VQA model.

    Args:
        trained: The verified trained model (kind ``vqa``).
        engine: Gives the image and text embedders (they must be the ones it was trained with).
    """

    def __init__(self, trained: Trained, engine: Any) -> None:
        if trained.kind is not TrainedKind.VQA:
            raise ModelAssetError(f"trained model {trained.name!r} is a {trained.kind} model, not an answer model")
        from oculi.tasks.train.features import image_space, text_space

        self.name = trained.name
        self.version = trained.version
        self.answers: list[str] = list(trained.manifest["answers"])
        self.mlp = MLP.load(trained.file(WEIGHTS))
        self.engine = engine
        want = {p["part"]: p for p in trained.manifest["inputs"]}
        self.image_space = want["image"]["model"]
        have = {"image": image_space(engine), "question": text_space(engine)}
        for part, space in have.items():
            if want[part]["model"] != space["model"]:
                raise ConfigError(f"trained model {self.name!r} takes {part} features of {want[part]['model']}; the configured "
                                  f"embedder gives {space['model']}: configure that one again or retrain")

    def _inputs(self, image_feats: np.ndarray, colour: np.ndarray, questions: Sequence[str]) -> np.ndarray:
        q = np.asarray(self.engine.embed_texts(list(questions)), dtype=np.float32)
        return np.concatenate([image_feats, colour, q], axis=1)

    def predict(self, image_feats: np.ndarray, colour: np.ndarray, questions: Sequence[str]) -> np.ndarray:
        """Answer probabilities ``[N, A]``."""
        return softmax(self.mlp(self._inputs(image_feats, colour, questions)))

    def answer_items(self, items: Sequence[Any]) -> list[str]:
        """Answers for ``VQAItem``\\ s (image paths; features cached as in training)."""
        from oculi.tasks.train.features import FeatureCache, default_extractors, extract_image_features

        paths = sorted({it.image for it in items})
        feats = extract_image_features(self.engine, paths, default_extractors(self.engine, colour=True),
                                       cache=FeatureCache(self.engine.settings.home / "cache" / "features"))
        row = {paths[i]: k for k, i in enumerate(feats.ok)}
        out = [""] * len(items)
        ok = [n for n, it in enumerate(items) if it.image in row]
        if ok:
            r = [row[items[n].image] for n in ok]
            probs = self.predict(feats.arrays["image"][r], feats.arrays["colour"][r], [items[n].question for n in ok])
            for n, p in zip(ok, probs):
                out[n] = self.answers[int(np.argmax(p))]
        return out

    # Answerer
    def answer(self, image: Any, observation: Observation | None, question: str) -> Answer:
        from oculi.perception.heads import embed_spaces_of
        from oculi.tasks.train.features import colour_histogram

        own = observation is not None and observation.embedding is not None and self.image_space in embed_spaces_of([observation])
        feats = observation.embedding[None, :] if own else np.asarray(self.engine.embed_images([image]), np.float32)  # type: ignore[union-attr]
        p = self.predict(feats.astype(np.float32), colour_histogram([image]), [question])[0]
        order = np.argsort(-p)[:3]
        best = self.answers[int(order[0])]
        ev = tuple(Evidence("answer_model", f"trained model {self.name}: {self.answers[int(j)]}", float(p[j])) for j in order)
        return Answer(question, f"{best} — trained model {self.name!r} ({float(p[order[0]]):.0%}).", float(p[order[0]]),
                      AnswerKind.UNKNOWN if best not in ("yes", "no") else AnswerKind.PRESENCE, ev)
