"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage...), through ``boto3``.

``blobs = "s3://bucket/prefix"`` (``OCULI_BLOBS``, ``oculi --blobs``) keeps each collection's
uploads as objects ``prefix/<collection>/<key>``, keys content-addressed as everywhere
(``ab/<sha256>.jpg``, ``videos/<sha256>.mp4``). Every replica and every store (embedded or
PostgreSQL) that names the same bucket sees the same uploads.

- ``put`` asks first (``HEAD``) and writes only what is not there: same key, same bytes.
- ``put_stream`` is a multipart upload (``upload_fileobj``) above 16 MB, in 16 MB parts, so a
  video is never held in memory; what it sends is also written to the local cache, so the
  decoder of an uploaded video does not download it again.
- ``local_path`` downloads once into ``OCULI_HOME/cache/s3-blobs/…`` (a temporary file, its
  SHA-256 compared with the key, then renamed into place), for readers that need a file (the
  video decoder). A copy that does not match the key is refused (``StoreCorruptError``).
- The cache holds at most ``Settings.s3_cache_mb`` (``OCULI_S3_CACHE_MB``, default 2048 MB) for
  all buckets: before a file comes in, the least recently used copies (by modification time,
  set anew on every use) are deleted until it fits. The file a call is about to return is never
  deleted for it (one larger than the whole bound is still kept, alone); a copy deleted while
  another process reads it stays readable to that reader (POSIX). The bucket keeps every blob:
  the cache is only a copy, fetched again when needed.
- Errors: a missing object is ``NotFoundError``; a server that does not answer, a bucket
  that does not exist, credentials it refuses are ``StoreUnavailableError`` naming the bucket
  and the endpoint (exit 7, HTTP 503); no botocore traceback reaches a user.

The endpoint is ``Settings.s3_endpoint`` (``OCULI_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``; path-
style addressing when one is set, as MinIO wants); credentials and region come from the
standard AWS chain. Timeouts are short (5 s to connect) and retries few (3, standard mode), so
a bucket that is down is reported in seconds rather than minutes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, TypeVar

from oculi.core.errors import InputError, NotFoundError, StoreCorruptError, StoreUnavailableError
from oculi.store.base import validate_collection_name
from oculi.store.blobs import KEY_RE, CacheBound, check_key

log = logging.getLogger(__name__)

T = TypeVar("T")

#: S3 bucket names: 3–63 lowercase letters, digits, dots and hyphens (the AWS rules, which MinIO follows).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: Multipart above this size, in parts of this size (S3's minimum part is 5 MB).
MULTIPART_BYTES = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 3
#: The download cache is walked (its files counted) when a new copy would not fit by this
#: process's own count, or when the last walk is this old (other processes add copies too).
#: A walk takes ~50 ms per 5,000 files (2-core Xeon).
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}


def _check_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix and (".." in prefix or not all(KEY_RE.fullmatch(p) for p in prefix.split("/"))):
        raise InputError(f"invalid S3 prefix {prefix!r}: parts of letters, digits, '_', '.', '-', none starting with a dot")
    return prefix


class S3BlobRoot:
    """One bucket and prefix; ``collection(name)`` is that collection's ``S3BlobStore``. The
    client is made once, on first use (importing boto3 takes a third of a second), and shared
    by every collection's store and thread (boto3 clients are thread-safe).

    Args:
        bucket: The bucket (it must exist: oculi does not create buckets).
        prefix: Objects go under ``prefix/<collection>/``; may be empty.
        endpoint_url: An S3-compatible server (``http://minio:9000``); ``None``: AWS (or
            whatever the AWS configuration names).
        cache_dir: Where ``local_path`` keeps downloaded copies (those of every bucket: each
            root keeps its own below it).
        cache_bytes: The most the copies under ``cache_dir`` may take up (least recently used
            ones are deleted to make room); ``None``: no bound.
        client: A ready ``boto3`` S3 client (tests, custom sessions).

    Raises:
        InputError: a bucket name or prefix S3 would not take.

    Example:
        >>> root = S3BlobRoot("photos", "oculi/prod", endpoint_url="http://127.0.0.1:9000", cache_dir=Path("/tmp/c"))
        >>> root.collection("holiday").location("ab/abcd.jpg")
        's3://photos/oculi/prod/holiday/ab/abcd.jpg'
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, cache_dir: Path | str,
                 cache_bytes: int | None = None, client: Any = None) -> None:
        if not BUCKET_RE.fullmatch(bucket or "") or ".." in bucket:
            raise InputError(f"invalid S3 bucket name {bucket!r}: 3-63 lowercase letters, digits, '.' and '-' "
                             "(blobs = \"s3://bucket/prefix\")")
        self.bucket = bucket
        self.prefix = _check_prefix(prefix)
        self.endpoint_url = endpoint_url or None
        self.url = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        ident = f"{self.endpoint_url or 'aws'}|{self.url}"
        self.cache_root = Path(cache_dir)
        self.cache_dir = self.cache_root / hashlib.sha256(ident.encode()).hexdigest()[:12]
        self.cache = CacheBound(self.cache_root, cache_bytes, "S3 blob cache")
        self._client = client
        self._lock = threading.Lock()

    def collection(self, name: str) -> "S3BlobStore":
        return S3BlobStore(self, validate_collection_name(name))

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - a dependency of oculi
            raise StoreUnavailableError("S3 blobs need boto3: pip install 'boto3>=1.34,<2'") from None
        cfg = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                     retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                     s3={"addressing_style": "path"} if self.endpoint_url else {})
        session = boto3.session.Session()
        region = session.region_name or "us-east-1"
        return session.client("s3", endpoint_url=self.endpoint_url, region_name=region, config=cfg)

    @property
    def cache_bytes(self) -> int | None:
        return self.cache.max_bytes

    @cache_bytes.setter
    def cache_bytes(self, value: int | None) -> None:
        self.cache.max_bytes = None if value is None else max(0, int(value))

    def set_aside(self, name: str, key: str) -> str:
        """Copy a damaged object to ``prefix/.damaged/<collection>/<key>`` and delete it."""
        src = self.collection(name)._obj(key)
        dest = (f"{self.prefix}/" if self.prefix else "") + f".damaged/{name}/{check_key(key)}"
        self.call("set a damaged blob aside", lambda: self.client.copy_object(
            Bucket=self.bucket, Key=dest, CopySource={"Bucket": self.bucket, "Key": src}))
        self.call("set a damaged blob aside", lambda: self.client.delete_object(Bucket=self.bucket, Key=src))
        return f"s3://{self.bucket}/{dest}"

    def where(self) -> str:
        """The bucket and the endpoint, for messages."""
        ep = self.endpoint_url or (self._client.meta.endpoint_url if self._client is not None else "AWS")
        return f"{self.url} at {ep}"

    def call(self, what: str, fn: Callable[[], T], *, missing: str | None = None) -> T:
        """Run one S3 request; its errors as oculi errors (see the module doc).

        ``missing``: the message of the ``NotFoundError`` for a missing object (else it is
        re-raised as the botocore error, for ``exists``)."""
        from botocore import exceptions as bx

        try:
            return fn()
        except bx.ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            if code in _NOT_FOUND and missing is not None:
                raise NotFoundError(missing) from None
            if code == "NoSuchBucket":
                raise StoreUnavailableError(f"the bucket of the blob store {self.where()} does not exist: create it "
                                            f"(aws s3 mb s3://{self.bucket}, mc mb ...) or fix blobs = ...") from None
            if code in _REFUSED:
                raise StoreUnavailableError(f"the blob store {self.where()} refused the credentials ({code}) to {what}: "
                                            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE and the "
                                            "bucket's policy") from None
            if code in _NOT_FOUND:
                raise
            raise StoreUnavailableError(f"the blob store {self.where()} failed to {what}: {code} "
                                        f"{err.get('Message', '')}".rstrip()) from None
        except bx.NoCredentialsError:
            raise StoreUnavailableError(f"no S3 credentials for the blob store {self.where()}: set AWS_ACCESS_KEY_ID "
                                        "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)") from None
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionClosedError,
                bx.HTTPClientError) as e:
            raise StoreUnavailableError(f"cannot reach the blob store {self.where()} to {what} "
                                        f"({type(e).__name__}); is the S3 server up? The endpoint comes from "
                                        "OCULI_S3_ENDPOINT or AWS_ENDPOINT_URL") from None
        except bx.BotoCoreError as e:
            raise StoreUnavailableError(f"the blob store {self.where()} failed to {what}: {e}") from None


class S3BlobStore:
    """One collection's blobs in an ``S3BlobRoot`` (see the module doc)."""

    def __init__(self, root: S3BlobRoot, name: str) -> None:
        self.root = root
        self.name = name
        self.base = (f"{root.prefix}/" if root.prefix else "") + f"{name}/"

    def _obj(self, key: str) -> str:
        return self.base + check_key(key)

    def location(self, key: str) -> str:
        return f"s3://{self.root.bucket}/{self._obj(key)}"

    def exists(self, key: str) -> bool:
        from botocore import exceptions as bx

        obj = self._obj(key)
        try:
            self.root.call("look up a blob", lambda: self.root.client.head_object(Bucket=self.root.bucket, Key=obj))
        except bx.ClientError:  # only a 404 comes back here
            return False
        return True

    def put(self, key: str, data: bytes) -> str:
        obj = self._obj(key)
        if not self.exists(key):  # content-addressed: what is there is these bytes
            self.root.call("store a blob", lambda: self.root.client.put_object(
                Bucket=self.root.bucket, Key=obj, Body=bytes(data)))
        return self.location(key)

    def put_stream(self, key: str, stream: BinaryIO) -> str:
        from boto3.s3.transfer import TransferConfig

        obj = self._obj(key)
        if self.exists(key):
            return self.location(key)
        cfg = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES, max_concurrency=4)
        # the bytes also go to the local cache as they are read: a video uploaded to be decoded
        # here is not downloaded again (local_path finds it)
        dest = self._cache_path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tee = _Tee(stream, dest.parent / f".up-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.root.call("upload a blob", lambda: self.root.client.upload_fileobj(tee, self.root.bucket, obj, Config=cfg))
            tee.out.close()
            if _content_hash(key) in (None, tee.sha.hexdigest()):
                self.root.cache.make_room(tee.tmp.stat().st_size, keep=dest)
                os.replace(tee.tmp, dest)
                CacheBound.touch(dest)
        finally:
            tee.out.close()
            tee.tmp.unlink(missing_ok=True)
        return self.location(key)

    def open(self, key: str) -> BinaryIO:
        obj = self._obj(key)
        resp = self.root.call("read a blob", lambda: self.root.client.get_object(Bucket=self.root.bucket, Key=obj),
                              missing=f"no blob {key!r} in collection {self.name!r} ({self.root.url})")
        return _Body(resp["Body"], self.root, key, int(resp.get("ContentLength") or 0))

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def delete(self, key: str) -> None:
        obj = self._obj(key)
        self.root.call("delete a blob", lambda: self.root.client.delete_object(Bucket=self.root.bucket, Key=obj))
        (self._cache_path(key)).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        pages = self.root.call("list blobs", lambda: iter(self.root.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.root.bucket, Prefix=self.base + prefix)))
        while True:
            page = self.root.call("list blobs", lambda: next(pages, None))
            if page is None:
                return
            for o in page.get("Contents", []):
                k = o["Key"][len(self.base):]
                if KEY_RE.fullmatch(k) and ".." not in k:  # objects others put there that are no blob key: skipped
                    yield k

    def _cache_path(self, key: str) -> Path:
        return self.root.cache_dir / self.name / check_key(key)

    def local_path(self, key: str) -> Path:
        dest = self._cache_path(key)
        if dest.is_file():
            with contextlib.suppress(OSError):  # deleted meanwhile to make room: fetched again below
                CacheBound.touch(dest)  # used now: the last to be deleted
                return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".dl-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        h = hashlib.sha256()
        try:
            with self.open(key) as src, open(tmp, "wb") as out:
                self.root.cache.make_room(src.size, keep=dest)
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            if _content_hash(key) not in (None, h.hexdigest()):
                raise StoreCorruptError(f"the blob {self.location(key)} does not match its checksum (changed since it "
                                        f"was uploaded); oculi collections check {self.name} lists it",
                                        collection=self.name)
            os.replace(tmp, dest)
            CacheBound.touch(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest



def _content_hash(key: str) -> str | None:
    """The SHA-256 a content-addressed key names (its file name's stem), else None."""
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem) else None


class _Tee:
    """A read-only stream (no ``seek``: s3transfer then reads it once, in order) that copies
    what is read into ``tmp`` and hashes it."""

    def __init__(self, src: BinaryIO, tmp: Path) -> None:
        self.src = src
        self.tmp = tmp
        self.out = open(tmp, "wb")
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self.src.read(n)
        self.sha.update(chunk)
        self.out.write(chunk)
        return chunk


class _Body:
    """A ``get_object`` body as a binary stream whose read errors are oculi errors."""

    def __init__(self, body: Any, root: S3BlobRoot, key: str, size: int = 0) -> None:
        self._body = body
        self._root = root
        self._key = key
        self.size = size  # bytes, as the server announced them

    def read(self, n: int = -1) -> bytes:
        from botocore import exceptions as bx

        try:
            return self._body.read(None if n is None or n < 0 else n)
        except (bx.BotoCoreError, OSError) as e:
            raise StoreUnavailableError(f"reading the blob {self._key!r} from {self._root.where()} failed "
                                        f"({type(e).__name__})") from None

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> "_Body":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
