"""One ``oculi.toml`` carries both the store (read by ``Settings``) and the models (read by
``read_model_config``): neither reader refuses the other's keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from oculi.config import Settings, read_model_config
from oculi.core.errors import ModelConfigError


def test_store_and_models_in_one_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "oculi.toml").write_text(
        'store = "postgresql://oculi@db/oculi"\n\n'
        '[models.vlm]\nbackend = "openai"\nbase_url = "http://vllm:8001/v1"\nmodel = "m"\n\n'
        '[tasks]\ncaption = "vlm"\n')
    s = Settings(home=home)
    assert s.store == "postgresql://oculi@db/oculi"
    cfg = read_model_config(s)
    assert cfg.models["vlm"]["backend"] == "openai" and cfg.tasks == {"caption": "vlm"}
    (home / "oculi.toml").write_text('store = "/data"\n[server]\nport = 1\n')
    with pytest.raises(ModelConfigError, match="unknown table"):  # other unknown keys are still refused
        read_model_config(Settings(home=home))


def test_engine_and_ray_address_from_the_file_unless_the_environment_says(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    home = tmp_path / "home"
    home.mkdir()
    (home / "oculi.toml").write_text('engine = "ray"\nray_address = "ray://head:10001"\n[tasks]\ncaption = "builtin"\n')
    s = Settings(home=home)
    assert (s.engine, s.ray_address) == ("ray", "ray://head:10001")
    assert read_model_config(s).tasks == {"caption": "builtin"}
    monkeypatch.setenv("OCULI_ENGINE", "local")
    monkeypatch.setenv("OCULI_RAY_ADDRESS", "auto")
    assert (Settings(home=home).engine, Settings(home=home).ray_address) == ("local", "auto")
    monkeypatch.delenv("OCULI_ENGINE")
    (home / "oculi.toml").write_text('engine = "spark"\n')
    with pytest.raises(ValidationError, match="'engine' must be"):
        Settings(home=home)
