"""What every CLI command shares: settings/engine, JSON output, and error → exit-code mapping.

Exit codes: 0 success; 1 unexpected failure; 2 bad input (some item of a batch failed, or
the arguments were unusable); 3 a model asset is missing/corrupt; 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

from oculi.config import Settings
from oculi.core.errors import OculiError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_engine = None


def get_settings() -> Settings:
    return Settings()


def get_engine():  # -> Engine, imported lazily to keep `oculi --help` fast
    global _engine
    if _engine is None:
        from oculi.engine import Engine

        _engine = Engine(get_settings())
    return _engine


def print_json(doc: Any) -> None:
    """One JSON document on stdout (UTF-8, stable key order as produced)."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def error(msg: str) -> None:
    """One clear line on stderr."""
    err_console.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False)


def handle_errors(fn: F) -> F:
    """Map oculi errors to one stderr line and their exit code; Ctrl-C to 130; no tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OculiError as e:
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as e:  # an unexpected failure still gets one line; details in the log
            logging.getLogger("oculi").debug("unexpected error", exc_info=True)
            error(f"unexpected {type(e).__name__}: {e} (run with OCULI_LOG=debug for details)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
