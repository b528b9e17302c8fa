"""``oculi train vqa``: an answer model from image-question-answer data.

Answering is classification over the answers seen in training (the usual VQA baseline, and
exactly right for data sets with a closed answer set such as easy-VQA's 13). The input of the
classifier is the image's visual features (the built-in EfficientNet-Lite0 embedding, 1280-d),
a 64-bin RGB colour histogram (pooled CNN features blur what colour a thing is), and the
question's sentence embedding (MiniLM, 384-d); the model is an MLP with two hidden layers.
Images are cached as for the classifier head; each distinct question is embedded once.

A held-out share of the *images* (not questions: the same image never sits on both sides) is
measured after training; a separate test split is measured with ``oculi eval vqa --model NAME``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.store.trained import TrainedKind, TrainedStore, validate_name
from oculi.tasks.train.data import VQAData, read_vqa, split_by_image
from oculi.tasks.train.features import (
    COLOUR_SPACE,
    FeatureCache,
    default_extractors,
    embed_texts_unique,
    extract_image_features,
    image_space,
    text_space,
)
from oculi.tasks.train.loop import FitConfig, clear_checkpoint, fit
from oculi.tasks.train.publish import publish
from oculi.tasks.train.progress import ProgressFn, StopFn

WEIGHTS = "weights.safetensors"
MAX_ANSWERS = 1000
DEFAULT_HIDDEN = (512, 256)
DEFAULT_CONFIG = FitConfig(epochs=8, lr=1e-3, batch_size=128, weight_decay=1e-4)


@dataclass
class VQAReport:
    name: str
    version: int
    path: str
    answers: list[str]
    n_train: int
    n_test: int
    accuracy: float  # on the held-out images' questions
    train_accuracy: float
    losses: list[float]
    problems: list[str] = field(default_factory=list)
    resumed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": "vqa", "name": self.name, "version": self.version, "path": self.path,
                "answers": self.answers, "n_train": self.n_train, "n_test": self.n_test, "accuracy": round(self.accuracy, 4),
                "train_accuracy": round(self.train_accuracy, 4), "losses": [round(x, 5) for x in self.losses],
                "resumed_from": self.resumed_from, "problems": self.problems}


def vqa_inputs(engine: Any, data: VQAData, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None,
               ) -> tuple[np.ndarray, list[int], list[str]]:
    """The model's input ``[N_ok, D_img + 64 + D_text]`` for each usable item, their indices, problems."""
    images = sorted({it.image for it in data.items})
    feats = extract_image_features(engine, images, default_extractors(engine, colour=True),
                                   cache=FeatureCache(engine.settings.home / "cache" / "features"),
                                   progress=progress, should_stop=should_stop)
    row = {images[i]: k for k, i in enumerate(feats.ok)}
    ok = [n for n, it in enumerate(data.items) if it.image in row]
    q = embed_texts_unique(engine, [data.items[n].question for n in ok], progress=progress, should_stop=should_stop)
    r = [row[data.items[n].image] for n in ok]
    x = np.concatenate([feats.arrays["image"][r], feats.arrays["colour"][r], q], axis=1).astype(np.float32)
    return x, ok, feats.problems


def train_vqa(
    engine: Any,
    data_path: str | Path,
    name: str,
    *,
    split: str | None = None,
    annotations: str | Path | None = None,
    images_dir: str | Path | None = None,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    config: FitConfig = DEFAULT_CONFIG,
    test_fraction: float = 0.1,
    resume: bool = False,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> VQAReport:
    """Train an answer model on image-question-answer data and store it as trained model ``name``.

    Args:
        engine: An ``oculi.Engine`` (image and text embedders; its home).
        data_path, split, annotations, images_dir: The data (see ``oculi.tasks.train.data.read_vqa``).
        hidden: Hidden layer widths.
        config: Epochs, learning rate, batch size, weight decay, seed.
        test_fraction: Share of the images held out for measuring.
        resume: Continue an interrupted run.

    Example:
        >>> rep = train_vqa(Engine(), "easy_vqa/data", "shapes", split="train")  # doctest: +SKIP
        >>> rep.accuracy  # doctest: +SKIP
        0.97
    """
    name = validate_name(name)
    data = read_vqa(data_path, split=split, annotations=annotations, images_dir=images_dir)
    x, ok, problems = vqa_inputs(engine, data, progress=progress, should_stop=should_stop)
    problems = data.problems + problems
    counts = Counter(data.items[n].answer for n in ok)
    answers = [a for a in (data.answer_list or []) if a in counts] or [a for a, _ in counts.most_common(MAX_ANSWERS)]
    index = {a: i for i, a in enumerate(answers)}
    keep = [k for k, n in enumerate(ok) if data.items[n].answer in index]
    if len(keep) < len(ok):
        problems.append(f"{len(ok) - len(keep)} question(s) whose answer is not among the {len(answers)} kept answers left out")
    if len(answers) < 2:
        raise InputError(f"{data_path}: the data has {len(answers)} distinct answer(s); an answer model needs at least two")
    x = x[keep]
    y = np.asarray([index[data.items[ok[k]].answer] for k in keep], dtype=np.int64)
    imgs = [data.items[ok[k]].image for k in keep]
    tr, te = split_by_image(imgs, test_fraction, seed=config.seed)

    import torch
    from torch import nn

    from oculi.tasks.train.models import MLP, standardisation

    torch.manual_seed(config.seed)
    mean, std = standardisation(x[tr])
    model = MLP(mean, std, len(answers), hidden, dropout=0.2)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
    ce = nn.CrossEntropyLoss()
    store = TrainedStore.for_home(engine.settings.home)
    ispace, tspace = image_space(engine), text_space(engine)
    fingerprint = hashlib.sha256(json.dumps({"imgs": imgs, "y": y.tolist(), "q": [data.items[ok[k]].question for k in keep],
                                             "spaces": [ispace, tspace], "cfg": config.__dict__, "hidden": list(hidden),
                                             "tf": test_fraction}).encode()).hexdigest()
    work = store.work_dir(name)
    res = fit(model, lambda idx: ce(model(xt[idx]), yt[idx]), len(tr), config, work_dir=work, fingerprint=fingerprint,
              resume=resume, progress=progress, should_stop=should_stop, threads=1)
    problems += res.notes
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    acc = float((pred[te] == y[te]).mean())
    train_acc = float((pred[tr] == y[tr]).mean())
    from safetensors.numpy import save as save_tensors

    t = store.save(name, TrainedKind.VQA, {WEIGHTS: save_tensors(model.tensors())}, {
        "answers": answers, "classes": answers,
        "inputs": [{"part": "image", **ispace}, {"part": "colour", **COLOUR_SPACE}, {"part": "question", **tspace}],
        "feature_space": ispace, "head": {"type": "mlp", "hidden": list(hidden)},
        "data": {"source": str(Path(data_path).resolve()), "split": split, "n_questions": len(keep), "n_images": len(set(imgs))},
        "training": {**config.__dict__, "test_fraction": test_fraction},
        "metrics": {"accuracy": round(acc, 4), "train_accuracy": round(train_acc, 4), "n_train": len(tr), "n_test": len(te)},
    })
    publish(t)
    clear_checkpoint(work)
    return VQAReport(t.name, t.version, str(t.path), answers, len(tr), len(te), acc, train_acc, res.losses, problems, res.resumed_from)
