"""Backends by name: ``list_backends``, ``register_backend``, ``create_backend``.

A backend factory takes ``Settings`` and returns an object implementing some of the
capability protocols in ``oculi.backends.base``. ``Settings.backend`` can name one per
capability (``{"describe": "builtin"}``); the engine asks the registry for it.
"""

from __future__ import annotations

from typing import Any, Callable

from oculi.config import Settings
from oculi.core.errors import ConfigError

BackendFactory = Callable[[Settings], Any]

CAPABILITIES = ("observe", "describe", "answer", "detect", "detect_frames", "read", "embed_image", "embed_text")


def _builtin(settings: Settings) -> Any:
    from oculi.backends.builtin import BuiltinBackend

    return BuiltinBackend(settings)


_REGISTRY: dict[str, BackendFactory] = {"builtin": _builtin}


def list_backends() -> list[str]:
    return sorted(_REGISTRY)


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available by name (e.g. from a plugin)."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"backend name {name!r} must be alphanumeric (with - or _)")
    _REGISTRY[name] = factory


def create_backend(name: str, settings: Settings) -> Any:
    """Instantiate a backend by name.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; known backends: {', '.join(list_backends())}") from None
    return factory(settings)


def backend_for(capability: str, settings: Settings) -> str:
    if capability not in CAPABILITIES:
        raise ConfigError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")
    return settings.backend.get(capability, "builtin")
