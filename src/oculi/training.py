"""The Python API of ``oculi train`` and ``oculi eval vqa|captions``: the functions the CLI calls.

Example:
    >>> import oculi.training as tr
    >>> rep = tr.train_classifier("parts/", "defect-type")  # doctest: +SKIP
    >>> rep.accuracy, rep.test["per_class"]["crack"]["f1"]  # doctest: +SKIP
    (0.95, 0.93)
    >>> tr.evaluate_vqa("easy_vqa/data", split="test", model="easy-vqa").accuracy  # doctest: +SKIP
    0.98
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oculi.engine import Engine, default_engine
from oculi.store.trained import TrainedKind, TrainedStore
from oculi.tasks.evaluate_captions import CaptionEvaluation
from oculi.tasks.evaluate_captions import evaluate_captions as _evaluate_captions
from oculi.tasks.evaluate_vqa import VQAEvaluation
from oculi.tasks.evaluate_vqa import evaluate_vqa as _evaluate_vqa
from oculi.tasks.train.adapter import AdapterReport
from oculi.tasks.train.classifier import ClassifierReport
from oculi.tasks.train.data import read_pairs, read_vqa
from oculi.tasks.train.vqa import VQAReport

__all__ = ["evaluate_captions", "evaluate_vqa", "train_adapter", "train_classifier", "train_lora", "train_vqa", "trained_models"]


def _engine(engine: Engine | None) -> Engine:
    return engine or default_engine()


def train_classifier(data: str | Path, name: str, *, engine: Engine | None = None, **kw: Any) -> ClassifierReport:
    """``oculi train classifier``: see ``oculi.tasks.train.classifier.train_classifier``."""
    from oculi.tasks.train.classifier import train_classifier as run

    return run(_engine(engine), data, name, **kw)


def train_adapter(pairs: str | Path, name: str, *, engine: Engine | None = None, **kw: Any) -> AdapterReport:
    """``oculi train adapter``: see ``oculi.tasks.train.adapter.train_adapter``."""
    from oculi.tasks.train.adapter import train_adapter as run

    return run(_engine(engine), pairs, name, **kw)


def train_vqa(data: str | Path, name: str, *, engine: Engine | None = None, **kw: Any) -> VQAReport:
    """``oculi train vqa``: see ``oculi.tasks.train.vqa.train_vqa``."""
    from oculi.tasks.train.vqa import train_vqa as run

    return run(_engine(engine), data, name, **kw)


def train_lora(data: str | Path, name: str, *, base: str | Path, engine: Engine | None = None, **kw: Any) -> Any:
    """``oculi train lora``: see ``oculi.tasks.train.lora.train_lora``."""
    from oculi.tasks.train.lora import train_lora as run

    return run(_engine(engine).settings, data, name, base=base, **kw)


def trained_models(engine: Engine | None = None) -> list[dict[str, Any]]:
    """The trained models of the engine's home (newest version each)."""
    return [t.to_dict() for t in TrainedStore.for_home(_engine(engine).settings.home).list()]


def _trained(engine: Engine, model: str | None, kind: TrainedKind) -> Any:
    """The trained model named ``model`` when it is of ``kind``, else None."""
    if model is None:
        return None
    store = TrainedStore.for_home(engine.settings.home)
    if model not in store.names():
        return None
    t = store.load(model)
    return t if t.kind is kind else None


def evaluate_vqa(data: str | Path, *, model: str | None = None, engine: Engine | None = None, split: str | None = None,
                 annotations: str | Path | None = None, images_dir: str | Path | None = None, limit: int | None = None,
                 **kw: Any) -> VQAEvaluation:
    """VQA accuracy of a model on VQAv2 / easy-VQA / JSON Lines data (``oculi eval vqa``).

    ``model`` is a trained answer model (``oculi train vqa``), a configured model name, or
    ``None`` for whatever serves ``ask``.
    """
    eng = _engine(engine)
    d = read_vqa(data, split=split, annotations=annotations, images_dir=images_dir)
    items = d.items[:limit] if limit else d.items
    trained = _trained(eng, model, TrainedKind.VQA)
    if trained is not None:
        from oculi.backends.trained import TrainedAnswerModel

        m = TrainedAnswerModel(trained, eng)
        return _evaluate_vqa(items, ask_many=m.answer_items, model=f"{trained.name} v{trained.version}", problems=d.problems, **kw)
    asker = _with_model(eng, model)
    return _evaluate_vqa(items, ask=lambda img, q: asker.ask(img, q).answer, model=model or "default", problems=d.problems, **kw)


def evaluate_captions(pairs: str | Path, *, model: str | None = None, engine: Engine | None = None,
                      images_dir: str | Path | None = None, limit: int | None = None, **kw: Any) -> CaptionEvaluation:
    """BLEU-1..4 and CIDEr of a model's captions against reference captions (``oculi eval captions``)."""
    eng = _engine(engine)
    d = read_pairs(pairs, images_dir=images_dir)
    images, caps = d.images, d.captions
    if limit:
        keep = set(list(dict.fromkeys(images))[:limit])
        images, caps = zip(*[(i, c) for i, c in zip(images, caps) if i in keep]) if keep else ((), ())  # type: ignore[assignment]
    cap = _with_model(eng, model)
    return _evaluate_captions(list(images), list(caps), lambda p: cap.caption(p).caption, model=model or "default",
                              problems=d.problems, **kw)


def _with_model(engine: Engine, model: str | None) -> Any:
    """The engine, or one that prefers ``model`` (a configured model) for every task."""
    if model is None:
        return engine
    with_model = getattr(engine, "with_model", None)
    if with_model is not None:
        return with_model(model)
    TrainedStore.for_home(engine.settings.home).load(model)  # unknown → NotFoundError listing the trained models
    from oculi.core.errors import InputError

    raise InputError(f"trained model {model!r} cannot answer or caption; evaluate answer models (oculi train vqa) with eval vqa")
