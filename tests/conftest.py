"""Shared fixtures: scikit-image sample photos on disk and one real engine per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from oculi.config import Settings
from oculi.core.errors import ModelAssetError


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's scikit-image samples written as PNG files (astronaut.png, coffee.png, ...)."""
    from oculi.demo import sample_images

    d = tmp_path_factory.mktemp("samples")
    sample_images(d)
    return d


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings using the real asset store (assets are installed by `make setup`)."""
    return Settings()


@pytest.fixture(scope="session")
def engine(settings: Settings):
    """One real engine shared by the whole session; skips when model assets are missing."""
    from oculi.engine import Engine

    eng = Engine(settings)
    try:
        eng.warmup()
    except ModelAssetError as e:
        pytest.skip(f"model assets missing: {e}")
    return eng


@pytest.fixture()
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty OCULI_HOME for tests that write state; the real assets stay where they are."""
    home = tmp_path / "home"
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(Settings().assets_dir))
    monkeypatch.setenv("OCULI_HOME", str(home))
    return home


def _pg_folder() -> Path:
    # not under pytest's basetemp: that is 0700 (pgserver runs PostgreSQL as its own user when
    # started by root) and other pytest sessions prune old basetemps
    folder = Path(tempfile.mkdtemp(prefix="oculi-pg-"))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def pg_server():
    """The URL of a real PostgreSQL 16 + pgvector server for this session (``pgserver``, a dev
    dependency), stopped at the end. Tests make their own databases (``tests.pgutil.pg_database``)."""
    from tests.pgutil import start_server

    folder = _pg_folder()
    srv, url = start_server(folder / "data")
    yield url
    srv.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def pg_restartable():
    """A PostgreSQL server of this test's own that it may stop and start again on the same data
    folder and URL (``tests.pgutil.RestartableServer``: ``.url``, ``.stop()``, ``.start()``)."""
    from tests.pgutil import RestartableServer

    folder = _pg_folder()
    srv = RestartableServer(folder / "data")
    yield srv
    srv.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint of a real S3-compatible server on loopback for this session (``moto[server]``,
    a dev dependency). Tests make their own buckets (``tests.s3util.make_bucket``)."""
    from tests.s3util import start_server

    srv, endpoint = start_server()
    yield endpoint
    srv.stop()


@pytest.fixture()
def s3_blobs(s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``OCULI_BLOBS=s3://<fresh bucket>/oculi`` on the test server, with its endpoint and
    credentials in the environment (which processes the test starts inherit) and a fresh
    ``OCULI_HOME`` for the download cache; returns the blobs URL."""
    from tests.s3util import TEST_CREDENTIALS, make_bucket

    url = f"s3://{make_bucket(s3_server)}/oculi"
    for k, v in {**TEST_CREDENTIALS, "OCULI_S3_ENDPOINT": s3_server, "OCULI_BLOBS": url}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if "OCULI_HOME" not in os.environ:
        monkeypatch.setenv("OCULI_ASSETS_DIR", str(Settings().assets_dir))
        monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))
    return url


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("OCULI_LOG", "warning")
