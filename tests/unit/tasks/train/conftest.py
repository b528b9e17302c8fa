"""A real engine over its own empty ``OCULI_HOME`` (the real model assets), for training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from oculi.config import Settings
from oculi.core.errors import ModelAssetError


@pytest.fixture(scope="module")
def train_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-home")


@pytest.fixture(scope="module")
def train_engine(train_home: Path):
    from oculi.engine import Engine

    eng = Engine(Settings(home=train_home, assets_dir=Settings().assets_dir))
    try:
        eng.warmup()
    except ModelAssetError as e:
        pytest.skip(f"model assets missing: {e}")
    return eng


@pytest.fixture()
def train_cli(train_engine, train_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``oculi`` in-process with the training engine and its home."""
    from typer.testing import CliRunner

    import oculi.cli.common as cli_common
    from oculi.cli.main import app

    monkeypatch.setattr(cli_common, "_engine", train_engine)
    monkeypatch.setenv("OCULI_HOME", str(train_home))
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(train_engine.settings.assets_dir))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])
