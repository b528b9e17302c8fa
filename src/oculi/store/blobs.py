"""Blob stores: where the original bytes of ingested uploads (and uploaded videos) are kept.

A ``BlobStore`` keeps immutable byte strings under content-derived keys (``ab/abcdef....jpg``).
``put`` returns the blob's *location*: the string recorded as the item's ``path`` and file
record (a local path for a directory, a URL for a remote store). ``local_path`` gives a file on
this machine to read it from (video decoding needs a file): the directory itself, or a cached
copy for a remote store.

Implementations: ``DirectoryBlobStore`` (a folder; the embedded store's ``<collection>/blobs``),
``oculi.store.pg_store.PgBlobStore`` (a table in the PostgreSQL store, so every replica sees
every upload) and ``oculi.store.s3_blobs.S3BlobStore`` (an S3-compatible bucket: AWS S3, MinIO,
Ceph RGW...).

Which one a store uses comes from ``Settings.blobs`` (``OCULI_BLOBS``, ``oculi --blobs``,
``blobs = "..."`` in ``oculi.toml``), independently of the item store: ``store`` (the default:
the store's own, i.e. the collection folder or the PostgreSQL table), a path (one folder per
collection under it) or ``s3://bucket/prefix`` (objects ``prefix/<collection>/<key>``).
``open_blob_root`` turns that into a ``BlobRoot``, which hands out one ``BlobStore`` per
collection. A blob root outside the store is shared (by replicas, by the two sides of a
migration), so dropping a collection leaves its objects there.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, Protocol, runtime_checkable

from oculi.core.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from oculi.config import Settings
    from oculi.store.integrity import CollectionCheck, RepairReport


CACHE_RESCAN_S = 60.0  # a cache folder is counted again at least this often (other processes add copies too)
log = logging.getLogger(__name__)


class CacheBound:
    """Keeps a folder of local copies of remote blobs (S3 objects, PostgreSQL blob rows) within
    ``max_bytes`` (None: unbounded): before a copy comes in, the least recently used ones (by
    modification time, set anew by ``touch`` on every use) are deleted until it fits.

    The file a call is about to return (``keep``) is never deleted for it, nor files being written
    (dot files, not counted); a copy deleted while another process reads it stays readable to that
    reader (POSIX). The folder is walked only when the copy would not fit by this process's own
    tally or ``CACHE_RESCAN_S`` has passed. The remote keeps every blob: the cache is only a copy.
    """

    def __init__(self, root: Path, max_bytes: int | None, what: str = "blob cache") -> None:
        self.root = Path(root)
        self.max_bytes = None if max_bytes is None else max(0, int(max_bytes))
        self.what = what
        self._lock = threading.Lock()
        self._seen = (0, -CACHE_RESCAN_S)  # (bytes in the cache as last counted + added since, when counted)

    def make_room(self, incoming: int, keep: Path) -> list[Path]:
        """Delete least recently used copies until ``incoming`` more bytes fit; returns what was deleted."""
        if self.max_bytes is None:
            return []
        with self._lock:
            known, at = self._seen
            if known + incoming <= self.max_bytes and time.monotonic() - at < CACHE_RESCAN_S:
                self._seen = (known + incoming, at)  # fits by this process's count: no walk
                return []
            files: list[tuple[int, int, Path]] = []  # (mtime, size, path)
            total = 0
            for dirpath, _, names in os.walk(self.root):
                for n in names:
                    path = Path(dirpath) / n
                    try:
                        st = path.stat()
                    except OSError:  # deleted meanwhile (another process)
                        continue
                    if n.startswith("."):  # being written: counted by its own call when it comes in
                        continue
                    total += st.st_size
                    if path != keep:
                        files.append((st.st_mtime_ns, st.st_size, path))
            gone: list[Path] = []
            files.sort()
            for _, size, path in files:
                if total + incoming <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                gone.append(path)
            if gone:
                log.debug("%s: deleted %d least recently used copies to stay within %d MB", self.what, len(gone), self.max_bytes >> 20)
            self._seen = (total + incoming, time.monotonic())
            return gone

    @staticmethod
    def touch(path: Path) -> None:
        """Mark a cached copy as used now (in nanoseconds: the file system's clock may be coarser)."""
        now = time.time_ns()
        os.utime(path, ns=(now, now))


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

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the bytes under ``key`` (to read a large blob in chunks); the
        caller closes it. Raises ``NotFoundError``."""
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

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
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


# --- choosing a blob store from settings -------------------------------------------------------
class BlobRoot(Protocol):
    """Where a store keeps its collections' blobs when they live outside it: one ``BlobStore``
    per collection."""

    url: str

    def collection(self, name: str) -> BlobStore: ...

    def set_aside(self, name: str, key: str) -> str:
        """Move a damaged blob of collection ``name`` out of its way (under ``.damaged/``, which
        no collection name can be); returns where it went."""
        ...


class DirectoryBlobRoot:
    """``<root>/<collection>/<key>`` (``blobs = "/shared/blobs"``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root.resolve()}"

    def collection(self, name: str) -> DirectoryBlobStore:
        from oculi.store.base import validate_collection_name

        return DirectoryBlobStore(self.root / validate_collection_name(name))

    def set_aside(self, name: str, key: str) -> str:
        src = self.collection(name)._path(key)
        dest = self.root / ".damaged" / name / check_key(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        return str(dest)


def parse_blobs_url(target: str | None) -> tuple[str, str]:
    """``(kind, where)`` of a blobs setting: ``("store", "")`` (the store's own: the default),
    ``("dir", path)`` or ``("s3", "bucket/prefix")``.

    Example:
        >>> parse_blobs_url("s3://photos/oculi/prod")
        ('s3', 'photos/oculi/prod')
        >>> parse_blobs_url(None)
        ('store', '')

    Raises:
        InputError: an unknown scheme.
    """
    t = (target or "").strip()
    if not t or t == "store":
        return "store", ""
    if t.startswith("s3://"):
        return "s3", t[len("s3://"):].strip("/")
    if t.startswith("file://"):
        return "dir", t[len("file://"):]
    if "://" in t:
        raise InputError(f"unknown blob store {t.split('://', 1)[0]!r}: use store (the default), a path or s3://bucket/prefix")
    return "dir", t


def open_blob_root(settings: "Settings", url: str | None = None) -> BlobRoot | None:
    """The blob root named by ``url`` or ``settings.blobs``; ``None`` when blobs stay in the
    store (the default).

    Raises:
        InputError: an unknown scheme, or a bucket name or prefix S3 would not take.
    """
    kind, where = parse_blobs_url(url if url is not None else settings.blobs)
    if kind == "store":
        return None
    if kind == "dir":
        return DirectoryBlobRoot(where)
    from oculi.store.s3_blobs import S3BlobRoot

    bucket, _, prefix = where.partition("/")
    return S3BlobRoot(bucket, prefix, endpoint_url=settings.s3_endpoint, cache_dir=settings.home / "cache" / "s3-blobs",
                      cache_bytes=settings.s3_cache_mb << 20)


def repair_blobs(root: BlobRoot, name: str, rep: "RepairReport") -> None:
    """Set aside collection ``name``'s blobs in ``root`` that fail their checksum (the original
    cannot be re-derived; its item stays): recorded in ``rep`` (``lost_originals``, ``actions``,
    and ``before``/``after`` where they lack them)."""
    from dataclasses import replace

    from oculi.store.integrity import CollectionCheck

    where = f"{root.url}/{name}/"
    found = CollectionCheck(name=name, path=where)
    verify_blobs(root.collection(name), found, where=where)
    if rep.before is not None:
        known = {d.path for d in rep.before.damage}
        rep.before = replace(rep.before, damage=[*rep.before.damage, *(d for d in found.damage if d.path not in known)])
    for d in found.damage:
        moved = root.set_aside(name, d.path[len(where):])
        rep.lost_originals.append(d.path)
        rep.actions.append(f"set aside the damaged upload original {d.path} (now {moved})")
    if found.damage and rep.after is not None:
        after = CollectionCheck(name=name, path=where)
        verify_blobs(root.collection(name), after, where=where)
        rep.after = replace(rep.after, damage=[d for d in rep.after.damage if not d.path.startswith(where)] + after.damage)


def verify_blobs(blobs: BlobStore, res: "CollectionCheck", *, hashes: bool = True, where: str = "") -> None:
    """Check the content-addressed blobs of ``blobs`` (the key's file name is the SHA-256 of the
    bytes): each one read and hashed (``hashes``) or only counted. A mismatch is damage of
    kind ``blob`` (not repairable: the original bytes cannot be re-derived; the item keeps its
    caption, vectors and thumbnail)."""
    import hashlib

    from oculi.store.integrity import Damage, FileKind

    for key in blobs.keys():
        stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
        if len(stem) != 64 or any(c not in "0123456789abcdef" for c in stem):
            continue  # not a content-addressed blob
        res.blobs_checked += 1
        if not hashes:
            continue
        h = hashlib.sha256()
        try:
            with blobs.open(key) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    res.bytes_checked += len(chunk)
        except NotFoundError:
            continue  # deleted while we listed
        if h.hexdigest() != stem:
            res.damage.append(Damage(
                where + key, FileKind.BLOB.value, "changed since it was uploaded (checksum mismatch)",
                "the original of an uploaded image; its item (caption, vectors, thumbnail) is intact, the "
                "original bytes cannot be re-derived", None, (), False))
