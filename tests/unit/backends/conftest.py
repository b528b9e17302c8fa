"""Factories for the backend conformance test (``test_conformance.py``).

Every backend type gets a fixture ``backend_factory_<type>`` (``-`` written ``_``) that returns
a function making a fresh, unloaded instance ready to run on this machine: real weights, a
tiny model built in the test, or a loopback server the fixture starts. A type whose module
imports but has no factory fails the conformance test, so a new type cannot skip it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from oculi.config import Settings
from tests.plugin_dist import EXAMPLE_SRC

Factory = Callable[[], object]


@pytest.fixture(scope="module")
def conformance_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A fresh home (no oculi.toml is read) with the real model assets."""
    return Settings(home=tmp_path_factory.mktemp("conformance-home"), assets_dir=Settings().assets_dir,
                    read_config_files=False)


@pytest.fixture(scope="module")
def backend_factory_builtin(conformance_settings: Settings) -> Factory:
    from oculi.backends.builtin import BuiltinBackend, BuiltinOptions

    return lambda: BuiltinBackend("builtin", BuiltinOptions(backend="builtin"), conformance_settings)


@pytest.fixture(scope="module")
def backend_factory_trained(conformance_settings: Settings) -> Factory:
    """A classifier head (random weights, the built-in 1280-d features) saved as `oculi train` does."""
    import torch
    from safetensors.numpy import save

    from oculi.backends.trained_backend import TrainedBackend, TrainedOptions
    from oculi.store.trained import TrainedStore
    from oculi.tasks.train.models import MLP

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 1280)).astype(np.float32)
    torch.manual_seed(0)
    m = MLP(x.mean(0), x.std(0) + 1e-3, 3, hidden=(8,)).eval()
    TrainedStore.for_home(conformance_settings.home).save(
        "surface", "classifier", {"weights.safetensors": save(m.tensors())},
        {"classes": ["crack", "ok", "scratch"], "title": "surface",
         "feature_space": {"model": "builtin/efficientnet-lite0", "dim": 1280}})
    return lambda: TrainedBackend("surface", TrainedOptions(backend="trained"), conformance_settings)


@pytest.fixture(scope="module")
def backend_factory_mean_colour(conformance_settings: Settings) -> Factory:
    """The example plugin (examples/oculi-plugin-example), imported from its source folder."""
    if str(EXAMPLE_SRC) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_SRC))
    from oculi_plugin_example import MeanColourBackend, MeanColourOptions

    return lambda: MeanColourBackend("mean", MeanColourOptions(backend="mean-colour"), conformance_settings)


@pytest.fixture(scope="module")
def conformance_images(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Two real photos (scikit-image), decoded as every backend receives them."""
    from oculi.demo import sample_images
    from oculi.imageio import load_image

    d = tmp_path_factory.mktemp("conformance-images")
    sample_images(d)
    return [load_image(d / "astronaut.png").image, load_image(d / "coffee.png").image]


@pytest.fixture(scope="module")
def backend_factory_transformers(conformance_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Factory:
    """A tiny random-weight LLaVA (image-text-to-text) saved as a model folder."""
    pytest.importorskip("transformers")
    from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions
    from tests.tiny_models import build_tiny_llava

    folder = build_tiny_llava(tmp_path_factory.mktemp("conformance-llava") / "model")
    return lambda: TransformersBackend("tiny-vlm", TransformersOptions(backend="transformers", path=str(folder), device="cpu",
                                                                       max_new_tokens=8), conformance_settings)


@pytest.fixture(scope="module")
def backend_factory_diffusers(conformance_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Factory:
    """A tiny random-weight Stable Diffusion pipeline saved as a pipeline folder."""
    pytest.importorskip("diffusers")
    from oculi.backends.diffusers_backend import DiffusersBackend, DiffusersOptions
    from tests.tiny_models import build_tiny_sd

    folder = build_tiny_sd(tmp_path_factory.mktemp("conformance-sd") / "model")
    return lambda: DiffusersBackend("tiny-sd", DiffusersOptions(backend="diffusers", path=str(folder), device="cpu", steps=2),
                                    conformance_settings)


@pytest.fixture(scope="session")
def oculi_vlm_server(tmp_path_factory: pytest.TempPathFactory):
    """oculi's own ``serve`` app on a loopback port (uvicorn in a thread), its chat model a tiny
    random-weight LLaVA, its embedder a tiny CLIP (``transformers`` models from folders) and its
    generator a tiny Stable Diffusion pipeline (``diffusers``, where installed): a real
    OpenAI-compatible server for the ``openai`` backend. Yields ``(base_url, api_key, folder)``,
    ``folder`` holding the model folders ``tiny-llava`` and ``tiny-clip``."""
    pytest.importorskip("transformers")
    from oculi.engine import Engine
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig
    from tests.serverutil import ServerThread
    from tests.tiny_models import build_tiny_clip, build_tiny_llava, build_tiny_sd

    root = tmp_path_factory.mktemp("vlm-server")
    vlm, clip = build_tiny_llava(root / "tiny-llava"), build_tiny_clip(root / "tiny-clip")
    models = {"vlm": {"backend": "transformers", "path": str(vlm), "device": "cpu", "max_new_tokens": 12},
              "clip": {"backend": "transformers", "path": str(clip), "device": "cpu"}}
    tasks = {"chat": "vlm", "embed_text": "clip", "embed_image": "clip"}
    try:
        import diffusers  # noqa: F401

        models["sd"] = {"backend": "diffusers", "path": str(build_tiny_sd(root / "tiny-sd")), "device": "cpu", "steps": 2}
        tasks["generate"] = "sd"
    except ImportError:
        pass
    settings = Settings(home=root / "home", read_config_files=False, models=models, tasks=tasks)
    key, _ = KeyStore(settings.home).create("read", name="backend-tests")
    app = create_app(settings, Engine(settings), config=ServerConfig(rate_per_minute=0), warmup=False, start_jobs=False,
                     store_factory=None)
    with ServerThread(app) as url:
        yield url, key, root


@pytest.fixture(scope="module")
def backend_factory_openai(conformance_settings: Settings, oculi_vlm_server) -> Factory:
    """The ``openai`` type against oculi's own server on loopback (tiny VLM chat, tiny CLIP embeddings)."""
    import os

    from oculi.backends.openai_backend import OpenAIBackend, OpenAIOptions

    url, key, _ = oculi_vlm_server
    os.environ["OCULI_TEST_SERVER_KEY"] = key
    return lambda: OpenAIBackend("remote", OpenAIOptions(
        backend="openai", base_url=url + "/v1", model="vlm", api_key_env="OCULI_TEST_SERVER_KEY", max_tokens=8,
        embed_model="oculi-text-embed", image_embed_model="oculi-image-embed"), conformance_settings)
