"""What every CLI command shares: settings/engine, JSON output, and error → exit-code mapping.

Exit codes: 0 success; 1 unexpected failure; 2 bad input (some item of a batch failed, or
the arguments were unusable); 3 a model asset is missing/corrupt; 4 a model is not configured
or cannot do what was asked (``--model``, ``oculi.toml``), or a collection holds another
model's vectors; 5 a collection is damaged
(``oculi collections repair``); 6 the disk is full; 130 interrupted; 141 the
reader of the output went away (``oculi search cat | head -1``), as other Unix tools do on
SIGPIPE: nothing more is written and nothing is printed about it.

Human output passes names through ``shown``: a file name with a newline, an escape sequence or
undecodable bytes is printed escaped on its own line, never raw.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

from oculi.config import Settings
from oculi.core.errors import OculiError

F = TypeVar("F", bound=Callable[..., Any])

class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich's default exits 1 on its own; hand it to ``handle_errors`` (exit 141, quietly)
        self.quiet = True
        raise BrokenPipeError


console = _Console(soft_wrap=True)  # long paths are never broken onto two lines
err_console = _Console(stderr=True, highlight=False, soft_wrap=True)

_engine = None
_overrides: dict[str, Any] = {}  # --model / --config of this invocation

MODEL_HELP = "A configured model (a models.NAME table of oculi.toml; see `oculi models`) for what it can do here."
CONFIG_HELP = "A model configuration file (oculi.toml), read after OCULI_HOME/oculi.toml and ./oculi.toml."


def reset_overrides() -> None:
    """Forget the previous invocation's --model/--config (one process may run several)."""
    global _engine
    if _overrides:
        _overrides.clear()
        _engine = None


def use_model_options(model: str | None = None, config: Any = None, *needs: str) -> None:
    """Apply ``--model NAME`` / ``--config FILE`` to the settings and engine of this command,
    and check that the model exists and serves one of ``needs`` (capabilities) before any work.

    Raises:
        ModelConfigError: unknown model, invalid table, or a model that serves none of ``needs``
            (exit 4, naming the configured models).
    """
    global _engine
    changed = False
    if config is not None and _overrides.get("config_file") != config:
        _overrides["config_file"] = config
        changed = True
    if model is not None and _overrides.get("model") != model:
        _overrides["model"] = model
        changed = True
    if changed:
        _engine = None
    if model is not None:
        from oculi.backends.registry import ModelRegistry

        settings = get_settings()
        if needs:
            get_engine().require_model(model, *needs)
        else:
            reg = ModelRegistry(settings)
            reg.options(reg.spec(model))  # exists and its table is valid


#: ``oculi --store URL``: set by the main callback on every invocation (None when not given).
STORE_OVERRIDE: str | None = None
#: ``oculi --blobs URL``: likewise.
BLOBS_OVERRIDE: str | None = None


def get_settings() -> Settings:
    extra = {"store": STORE_OVERRIDE} if STORE_OVERRIDE else {}
    if BLOBS_OVERRIDE:
        extra["blobs"] = BLOBS_OVERRIDE
    return Settings(**_overrides, **extra)


def get_engine():  # -> Engine, imported lazily to keep `oculi --help` fast
    global _engine
    if _engine is None:
        from oculi.engine import Engine

        _engine = Engine(get_settings())
    return _engine


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left

# C0/C1 controls (newline, tab, ESC...), line/paragraph separators, bidi overrides, and the lone
# surrogates that stand for undecodable bytes in a file name
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def shown(text: Any) -> str:
    """``text`` fit for one line of human output inside Rich markup: control characters, bidi
    overrides and undecodable bytes escaped as Python writes them (``\\n``, ``\\x1b``,
    ``\\udcff``), and Rich markup escaped.

    Example:
        >>> shown("bad\\nname[red].jpg")
        'bad\\\\nname\\\\[red].jpg'
    """
    s = _UNSHOWABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), str(text))
    return escape_markup(s)


def print_json(doc: Any) -> None:
    """One JSON document on stdout (UTF-8, stable key order as produced). Undecodable bytes of
    file names (lone surrogates) are written as ``\\udcXX`` escapes, so the output stays UTF-8."""
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error(msg: str) -> None:
    """One clear line on stderr."""
    err_console.print(f"[bold red]error:[/] {shown(msg)}", markup=True, highlight=False)


def _stdout_to_devnull() -> None:
    """The reader of stdout is gone: send what is still buffered (and the final flush) nowhere,
    so the interpreter's exit writes no "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


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
        except BrokenPipeError:
            _stdout_to_devnull()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except typer.Exit:
            raise
        except Exception as e:  # an unexpected failure still gets one line; details in the log
            logging.getLogger("oculi").debug("unexpected error", exc_info=True)
            error(f"unexpected {type(e).__name__}: {e} (run with OCULI_LOG=debug for details)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
