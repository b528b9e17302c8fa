"""The oculi HTTP server: REST API, OpenAI-compatible ``/v1``, web UI, API keys.

Start it with ``oculi serve``; build it in code with ``create_app``.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See ``oculi.server.app.create_app`` (imported lazily: FastAPI is not needed by the CLI)."""
    from oculi.server.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
