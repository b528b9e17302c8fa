"""Backend types and configured models by name.

Two levels, as in open_clip's ``list_models``/``create_model`` and ``llm``'s plugins:

- A backend **type** (``builtin``, ``trained``, ``openai``, ``transformers``, ``diffusers``, or a
  plugin's) is a ``Backend`` subclass. Built-in types are imported lazily from
  ``_BUILTIN_TYPES``; third-party packages add types through the ``oculi.backends`` entry-point
  group (``name = "package.module:Class"``); code can call ``register_backend``. A type whose
  module or dependencies are missing is listed as unavailable with the reason, and only using
  it fails.
- A **model** is a named, configured instance of a type: an ``[models.NAME]`` table of
  ``oculi.toml`` (see ``oculi.config.read_model_config``) validated by the type's ``Options``.
  ``builtin`` is always there.

Example:
    >>> from oculi.config import Settings
    >>> "builtin" in list_backend_types()
    True
    >>> get_backend_type("builtin").type_name
    'builtin'
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

from pydantic import ValidationError

from oculi.backends.base import CAPABILITIES, PROTOCOLS, Backend, BackendOptions
from oculi.config import ModelConfig, Settings, read_model_config
from oculi.core.errors import ConfigError, ModelConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "oculi.backends"
BUILTIN_MODEL = "builtin"

# Types shipped with oculi, imported on first use so a missing optional dependency only makes
# its type unavailable.
_BUILTIN_TYPES: dict[str, str] = {
    "builtin": "oculi.backends.builtin:BuiltinBackend",
    "trained": "oculi.backends.trained_backend:TrainedBackend",
    "openai": "oculi.backends.openai_backend:OpenAIBackend",
    "transformers": "oculi.backends.transformers_backend:TransformersBackend",
    "diffusers": "oculi.backends.diffusers_backend:DiffusersBackend",
}

# What a [tasks] key may be: a capability, or one of these friendlier names for one.
TASK_ALIASES: dict[str, str] = {
    "caption": "describe", "ask": "answer", "generate": "generate_image", "ocr": "read",
    "embed-image": "embed_image", "embed-text": "embed_text", "detect-frames": "detect_frames",
    "generate-image": "generate_image", "patch-features": "patch_features",
}
DEFAULT_TASK = "default"  # [tasks] default = "NAME": for every capability that model serves

LegacyFactory = Callable[[Settings], Any]
_REGISTERED: dict[str, type[Backend] | LegacyFactory] = {}
_lock = threading.Lock()


def _is_backend_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Backend)


def _valid_type_name(name: str) -> bool:
    return bool(name) and name.replace("-", "").replace("_", "").isalnum()


def register_backend(name: str, backend: type[Backend] | LegacyFactory) -> None:
    """Make a backend type available by name from code (plugins use the entry point instead).

    Args:
        name: The type name (``backend = "NAME"`` in a model table).
        backend: A ``Backend`` subclass, or (older style) a factory ``Settings -> object`` whose
            object implements some capability protocols; its capabilities are then inferred
            from the protocols it satisfies.
    """
    if not _valid_type_name(name):
        raise ConfigError(f"backend name {name!r} must be alphanumeric (with - or _)")
    with _lock:
        _REGISTERED[name] = backend


def _entry_points() -> dict[str, metadata.EntryPoint]:
    out: dict[str, metadata.EntryPoint] = {}
    try:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            out.setdefault(ep.name, ep)
    except Exception as e:  # noqa: BLE001 - a broken distribution must not break oculi
        log.warning("could not read the %s entry points: %s", ENTRY_POINT_GROUP, e)
    return out


def list_backend_types() -> list[str]:
    """Every backend type name: built-in, registered in code, and from installed plugins
    (whether or not its dependencies import; see ``backend_type_status``)."""
    return sorted({*_BUILTIN_TYPES, *_REGISTERED, *_entry_points()})


def list_backends() -> list[str]:
    """Alias of ``list_backend_types`` (older name)."""
    return list_backend_types()


def _import_spec(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve_type(type_name: str) -> type[Backend] | LegacyFactory:
    with _lock:
        if type_name in _REGISTERED:
            reg = _REGISTERED[type_name]
            return _named(reg, type_name) if _is_backend_class(reg) else reg
    try:
        if type_name in _BUILTIN_TYPES:
            obj = _import_spec(_BUILTIN_TYPES[type_name])
        else:
            eps = _entry_points()
            if type_name not in eps:
                raise ModelConfigError(f"unknown backend type {type_name!r}; known types: {', '.join(list_backend_types())} "
                                       f"(a plugin adds one through the {ENTRY_POINT_GROUP!r} entry-point group)")
            obj = eps[type_name].load()
    except ModelConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - ImportError, or anything a plugin raises on import
        raise ModelConfigError(f"backend type {type_name!r} is unavailable: {type(e).__name__}: {e}") from e
    if isinstance(obj, type) and issubclass(obj, Backend):
        return _named(obj, type_name)
    if isinstance(obj, type) or not callable(obj):
        raise ModelConfigError(f"backend type {type_name!r} ({obj!r}) is not a subclass of oculi.backends.base.Backend")
    return obj


@functools.lru_cache(maxsize=None)
def _named(cls: type[Backend], type_name: str) -> type[Backend]:
    """``cls`` under the registry's name: one class may serve under several names (made once)."""
    if cls.type_name == type_name:
        return cls
    return type(cls.__name__, (cls,), {"type_name": type_name, "__module__": cls.__module__})


def get_backend_type(type_name: str) -> type[Backend] | LegacyFactory:
    """The class (or legacy factory) of a backend type.

    Raises:
        ModelConfigError: unknown type (listing the known ones), or its module fails to import.
    """
    return _resolve_type(type_name)


def backend_type_status(type_name: str) -> dict[str, Any]:
    """``{"type", "available", "detail", "capabilities", "source"}`` for ``oculi models``."""
    source = ("builtin" if type_name in _BUILTIN_TYPES else "code" if type_name in _REGISTERED else "plugin")
    try:
        t = _resolve_type(type_name)
    except ModelConfigError as e:
        return {"type": type_name, "available": False, "detail": str(e), "capabilities": [], "source": source}
    caps = sorted(str(c) for c in t.capabilities) if _is_backend_class(t) else []
    desc = getattr(t, "description", "") if _is_backend_class(t) else ""
    return {"type": type_name, "available": True, "detail": desc, "capabilities": caps, "source": source}


def capabilities_of(backend: Any) -> frozenset[str]:
    """What a backend instance serves: its declared ``capabilities``, or for an older-style
    object without them, the capabilities whose protocol it satisfies."""
    caps = getattr(backend, "capabilities", None)
    if caps is not None:
        return frozenset(str(c) for c in caps)
    return frozenset(c for c, proto in PROTOCOLS.items() if isinstance(backend, proto))


def task_capability(task: str) -> str:
    """The capability a ``[tasks]`` key (or ``--model`` task) names."""
    key = TASK_ALIASES.get(task, task.replace("-", "_"))
    if key not in CAPABILITIES and key != DEFAULT_TASK:
        raise ModelConfigError(f"unknown task {task!r} in [tasks]; use one of: "
                               f"{', '.join(sorted({*CAPABILITIES, *TASK_ALIASES, DEFAULT_TASK}))}")
    return key


@dataclass(frozen=True)
class ModelSpec:
    """A configured model: its name, type and raw options table, and where it was defined."""

    name: str
    backend: str
    table: dict[str, Any]
    source: str  # the file it came from, or "built in"


class ModelRegistry:
    """The models one settings object configures: ``builtin`` plus every ``[models.NAME]``.

    Args:
        settings: Its ``models``/``tasks``/``model`` fields and config files are read.
    """

    def __init__(self, settings: Settings, config: ModelConfig | None = None) -> None:
        self.settings = settings
        self.config = config if config is not None else read_model_config(settings)
        specs = {BUILTIN_MODEL: ModelSpec(BUILTIN_MODEL, "builtin", {"backend": "builtin"}, "built in")}
        for name, table in self.config.models.items():
            if name == BUILTIN_MODEL and table.get("backend", "builtin") != "builtin":
                raise ModelConfigError(f"the model name 'builtin' is reserved for the built-in model "
                                       f"({self.config.origin.get(name, 'settings')})")
            if not isinstance(table, dict) or "backend" not in table:
                raise ModelConfigError(f"[models.{name}] in {self.config.origin.get(name, 'settings')} needs "
                                       f"backend = \"TYPE\" (one of: {', '.join(list_backend_types())})")
            specs[name] = ModelSpec(name, str(table["backend"]), dict(table), self.config.origin.get(name, "settings"))
        self.specs = specs
        self.tasks = {task_capability(k): v for k, v in self.config.tasks.items()}

    def names(self) -> list[str]:
        return sorted(self.specs)

    def spec(self, name: str) -> ModelSpec:
        """The configured model ``name``; a registered type name without required options
        (e.g. a test backend) also works as a model of the same name.

        Raises:
            ModelConfigError: no such model, naming the configured ones and the file to edit.
        """
        if name in self.specs:
            return self.specs[name]
        if name not in _BUILTIN_TYPES and name in list_backend_types():
            return ModelSpec(name, name, {"backend": name}, "type")
        files = ", ".join(str(p) for p in self.config.files) or f"{self.settings.home / 'oculi.toml'}"
        raise ModelConfigError(f"no model named {name!r} is configured; configured models: {', '.join(self.names())}. "
                               f"Add a [models.{name}] table to {files} (see docs/BACKENDS.md), "
                               f"or list them with `oculi models`")

    def options(self, spec: ModelSpec) -> BackendOptions:
        t = get_backend_type(spec.backend)
        if not _is_backend_class(t):
            return BackendOptions(backend=spec.backend)
        try:
            return t.Options.model_validate(spec.table)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'table'}: {err['msg']}" for err in e.errors())
            raise ModelConfigError(f"[models.{spec.name}] ({spec.source}) is not valid for backend "
                                   f"{spec.backend!r}: {problems}") from None

    def create(self, name: str) -> Any:
        """A new (unloaded) backend instance for the model ``name``."""
        spec = self.spec(name)
        t = get_backend_type(spec.backend)
        opts = self.options(spec)
        if _is_backend_class(t):
            return t(name, opts, self.settings)  # type: ignore[call-arg]
        return t(self.settings)  # older-style factory

    def model_for(self, capability: str) -> str:
        """The model name configured for ``capability``: ``[tasks]``, else ``Settings.backend``
        (older per-capability names), else ``[tasks] default``, else ``builtin``. (``--model``
        is applied by the engine, which knows what the model serves.)"""
        if capability not in CAPABILITIES:
            raise ConfigError(f"unknown capability {capability!r}; known: {', '.join(sorted(CAPABILITIES))}")
        if capability in self.tasks:
            return self.tasks[capability]
        legacy = self.settings.backend.get(capability)
        if legacy:
            return legacy
        return self.tasks.get(DEFAULT_TASK, BUILTIN_MODEL)


def create_model(name: str, settings: Settings) -> Any:
    """A new backend instance for the configured model ``name`` (outside an engine)."""
    return ModelRegistry(settings).create(name)


def create_backend(name: str, settings: Settings) -> Any:
    """Older name of ``create_model``."""
    return create_model(name, settings)


def model_status(registry: ModelRegistry, name: str, *, instance: Any = None, health: bool = True) -> dict[str, Any]:
    """What ``oculi models`` shows of one configured model: ``name``, ``backend``, ``model_id``,
    ``capabilities``, ``serves`` (the capabilities ``[tasks]`` names it for; the engine fills in
    the effective ones), ``source``, ``ok``
    (its table is valid and its type available), ``error``, ``health`` (``{"ok", "detail"}``,
    or None when not checked). Never raises for a broken model: the error is in the entry."""
    spec = registry.spec(name)
    entry: dict[str, Any] = {"name": name, "backend": spec.backend, "model_id": None, "capabilities": [],
                             "serves": sorted(c for c, m in registry.tasks.items() if m == name), "source": spec.source,
                             "ok": True, "error": None, "health": None, "description": ""}
    try:
        b = instance if instance is not None else registry.create(name)
    except Exception as e:  # noqa: BLE001 - a broken model is listed with its error
        entry.update(ok=False, error=str(e))
        return entry
    entry["model_id"] = str(getattr(b, "model_id", None) or name)
    entry["capabilities"] = sorted(capabilities_of(b))
    entry["description"] = getattr(b, "description", "") or ""
    if health:
        fn = getattr(b, "health", None)
        try:
            entry["health"] = dict(fn()) if callable(fn) else {"ok": True, "detail": "no health check"}
        except Exception as e:  # noqa: BLE001 - a health check that raises is a failed one
            entry["health"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
    return entry
