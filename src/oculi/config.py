"""Settings: one pydantic ``BaseSettings`` read once at the entry point and passed down.

Every field can be set from the environment with the ``OCULI_`` prefix, e.g.
``OCULI_HOME=/data/oculi`` or ``OCULI_MAX_IMAGE_PIXELS=40000000``.

Models are configured in TOML (``read_model_config``): ``OCULI_HOME/models/*/model.toml``
(what ``oculi train`` publishes), then ``OCULI_HOME/oculi.toml``, then ``./oculi.toml``, then
``--config FILE`` (``OCULI_CONFIG``); a later file's ``[models.NAME]`` replaces an earlier one of
the same name, and ``[tasks]`` entries merge. ``Settings.models``/``Settings.tasks`` given in
code come last::

    [models.local-vlm]
    backend = "openai"
    base_url = "http://127.0.0.1:11434/v1"
    model = "qwen2.5vl:3b"
    api_key_env = "OLLAMA_API_KEY"      # the name of an environment variable, never the key
    [tasks]
    caption = "local-vlm"
    ask = "local-vlm"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(user_data_dir("oculi", appauthor=False))


CONFIG_FILE = "oculi.toml"
#: Top-level keys of ``oculi.toml`` that ``Settings`` itself reads (``store = "postgresql://..."``,
#: ``engine = "ray"``, ``ray_address = "ray://head:10001"``);
#: the model configuration reader passes over them.
SETTINGS_KEYS = frozenset({"store", "blobs", "engine", "ray_address"})


def _toml_settings(path: Path) -> dict[str, str]:
    """The top-level settings of ``oculi.toml`` (``store``, ``blobs``, ``engine``, ``ray_address``), if any."""
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    out = {}
    for key, what in (("store", "a path or a postgresql:// URL"), ("blobs", '"store", a path or s3://bucket/prefix'),
                      ("engine", '"local" or "ray"'),
                      ("ray_address", "ray://host:port, host:port or auto")):
        v = doc.get(key)
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{path}: {key!r} must be a string ({what})")
        if v:
            out[key] = v
    if out.get("engine", "local") not in ("local", "ray"):
        raise ValueError(f"{path}: 'engine' must be \"local\" or \"ray\", not {out['engine']!r}")
    return out


class Settings(BaseSettings):
    """Process-wide settings for oculi.

    Attributes:
        home: Where assets, collections, keys and caches live (``OCULI_HOME``).
        assets_dir: Where npm-carried model assets are unpacked (``OCULI_ASSETS_DIR``);
            defaults to ``home/assets``. Several homes can share one asset directory.
        max_image_bytes: Largest image file accepted.
        max_image_pixels: Largest decoded image (width × height) accepted; guards against
            decompression bombs.
        threads: Intra-op threads for the CPU models (0 = library default).
        perception_workers: Perception workers for batch work (indexing, footage), each with
            one-thread sessions (0 = one per CPU core). See ``oculi.perception.pool``.
        perception_pool: ``"thread"`` or ``"process"`` workers.
        detector_threshold: Minimum detector score for an object to be reported.
        ocr: Whether captions and observations run OCR.
        object_crops: At most this many detected objects per image are classified on their own
            crop (fine names, clothing); 0 turns it off (``OCULI_OBJECT_CROPS``).
        backend: Per-capability model names, e.g. ``{"describe": "builtin"}`` (older form of
            ``tasks``; ``[tasks]`` wins where both name a capability).
        models: ``[models.NAME]`` tables given in code (after the config files).
        tasks: ``[tasks]`` entries given in code: task or capability → model name.
        model: ``--model NAME``: this model serves every capability it can, over ``tasks``.
        config_file: ``--config FILE`` (``OCULI_CONFIG``): read after the other config files.
        read_config_files: Read ``oculi.toml`` files at all (tests turn it off).
        engine: Where ``oculi index`` reads, decodes and perceives: ``"local"`` (this process's
            perception pool) or ``"ray"`` (actors on a Ray cluster; ``pip install 'oculi[ray]'``).
            The store is written from this process either way. Also ``engine = "ray"`` at the
            top of ``oculi.toml`` (the environment and code win over the file).
        ray_address: The Ray cluster for ``engine="ray"`` (``ray://head:10001``, ``head:6379``,
            ``auto``); unset starts Ray on this machine.
        timezone: IANA time zone of footage clock times ("today", "after 5 pm", report days,
            ``--start`` without an offset); default: this machine's local zone.
        store: Where collections live (``OCULI_STORE``, ``oculi --store``, or ``store = "..."``
            in ``$OCULI_HOME/oculi.toml``): a plain path or ``lance://PATH`` for the embedded
            store (default: ``home/collections``), ``postgresql://user@host/db`` for PostgreSQL
            with pgvector. See ``oculi.store.open_store``.
        blobs: Where the bytes of uploaded images and videos are kept, whichever the store
            (``OCULI_BLOBS``, ``oculi --blobs``, or ``blobs = "..."`` in ``oculi.toml``):
            ``store`` (default: the collection's folder, or the PostgreSQL store's table), a
            folder, or ``s3://bucket/prefix`` for an S3-compatible bucket that replicas share.
            See ``oculi.store.blobs``.
        s3_endpoint: The S3 endpoint for ``blobs = "s3://..."`` (``OCULI_S3_ENDPOINT``, or the
            standard ``AWS_ENDPOINT_URL``; unset: AWS). Credentials and region come from the
            standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
            ``~/.aws``, instance roles).
        s3_cache_mb: The most each cache of local blob copies may take up, in MB
            (``OCULI_S3_CACHE_MB``): S3 objects in ``home/cache/s3-blobs`` and PostgreSQL blob
            rows in ``home/cache/pg-blobs``, fetched for readers that need a file, such as the
            video decoder. The least recently used are deleted to make room; the bucket or the
            database keeps every blob.
    """

    model_config = SettingsConfigDict(env_prefix="OCULI_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    assets_dir: Path | None = None
    max_image_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 80_000_000
    threads: int = 0
    perception_workers: int = Field(default=0, ge=0)
    perception_pool: Literal["thread", "process"] = "thread"
    detector_threshold: float = 0.4
    ocr: bool = True
    object_crops: int = Field(default=3, ge=0, le=20)
    backend: dict[str, str] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tasks: dict[str, str] = Field(default_factory=dict)
    model: str | None = None
    config_file: Path | None = Field(default=None, validation_alias=AliasChoices("config_file", "OCULI_CONFIG", "OCULI_CONFIG_FILE"))
    read_config_files: bool = True
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    timezone: str | None = None
    store: str | None = None
    blobs: str | None = None
    s3_endpoint: str | None = Field(default=None, validation_alias=AliasChoices(
        "s3_endpoint", "OCULI_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    s3_cache_mb: int = Field(default=2048, ge=0)

    @model_validator(mode="after")
    def _fill_paths(self) -> "Settings":
        if self.assets_dir is None:
            self.assets_dir = self.home / "assets"
        explicit = set(self.model_fields_set)  # given in code or the environment: those win over the file
        top = _toml_settings(self.home / CONFIG_FILE)
        if not self.store:
            self.store = top.get("store")
        if not self.blobs:
            self.blobs = top.get("blobs")
        if "engine" not in explicit and "engine" in top:
            self.engine = top["engine"]  # type: ignore[assignment]
        if not self.ray_address:
            self.ray_address = top.get("ray_address")
        return self

    @property
    def collections_dir(self) -> Path:
        return self.home / "collections"


CONFIG_FILE = "oculi.toml"
MODEL_TABLE_FILE = "model.toml"  # OCULI_HOME/models/NAME/model.toml, written by `oculi train`


@dataclass
class ModelConfig:
    """The merged model configuration: ``[models.NAME]`` tables, ``[tasks]``, and provenance."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # model name → file that defined it
    files: list[Path] = field(default_factory=list)  # config files read, in order


def _read_toml(path: Path) -> dict[str, Any]:
    from oculi.core.errors import ModelConfigError

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ModelConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ModelConfigError(f"{path}: cannot be read ({e.strerror or e})") from None


def config_files(settings: Settings) -> list[Path]:
    """The ``oculi.toml`` files that exist, in the order they are read."""
    out: list[Path] = []
    if settings.read_config_files:
        for p in (settings.home / CONFIG_FILE, Path.cwd() / CONFIG_FILE):
            if p.is_file() and p.resolve() not in {q.resolve() for q in out}:
                out.append(p)
    if settings.config_file is not None:
        from oculi.core.errors import ModelConfigError

        p = Path(settings.config_file).expanduser()
        if not p.is_file():
            raise ModelConfigError(f"config file {p}: no such file")
        out.append(p)
    return out


def read_model_config(settings: Settings) -> ModelConfig:
    """Merge the model configuration from the trained models' tables, the config files and
    ``settings`` (see the module docstring for the order).

    Raises:
        ModelConfigError: a file is not valid TOML, or its ``[models]``/``[tasks]`` have the
            wrong shape. (Each table's options are validated by its backend type on use.)
    """
    from oculi.core.errors import ModelConfigError

    cfg = ModelConfig()
    trained_dir = settings.home / "models"
    if settings.read_config_files and trained_dir.is_dir():
        for p in sorted(trained_dir.glob(f"*/{MODEL_TABLE_FILE}")):
            if p.parent.name == "builtin":  # the built-in model's name is taken; a trained "builtin" is not a model
                continue
            try:
                table = _read_toml(p)
            except ModelConfigError as e:
                import logging

                logging.getLogger(__name__).warning("skipping %s", e)
                continue
            cfg.models[p.parent.name] = table
            cfg.origin[p.parent.name] = str(p)
    for path in config_files(settings):
        data = _read_toml(path)
        cfg.files.append(path)
        unknown = sorted(set(data) - {"models", "tasks"} - SETTINGS_KEYS)
        if unknown:
            raise ModelConfigError(f"{path}: unknown table(s) {', '.join(unknown)}; oculi.toml has [models.NAME] and [tasks]")
        models = data.get("models", {})
        if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
            raise ModelConfigError(f"{path}: [models] must hold one table per model, e.g. [models.local-vlm]")
        for name, table in models.items():
            cfg.models[name] = dict(table)
            cfg.origin[name] = str(path)
        tasks = data.get("tasks", {})
        if not isinstance(tasks, dict) or not all(isinstance(v, str) for v in tasks.values()):
            raise ModelConfigError(f'{path}: [tasks] maps a task to a model name, e.g. caption = "local-vlm"')
        cfg.tasks.update(tasks)
    for name, table in settings.models.items():
        cfg.models[name] = dict(table)
        cfg.origin[name] = "settings"
    cfg.tasks.update(settings.tasks)
    return cfg
