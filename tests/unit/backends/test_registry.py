"""The model registry: oculi.toml files, [tasks] and --model resolution, entry-point discovery,
code registration, and the engine's use of a perceiver that has only ``observe``."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.backends.base import Backend, BackendOptions, Capability
from oculi.backends.registry import (
    ModelRegistry,
    backend_type_status,
    get_backend_type,
    list_backend_types,
    register_backend,
)
from oculi.config import Settings, read_model_config
from oculi.core.errors import ModelConfigError
from oculi.core.types import ImageInfo, Observation
from oculi.engine import Engine
from tests.plugin_dist import EXAMPLE_SRC, write_distribution


class Echo(Backend):
    """A describer that repeats its option: enough to see which model served a call."""

    type_name = "echo"

    class Options(BackendOptions):
        text: str = "echo"
        api_key_env: str | None = None

    capabilities = frozenset({Capability.DESCRIBE})

    def describe(self, image, observation, *, detailed=False):
        return f"{self.options.text} ({self.name})"


register_backend("echo", Echo)


class OnlyObserve:
    """A perceiver with nothing but ``observe`` (the issue's bug: warm-up and indexing needed more)."""

    def __init__(self, settings: Settings) -> None:
        self.seen = 0

    def observe(self, image, info, *, ocr=True):
        self.seen += 1
        return Observation(info, embedding=np.ones(4, np.float32) / 2)


register_backend("only-observe", OnlyObserve)


def _settings(tmp_path: Path, **kw) -> Settings:
    return Settings(home=tmp_path / "home", assets_dir=Settings().assets_dir, **kw)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_files_merge_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(tmp_path)
    _write(s.home / "oculi.toml", '[models.a]\nbackend = "echo"\ntext = "home"\n[models.b]\nbackend = "echo"\n'
                                  '[tasks]\ncaption = "a"\n')
    cwd = tmp_path / "work"
    _write(cwd / "oculi.toml", '[models.a]\nbackend = "echo"\ntext = "cwd"\n')
    extra = _write(tmp_path / "extra.toml", '[tasks]\ncaption = "b"\nask = "b"\n')
    monkeypatch.chdir(cwd)
    cfg = read_model_config(s.model_copy(update={"config_file": extra}))
    assert cfg.files == [s.home / "oculi.toml", cwd / "oculi.toml", extra]
    assert cfg.models["a"]["text"] == "cwd" and "b" in cfg.models  # a later file's table replaces
    assert cfg.tasks == {"caption": "b", "ask": "b"}  # [tasks] merge, the later wins
    reg = ModelRegistry(s.model_copy(update={"config_file": extra}))
    assert reg.names() == ["a", "b", "builtin"] and reg.model_for("describe") == "b"
    # OCULI_CONFIG names the file too
    monkeypatch.setenv("OCULI_CONFIG", str(extra))
    assert Settings(home=s.home).config_file == extra


@pytest.mark.parametrize("text, words", [
    ("[models.a\nbackend=", "not valid TOML"),
    ("[server]\nport = 1\n", "unknown table(s) server"),
    ("[tasks]\ncaption = 3\n", "maps a task to a model name"),
    ("[models]\na = 1\n", "one table per model"),
    ('[models.a]\ntext = "x"\n', 'needs backend = "TYPE"'),
    ('[models.builtin]\nbackend = "echo"\n', "reserved"),
    ('[tasks]\nsummarise = "builtin"\n', "unknown task 'summarise'"),
])
def test_bad_config_is_a_model_config_error_exit_4(tmp_path: Path, text: str, words: str) -> None:
    f = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ModelConfigError) as ei:
        ModelRegistry(_settings(tmp_path, config_file=f))
    assert words in str(ei.value) and ei.value.exit_code == 4
    if "TOML" in words:
        assert str(f) in str(ei.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="no such file"):
        ModelRegistry(_settings(tmp_path, config_file=tmp_path / "nope.toml"))


def test_options_are_validated_by_the_type(tmp_path: Path) -> None:
    reg = ModelRegistry(_settings(tmp_path, models={"e": {"backend": "echo", "txet": "typo"},
                                                     "k": {"backend": "echo", "api_key_env": "MY_KEY"},
                                                     "u": {"backend": "no-such-type"}}))
    with pytest.raises(ModelConfigError, match=r"\[models.e\].*not valid for backend 'echo': txet: Extra inputs"):
        reg.create("e")
    assert reg.create("k").options.api_key_env == "MY_KEY"  # the name of a variable, kept as given
    with pytest.raises(ModelConfigError, match="unknown backend type 'no-such-type'; known types: .*builtin"):
        reg.create("u")


def test_unknown_model_names_the_configured_ones(tmp_path: Path) -> None:
    eng = Engine(_settings(tmp_path, models={"e": {"backend": "echo"}}, model="nope"))
    with pytest.raises(ModelConfigError) as ei:
        eng.caption(Image.new("RGB", (8, 8)))
    msg = str(ei.value)
    assert "no model named 'nope'" in msg and "builtin, e" in msg and "[models.nope]" in msg and ei.value.exit_code == 4


def test_tasks_and_model_override_resolution(tmp_path: Path) -> None:
    s = _settings(tmp_path, models={"e": {"backend": "echo", "text": "configured"}, "f": {"backend": "echo", "text": "flag"}},
                  tasks={"caption": "e"})
    eng = Engine(s)
    assert eng.model_name_for("describe") == "e" and eng.model_name_for("observe") == "builtin"
    assert eng.describe_observation(Observation(ImageInfo(4, 4))) == "configured (e)"
    # --model serves what it can; the rest stays as configured
    eng2 = Engine(s.model_copy(update={"model": "f"}))
    assert eng2.model_name_for("describe") == "f" and eng2.model_name_for("embed_text") == "builtin"
    eng2.require_model("f", "describe")
    with pytest.raises(ModelConfigError, match="model 'f' serves describe; this needs answer"):
        eng2.require_model("f", "answer")
    # a [tasks] entry naming a model that cannot do the task
    eng3 = Engine(_settings(tmp_path, models={"e": {"backend": "echo"}}, tasks={"ask": "e"}))
    with pytest.raises(ModelConfigError, match="model 'e' .* is configured for answer but does not serve it"):
        eng3.backend("answer")
    # [tasks] default: every capability the model serves
    eng4 = Engine(_settings(tmp_path, models={"e": {"backend": "echo"}}, tasks={"default": "e"}))
    assert eng4.model_name_for("describe") == "e"


def test_entry_point_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "mean-colour" not in list_backend_types()
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(write_distribution(tmp_path / "site")))
    importlib.invalidate_caches()
    assert "mean-colour" in list_backend_types()
    cls = get_backend_type("mean-colour")
    assert cls.__name__ == "MeanColourBackend" and cls.type_name == "mean-colour"
    st = backend_type_status("mean-colour")
    assert st["available"] and st["source"] == "plugin" and st["capabilities"] == ["answer", "describe", "embed_image"]
    eng = Engine(_settings(tmp_path, models={"mean": {"backend": "mean-colour"}},
                           tasks={"caption": "mean", "observe": "only-observe"}))
    cap = eng.caption(Image.new("RGB", (32, 32), (210, 30, 30)))
    assert cap.caption == "A mostly red image (mean colour rgb(210, 30, 30))." and cap.model == "mean-colour:64"


def test_a_broken_plugin_makes_only_its_type_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[oculi.backends]\nbroken = no_such_module_xyz:Backend\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert "broken" in list_backend_types() and "builtin" in list_backend_types()
    st = backend_type_status("broken")
    assert not st["available"] and "No module named 'no_such_module_xyz'" in st["detail"]
    with pytest.raises(ModelConfigError, match="backend type 'broken' is unavailable"):
        ModelRegistry(_settings(tmp_path, models={"b": {"backend": "broken"}})).create("b")
    assert get_backend_type("builtin").type_name == "builtin"


def test_trained_models_tables_are_read(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    _write(s.home / "models" / "defects" / "model.toml", 'backend = "trained"\nbase = "builtin"\n')
    _write(s.home / "models" / "garbled" / "model.toml", "backend = ")
    reg = ModelRegistry(s)
    assert "defects" in reg.names() and reg.spec("defects").backend == "trained"
    assert "garbled" not in reg.names()  # a damaged table is skipped with a warning, not fatal




def test_a_perceiver_with_only_observe_works_everywhere(tmp_path: Path) -> None:
    # the older per-capability names (Settings.backend, OCULI_BACKEND) still work
    eng = Engine(_settings(tmp_path, backend={c: "only-observe" for c in ("observe", "describe", "answer", "embed_image",
                                                                          "embed_text")}))
    eng.warmup()
    imgs = [Image.new("RGB", (8, 8)), b"not an image", Image.new("RGB", (9, 9))]
    out = list(eng.observe_many(imgs, batch_size=2))
    assert [type(r).__name__ for _, r in out] == ["Observation", "InputError", "Observation"]
    assert eng.model("only-observe").seen == 2


def test_a_published_trained_model_is_a_configured_model(tmp_path: Path) -> None:
    """`oculi train` publishes model.toml beside a head: it is listed and can be named in [tasks]."""
    from oculi.store.trained import TrainedStore
    from oculi.tasks.train.publish import publish

    s = _settings(tmp_path, read_config_files=True)
    t = TrainedStore.for_home(s.home).save("surface", "classifier", {"weights.safetensors": b"0"},
                                           {"classes": ["crack", "ok"]})
    assert publish(t) == s.home / "models" / "surface" / "model.toml"
    eng = Engine(s.model_copy(update={"tasks": {"classify": "surface"}}))
    by = {m["name"]: m for m in eng.list_models(health=False)["models"]}
    assert by["surface"]["backend"] == "trained" and by["surface"]["capabilities"] == ["classify"]
    assert by["surface"]["model_id"] == "trained:surface" and by["surface"]["serves"] == ["classify"]
    assert eng.model_name_for("classify") == "surface" and eng.model_name_for("answer") == "builtin"
