"""``oculi train classifier``: a head over visual features from a folder-per-class data set.

The images' visual features (the built-in EfficientNet-Lite0's 1280-d embedding, or the
configured image embedder's) are extracted once and cached; a held-out split (stratified,
every class in both parts) is kept aside; a multinomial logistic regression (or a small MLP
with ``hidden``) is fitted on the rest; accuracy, per-class precision/recall/F1 and the
confusion matrix are measured on the held-out images. The head is saved as a new version of a
trained model (``oculi.store.trained``) and from then on every observation carries its verdict
(``defect type: crack``), so captions, answers, classification and search use it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.store.trained import Trained, TrainedKind, TrainedStore, validate_name
from oculi.tasks.train.data import MIN_PER_CLASS, read_class_folders, stratified_split
from oculi.tasks.train.features import FeatureCache, default_extractors, extract_image_features, image_space
from oculi.tasks.train.loop import FitConfig, clear_checkpoint, fit
from oculi.tasks.train.metrics import classification_report, confusion_png
from oculi.tasks.train.publish import publish
from oculi.tasks.train.progress import ProgressFn, StopFn, TrainProgress

HEAD_WEIGHTS = "weights.safetensors"
CONFUSION = "confusion.png"
DEFAULT_CONFIG = FitConfig(epochs=60, lr=1e-3, batch_size=32, weight_decay=1e-2)


@dataclass
class ClassifierReport:
    """What training a classifier head did and measured (``oculi train classifier --json``)."""

    name: str
    version: int
    path: str
    classes: list[str]
    feature_space: dict[str, Any]
    n_train: int
    n_test: int
    test: dict[str, Any]  # accuracy, macro_f1, per_class, confusion
    train_accuracy: float
    losses: list[float]
    confusion_png: str
    problems: list[str] = field(default_factory=list)
    resumed_from: int | None = None

    @property
    def accuracy(self) -> float:
        return float(self.test["accuracy"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "kind": "classifier", "name": self.name, "version": self.version,
            "path": self.path, "classes": self.classes, "feature_space": self.feature_space,
            "n_train": self.n_train, "n_test": self.n_test, "accuracy": self.accuracy,
            "macro_f1": self.test["macro_f1"], "per_class": self.test["per_class"], "confusion": self.test["confusion"],
            "train_accuracy": self.train_accuracy, "losses": [round(x, 5) for x in self.losses],
            "confusion_png": self.confusion_png, "resumed_from": self.resumed_from, "problems": self.problems,
        }


def train_classifier(
    engine: Any,
    data_dir: str | Path,
    name: str,
    *,
    title: str | None = None,
    hidden: Sequence[int] = (),
    config: FitConfig = DEFAULT_CONFIG,
    test_fraction: float = 0.2,
    resume: bool = False,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> ClassifierReport:
    """Train a classifier head on ``data_dir/<class>/*`` and store it as trained model ``name``.

    Args:
        engine: An ``oculi.Engine`` (its image embedder gives the features; its settings the home).
        data_dir: A folder with one sub-folder of images per class.
        name: The trained model's name (a new version when it exists).
        title: What the head tells, in words ("defect type"); default: ``name`` with spaces.
        hidden: Hidden layer widths (default none: logistic regression).
        config: Epochs, learning rate, batch size, weight decay, seed.
        test_fraction: Share of each class held out for measuring.
        resume: Continue an interrupted run of the same name and data.

    Raises:
        InputError: unusable data (the message says what and why).
        Interrupted: stopped on request; ``resume=True`` goes on.

    Example:
        >>> rep = train_classifier(Engine(), "parts/", "defect-type")  # doctest: +SKIP
        >>> rep.accuracy, rep.classes  # doctest: +SKIP
        (0.95, ['crack', 'ok', 'scratch'])
    """
    name = validate_name(name)
    settings = engine.settings
    store = TrainedStore.for_home(settings.home)
    data = read_class_folders(data_dir)
    feats = extract_image_features(engine, data.paths, default_extractors(engine),
                                   cache=FeatureCache(settings.home / "cache" / "features"),
                                   progress=progress, should_stop=should_stop)
    problems = list(data.problems) + feats.problems
    x_all = feats.arrays["image"]  # [N_ok, D]
    y_all = np.asarray([data.labels[i] for i in feats.ok], dtype=np.int64)
    paths = [data.paths[i] for i in feats.ok]
    x_all, y_all, classes, dropped = _drop_small_classes(x_all, y_all, data.classes)
    problems += dropped
    if len(classes) < 2:
        raise InputError(f"{data_dir}: fewer than two classes have {MIN_PER_CLASS}+ readable images ({'; '.join(problems[-3:])})")
    tr, te = stratified_split(y_all.tolist(), test_fraction, seed=config.seed)
    space = image_space(engine)

    import torch
    from torch import nn

    from oculi.tasks.train.models import MLP, standardisation

    torch.manual_seed(config.seed)
    xt = torch.from_numpy(x_all[tr])
    yt = torch.from_numpy(y_all[tr])
    mean, std = standardisation(x_all[tr])
    model = MLP(mean, std, len(classes), hidden)
    counts = np.bincount(y_all[tr], minlength=len(classes)).astype(np.float32)
    weight = torch.from_numpy(counts.sum() / (len(classes) * np.maximum(counts, 1)))  # balanced classes
    ce = nn.CrossEntropyLoss(weight=weight)
    fingerprint = _fingerprint(paths, y_all, classes, space, config, hidden, test_fraction)
    work = store.work_dir(name)
    res = fit(model, lambda idx: ce(model(xt[idx]), yt[idx]), len(tr), config, work_dir=work,
              fingerprint=fingerprint, resume=resume, progress=progress, should_stop=should_stop, threads=1)
    problems += res.notes
    if progress:
        progress(TrainProgress("evaluating", 0, 1))
    with torch.no_grad():
        pred_all = model(torch.from_numpy(x_all)).argmax(dim=1).numpy()
    test = classification_report(y_all[te].tolist(), pred_all[te].tolist(), classes)
    train_acc = float((pred_all[tr] == y_all[tr]).mean())
    shown_title = title or name.replace("-", " ").replace("_", " ")
    png = confusion_png(np.asarray(test["confusion"]), classes, f"{shown_title}: held-out accuracy {test['accuracy']:.1%}")
    from safetensors.numpy import save as save_tensors

    trained: Trained = store.save(name, TrainedKind.CLASSIFIER, {HEAD_WEIGHTS: save_tensors(model.tensors()), CONFUSION: png}, {
        "title": shown_title, "classes": classes, "feature_space": space,
        "head": {"type": "mlp", "hidden": list(hidden)},
        "data": {"source": str(Path(data_dir).resolve()), "n_images": int(len(y_all)), "counts": {c: int((y_all == i).sum()) for i, c in enumerate(classes)}},
        "training": {"epochs": config.epochs, "lr": config.lr, "batch_size": config.batch_size,
                     "weight_decay": config.weight_decay, "seed": config.seed, "test_fraction": test_fraction},
        "metrics": {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "train_accuracy": round(train_acc, 4),
                    "n_train": len(tr), "n_test": len(te)},
    })
    publish(trained)
    clear_checkpoint(work)
    return ClassifierReport(trained.name, trained.version, str(trained.path), classes, space, len(tr), len(te), test,
                            round(train_acc, 4), res.losses, str(trained.path / CONFUSION), problems, res.resumed_from)


def _drop_small_classes(x: np.ndarray, y: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Leave out classes with fewer than ``MIN_PER_CLASS`` readable images; renumber the rest."""
    counts = np.bincount(y, minlength=len(classes))
    keep = [i for i in range(len(classes)) if counts[i] >= MIN_PER_CLASS]
    dropped = [f"class {classes[i]!r} has {counts[i]} readable image(s); at least {MIN_PER_CLASS} are needed; left out"
               for i in range(len(classes)) if counts[i] < MIN_PER_CLASS]
    remap = {old: new for new, old in enumerate(keep)}
    mask = np.isin(y, keep)
    return x[mask], np.asarray([remap[int(v)] for v in y[mask]], dtype=np.int64), [classes[i] for i in keep], dropped


def _fingerprint(paths: Sequence[str], y: np.ndarray, classes: list[str], space: dict, config: FitConfig,
                 hidden: Sequence[int], test_fraction: float) -> str:
    doc = {"paths": list(paths), "y": y.tolist(), "classes": classes, "space": space, "config": config.__dict__,
           "hidden": list(hidden), "test_fraction": test_fraction}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
