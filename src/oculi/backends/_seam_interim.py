"""Interim stand-in for the seam's ``oculi.backends.base`` additions (Backend, options, chat types).

The backend seam (issue 9 §1) is written on another branch; this module carries the agreed
interface so the backends can be written and tested meanwhile. It is deleted when the seam is
merged, and the backends then import the same names from ``oculi.backends.base``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Literal

import pydantic
from PIL import Image

CAPABILITIES = frozenset({"observe", "describe", "answer", "chat", "detect", "detect_frames", "read", "classify",
                          "embed_image", "embed_text", "generate_image", "patch_features"})


class BackendOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    backend: str


class Backend:
    type_name: ClassVar[str] = ""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, options: BackendOptions, settings: Any) -> None:
        self.name, self.options, self.settings = name, options, settings
        self._lock = threading.RLock()
        self._loaded = False

    @property
    def model_id(self) -> str:
        return f"{self.type_name}:{self.name}"

    def load(self) -> None:
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def unload(self) -> None:
        with self._lock:
            if self._loaded:
                self._unload()
                self._loaded = False

    def _load(self) -> None:
        pass

    def _unload(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        try:
            self.load()
        except Exception as e:  # noqa: BLE001 - health reports any failure as text
            return {"ok": False, "detail": str(e)}
        return {"ok": True, "detail": "loaded"}

    def supports(self, cap: str) -> bool:
        return cap in self.capabilities


@dataclass
class ChatPart:
    type: Literal["text", "image"]
    text: str | None = None
    image: Image.Image | None = None


@dataclass
class ChatMessage:
    role: str
    parts: list[ChatPart] = field(default_factory=list)


@dataclass
class ChatOptions:
    max_tokens: int | None = None
    stop: list[str] | None = None
    temperature: float | None = None
    response_format: dict[str, Any] | None = None


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"


__all__ = ["CAPABILITIES", "Backend", "BackendOptions", "ChatMessage", "ChatOptions", "ChatPart", "ChatResult", "Iterator"]
