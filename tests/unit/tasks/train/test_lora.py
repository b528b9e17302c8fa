"""``oculi train lora`` on a tiny random-weight LLaVA built from configs in the test, on the CPU:
the loss goes down, the adapter is saved, loads onto its base, refuses another base, and makes
the model give the training answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.config import Settings
from oculi.core.errors import ConfigError

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("llava") / "model")


def _data(root: Path) -> Path:
    from PIL import Image

    rows = []
    for colour, rgb in (("red", (220, 30, 30)), ("blue", (30, 40, 220)), ("green", (30, 180, 40))):
        Image.new("RGB", (32, 32), rgb).save(root / f"{colour}.png")
        rows.append({"image": f"{colour}.png", "question": "what colour is this ?", "answer": colour})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "train.jsonl"


def test_lora_learns_the_training_answers_and_reloads(tiny_llava: Path, tmp_path: Path) -> None:
    from oculi.tasks.train.loop import FitConfig
    from oculi.tasks.train.lora import generate_answers, load_lora, train_lora
    from oculi.tasks.train.data import read_vqa
    from oculi.imageio import load_image

    settings = Settings(home=tmp_path / "home")
    data = _data(tmp_path)
    rep = train_lora(settings, data, "tiny-colours", base=tiny_llava, rank=8, alpha=16,
                     # lm_head too: the tiny model's end-of-sequence row is zeroed, so only it can learn to stop
                     target_modules=("q_proj", "v_proj", "linear_1", "linear_2", "lm_head"),
                     config=FitConfig(epochs=40, lr=1e-2, batch_size=3), device="cpu")
    assert rep.evaluated_on == "training items" and rep.n_train == 3
    assert rep.losses[-1] < rep.losses[0] / 5, rep.losses
    assert rep.after == 1.0 and rep.before < 1.0, (rep.before, rep.after)
    files = {p.name for p in (Path(rep.path) / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    model, processor = load_lora(settings, "tiny-colours", device="cpu")
    items = read_vqa(data).items
    answers = generate_answers(model, processor, items, "cpu", lambda p: load_image(p).image)
    assert answers == ["red", "blue", "green"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="trained on the model in"):
        load_lora(settings, "tiny-colours", base=other, device="cpu")
