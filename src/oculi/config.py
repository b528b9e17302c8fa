"""Settings: one pydantic ``BaseSettings`` read once at the entry point and passed down.

Every field can be set from the environment with the ``OCULI_`` prefix, e.g.
``OCULI_HOME=/data/oculi`` or ``OCULI_MAX_IMAGE_PIXELS=40000000``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(user_data_dir("oculi", appauthor=False))


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
        backend: Per-capability backend names, e.g. ``{"describe": "builtin"}``.
        engine: Where ``oculi index`` reads, decodes and perceives: ``"local"`` (this process's
            perception pool) or ``"ray"`` (actors on a Ray cluster; ``pip install 'oculi[ray]'``).
            The store is written from this process either way.
        ray_address: The Ray cluster for ``engine="ray"`` (``ray://head:10001``, ``head:6379``,
            ``auto``); unset starts Ray on this machine.
        timezone: IANA time zone of footage clock times ("today", "after 5 pm", report days,
            ``--start`` without an offset); default: this machine's local zone.
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
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    timezone: str | None = None

    @model_validator(mode="after")
    def _fill_paths(self) -> "Settings":
        if self.assets_dir is None:
            self.assets_dir = self.home / "assets"
        return self

    @property
    def collections_dir(self) -> Path:
        return self.home / "collections"
