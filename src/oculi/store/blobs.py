"""Blob stores: where the original bytes of ingested uploads (and uploaded videos) are kept.

A ``BlobStore`` keeps immutable byte strings under content-derived keys (``ab/abcdef....jpg``).
``put`` returns the blob's *location*: the string recorded as the item's ``path`` and file
record (a local path for a directory, a URL for a remote store). ``local_path`` gives a file on
this machine to read it from (video decoding needs a file): the directory itself, or a cached
copy for a remote store.

Implementations: ``DirectoryBlobStore`` (a folder; the embedded store's ``<collection>/blobs``),
``oculi.store.pg_store.PgBlobStore`` (a table in the PostgreSQL store, so every replica sees
every upload). An S3-compatible bucket is the next one (the same five methods over
``boto3``/``fsspec``); see docs/CAPACITY.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol, runtime_checkable

from oculi.core.errors import InputError, NotFoundError

KEY_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}){0,3}$")


def check_key(key: str) -> str:
    """A blob key: up to four ``/``-separated parts of ``[A-Za-z0-9_.-]``, none starting with a
    dot, so a key is never a path outside the store."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key) or ".." in key:
        raise InputError(f"invalid blob key {key!r}")
    return key


def content_key(sha256: str, ext: str = "", *, folder: str | None = None) -> str:
    """The key of content with this hash: ``ab/abcd....ext`` (or ``folder/abcd....ext``)."""
    ext = re.sub(r"[^a-z0-9.]", "", (ext or "").lower())[:8]
    if ext and not ext.startswith("."):
        ext = "." + ext
    return check_key(f"{folder or sha256[:2]}/{sha256}{ext}")


@runtime_checkable
class BlobStore(Protocol):
    """Immutable byte strings under keys (see the module doc)."""

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (a no-op when it is there); return its location."""
        ...

    def put_stream(self, key: str, stream: BinaryIO) -> str:
        """Store what ``stream`` holds under ``key`` without holding it all in memory."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``. Raises ``NotFoundError``."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]: ...

    def location(self, key: str) -> str:
        """What ``put`` returns for ``key``."""
        ...

    def local_path(self, key: str) -> Path:
        """A file on this machine holding the blob (for readers that need a file)."""
        ...


class DirectoryBlobStore:
    """Blobs as files under ``root``, written atomically (temporary file, then rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def location(self, key: str) -> str:
        return str(self._path(key))

    def local_path(self, key: str) -> Path:
        p = self._path(key)
        if not p.exists():
            raise NotFoundError(f"no blob {key!r}")
        return p

    def put(self, key: str, data: bytes) -> str:
        from oculi.store.integrity import write_bytes_atomic

        dest = self._path(key)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(dest, data)  # no temporary file left behind; a full disk is StoreFullError
        return str(dest)

    def put_stream(self, key: str, stream: BinaryIO) -> str:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".upload-{os.getpid()}-{id(stream)}.tmp"
        try:
            with open(tmp, "wb") as out:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return str(dest)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no blob {key!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                k = p.relative_to(self.root).as_posix()
                if k.startswith(prefix):
                    yield k
