"""``oculi train lora``: a LoRA adapter for a transformers vision-language model, through peft.

For users with a GPU and a model folder (SmolVLM/Idefics3, LLaVA, Qwen2-VL... anything
``AutoModelForImageTextToText`` and ``AutoProcessor`` load). Each image-question-answer item
becomes the model's chat prompt (its processor's chat template: the image, then the question)
followed by the answer and the end-of-sequence token; the loss is the causal-LM loss on the
answer tokens only (the prompt is masked with -100). Only the LoRA matrices train (peft
``LoraConfig`` on the attention projections by default); checkpoints hold only them, so
``--resume`` is cheap even for a large model.

After training, the answers of the model with and without the adapter are compared with the
reference answers (exact match after VQA normalisation) on the held-out items, or on the
training items when there are too few to hold some out. The adapter is stored as a trained
model (``adapter_config.json`` + ``adapter_model.safetensors``, checksummed) that names its
base model folder and the SHA-256 of its ``config.json``; ``load_lora`` refuses another base.

peft and transformers versions matter (peft 0.21 for transformers 5): both are recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from oculi.core.errors import ConfigError, InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.store.trained import TrainedKind, TrainedStore, validate_name
from oculi.tasks.evaluate_vqa import normalise_answer
from oculi.tasks.train.data import VQAItem, read_vqa
from oculi.tasks.train.loop import FitConfig, clear_checkpoint, fit
from oculi.tasks.train.progress import ProgressFn, StopFn, TrainProgress

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
DEFAULT_CONFIG = FitConfig(epochs=3, lr=2e-4, batch_size=4, weight_decay=0.0)
MAX_NEW_TOKENS = 16


@dataclass
class LoraReport:
    name: str
    version: int
    path: str
    base: str
    device: str
    n_train: int
    n_eval: int
    evaluated_on: str  # "held-out" | "training items"
    before: float  # exact-match accuracy without the adapter
    after: float  # ... with it
    losses: list[float]
    problems: list[str] = field(default_factory=list)
    resumed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": "lora", "name": self.name, "version": self.version, "path": self.path,
                "base": self.base, "device": self.device, "n_train": self.n_train, "n_eval": self.n_eval,
                "evaluated_on": self.evaluated_on, "accuracy_before": round(self.before, 4), "accuracy": round(self.after, 4),
                "losses": [round(x, 5) for x in self.losses], "resumed_from": self.resumed_from, "problems": self.problems}


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise ConfigError("LoRA training needs peft: pip install 'oculi[lora]' (peft>=0.21,<0.22)") from None
    return peft


def choose_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but torch sees no CUDA GPU")
    return device


def load_base(base: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """The base model and processor from a local folder (``ConfigError`` when they cannot load)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    p = Path(base)
    if not (p / "config.json").is_file():
        raise InputError(f"{base}: not a transformers model folder (no config.json)")
    try:
        processor = AutoProcessor.from_pretrained(p)
        model = AutoModelForImageTextToText.from_pretrained(p).to(device)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{base}: the model or its processor does not load as an image-text-to-text model ({e})") from None
    return model, processor


def _prompt(processor: Any, question: str) -> str:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if getattr(processor, "chat_template", None):
        return processor.apply_chat_template(msgs, add_generation_prompt=True)
    return f"<image> {question}"


def _example(processor: Any, image: Any, question: str, answer: str) -> dict[str, Any]:
    """Model inputs with ``labels`` masking everything but the answer and the end token."""
    prompt = _prompt(processor, question)
    eos = processor.tokenizer.eos_token or ""
    full = processor(images=image, text=f"{prompt} {answer} {eos}".rstrip(), return_tensors="pt")
    n_prompt = processor(images=image, text=prompt, return_tensors="pt")["input_ids"].shape[1]
    labels = full["input_ids"].clone()
    labels[:, :n_prompt] = -100
    return {**full, "labels": labels}


def generate_answers(model: Any, processor: Any, items: Sequence[VQAItem], device: str, loader: Any) -> list[str]:
    """Greedy answers (the generated text after the prompt)."""
    import torch

    out = []
    model.eval()
    for it in items:
        enc = processor(images=loader(it.image), text=_prompt(processor, it.question), return_tensors="pt").to(device)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        out.append(processor.tokenizer.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return out


def _exact(preds: Sequence[str], items: Sequence[VQAItem]) -> float:
    return sum(normalise_answer(p) == normalise_answer(it.answer) for p, it in zip(preds, items)) / max(1, len(items))


def train_lora(
    settings: Any,
    data_path: str | Path,
    name: str,
    *,
    base: str | Path,
    split: str | None = None,
    annotations: str | Path | None = None,
    images_dir: str | Path | None = None,
    rank: int = 8,
    alpha: int = 16,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    config: FitConfig = DEFAULT_CONFIG,
    test_fraction: float = 0.1,
    device: str = "auto",
    resume: bool = False,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> LoraReport:
    """Fine-tune a LoRA adapter for the model in ``base`` on image-question-answer data.

    Args:
        settings: oculi ``Settings`` (home: where the adapter is stored; image limits).
        data_path, split, annotations, images_dir: The data (``oculi.tasks.train.data.read_vqa``).
        base: The base model's folder.
        rank, alpha, target_modules: The LoRA configuration.
        config: Epochs, learning rate, batch size (examples per optimiser step), seed.
        test_fraction: Share of the images held out (none when fewer than 10 items).
        device: ``auto`` (CUDA when torch sees a GPU), ``cpu``, ``cuda``, ``cuda:1``...

    Raises:
        ConfigError: peft missing, the base does not load, no GPU where one was asked for.
        InputError: unusable data; Interrupted: stopped (``resume=True`` goes on).
    """
    peft = _peft()
    import torch
    import transformers

    from oculi.imageio import load_image
    from oculi.tasks.train.data import split_by_image

    name = validate_name(name)
    dev = choose_device(device)
    data = read_vqa(data_path, split=split, annotations=annotations, images_dir=images_dir)
    problems = list(data.problems)
    cache: dict[str, Any] = {}

    def loader(path: str) -> Any:
        if path not in cache:
            cache[path] = load_image(path, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels).image
        return cache[path]

    items = data.items
    if len(items) >= 10 and len({it.image for it in items}) >= 4:
        tr, te = split_by_image([it.image for it in items], test_fraction, seed=config.seed)
        train_items, eval_items, evaluated_on = [items[i] for i in tr], [items[i] for i in te], "held-out"
    else:
        train_items, eval_items, evaluated_on = items, items, "training items"
        problems.append(f"{len(items)} items are too few to hold some out: the accuracy is measured on the training items")
    model, processor = load_base(base, dev)
    before = _exact(generate_answers(model, processor, eval_items, dev, loader), eval_items)
    lcfg = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=0.0, bias="none")
    try:
        pmodel = peft.get_peft_model(model, lcfg)
    except ValueError as e:
        raise ConfigError(f"LoRA cannot attach to {base}: {e} (choose --target modules the model has)") from None
    examples = [_example(processor, loader(it.image), it.question, it.answer) for it in train_items]
    trainable = {n: p for n, p in pmodel.named_parameters() if p.requires_grad}
    state = _LoraState(trainable)

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        pmodel.train()
        losses = [pmodel(**{k: v.to(dev) for k, v in examples[int(i)].items()}).loss for i in idx]
        return torch.stack(losses).mean()

    base_cfg = Path(base) / "config.json"
    base_sha = hashlib.sha256(base_cfg.read_bytes()).hexdigest()
    fingerprint = hashlib.sha256(json.dumps({"items": [(it.image, it.question, it.answer) for it in train_items], "base": base_sha,
                                             "lora": [rank, alpha, list(target_modules)], "cfg": config.__dict__}).encode()).hexdigest()
    store = TrainedStore.for_home(settings.home)
    work = store.work_dir(name)
    res = fit(state, loss_fn, len(examples), config, work_dir=work, fingerprint=fingerprint, resume=resume,
              progress=progress, should_stop=should_stop, params=list(trainable.values()))
    problems += res.notes
    if progress:
        progress(TrainProgress("evaluating", 0, len(eval_items)))
    after = _exact(generate_answers(pmodel, processor, eval_items, dev, loader), eval_items)
    with tempfile.TemporaryDirectory() as tmp:
        pmodel.save_pretrained(tmp)
        t = store.save(name, TrainedKind.LORA, {ADAPTER_DIR: Path(tmp)}, {
            "base": str(Path(base).resolve()), "base_config_sha256": base_sha,
            "lora": {"r": rank, "alpha": alpha, "target_modules": list(target_modules)},
            "versions": {"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
            "data": {"source": str(Path(data_path).resolve()), "n_train": len(train_items), "n_eval": len(eval_items)},
            "training": {**config.__dict__, "device": dev},
            "metrics": {"accuracy": round(after, 4), "accuracy_before": round(before, 4), "evaluated_on": evaluated_on,
                        "final_loss": round(res.losses[-1], 5) if res.losses else None},
        })
    clear_checkpoint(work)
    return LoraReport(t.name, t.version, str(t.path), str(base), dev, len(train_items), len(eval_items), evaluated_on,
                      before, after, res.losses, problems, res.resumed_from)


def load_lora(settings: Any, name: str, *, base: str | Path | None = None, device: str = "auto") -> tuple[Any, Any]:
    """The base model with a trained LoRA adapter applied, and its processor.

    Raises:
        ConfigError: the base model folder is not the one the adapter was trained on.
    """
    peft = _peft()
    t = TrainedStore.for_home(settings.home).load(name)
    if t.kind is not TrainedKind.LORA:
        raise InputError(f"trained model {name!r} is a {t.kind} model, not a LoRA adapter")
    b = Path(base or t.manifest["base"])
    sha = hashlib.sha256((b / "config.json").read_bytes()).hexdigest() if (b / "config.json").is_file() else None
    if sha != t.manifest["base_config_sha256"]:
        raise ConfigError(f"LoRA adapter {name!r} was trained on the model in {t.manifest['base']}; {b} is another model "
                          "(its config.json differs)")
    dev = choose_device(device)
    model, processor = load_base(b, dev)
    return peft.PeftModel.from_pretrained(model, str(t.path / ADAPTER_DIR)).to(dev).eval(), processor


class _LoraState:
    """Only the trainable (LoRA) parameters as a module-like state for the checkpoints."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for k, v in state.items():
                self.params[k].copy_(v)

    def train(self) -> None:
        pass

    def eval(self) -> None:
        pass

    def parameters(self) -> list[Any]:
        return list(self.params.values())
