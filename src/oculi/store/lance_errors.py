"""Lance's failures in words: a damaged store or a full disk, never ``lance error: …`` with Rust paths.

Lance reports a truncated, garbled or missing file as a ``RuntimeError``/``OSError``/
``ValueError`` whose message carries the Rust source location. ``store_error`` turns any such
failure into ``StoreCorruptError`` (naming the collection and ``oculi collections repair``) or,
when the disk is full, ``StoreFullError``; the original goes to the debug log.
"""

from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Any, Callable, TypeVar

from oculi.core.errors import OculiError, StoreCorruptError
from oculi.store.integrity import disk_full, is_disk_full

log = logging.getLogger(__name__)

#: What Lance and PyArrow raise for storage failures (pyarrow's errors subclass these).
LANCE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, OSError, ValueError)

F = TypeVar("F", bound=Callable[..., Any])

_GARBLED = ("too small", "fill whole buffer", "invalid range", "invalid magic", "does not appear to be a lance file",
            "unexpected eof", "unexpected end", "out of range", "decode", "corrupt", "invalid data", "checksum",
            "invalid protobuf", "failed to parse")


def friendly_cause(e: BaseException) -> str:
    """A short, internals-free reason for a storage failure."""
    if is_disk_full(e):
        return "the disk is full"
    msg = str(e).lower()
    if "not found" in msg or "no such file" in msg:
        return "a file it needs is missing"
    if any(s in msg for s in _GARBLED):
        return "a file is truncated or garbled"
    return "its files cannot be read"


def corrupt(collection: str, what: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"collection {collection!r} is damaged: {what}. Run `oculi collections repair {collection}` "
        f"(`oculi collections check {collection}` shows what is affected)",
        collection=collection,
    )


def store_error(e: BaseException, collection: str, path: Path, what: str = "its data cannot be read", *,
                needed: int | None = None) -> OculiError:
    """The oculi error for a Lance failure on ``collection`` (stored at ``path``); ``needed``:
    the bytes the failed write was estimated to need, for a full disk's message."""
    if isinstance(e, OculiError):
        return e
    log.debug("collection %s: storage failure", collection, exc_info=e)
    if is_disk_full(e):
        return disk_full(path, needed)
    return corrupt(collection, f"{what} ({friendly_cause(e)})")


def guarded(what: str) -> Callable[[F], F]:
    """Decorate a ``LanceCollection`` method so Lance failures become ``store_error``\\ s.

    Works for plain methods and generators (the failure may come while iterating).
    """

    def deco(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from fn(self, *args, **kwargs)
                except OculiError:
                    raise
                except LANCE_ERRORS as e:
                    raise store_error(e, self.name, self.path, what) from None

            return gen  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except OculiError:
                raise
            except LANCE_ERRORS as e:
                raise store_error(e, self.name, self.path, what) from None

        return wrapper  # type: ignore[return-value]

    return deco

