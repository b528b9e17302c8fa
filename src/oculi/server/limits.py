"""Request limits: body size (before reading), image sniffing and size, per-key rate limits.

* ``BodySizeLimitMiddleware`` refuses a request whose ``Content-Length`` is over the limit
  with 413 before a byte of the body is read, and cuts off a chunked body the moment it
  passes the limit (413 as well).
* ``check_image`` sniffs the first bytes (``oculi.imageio.sniff_format``): only the signatures
  of the formats the loader decodes pass — JPEG, PNG, GIF, WebP, BMP, TIFF and HEIC/HEIF —
  (415 otherwise). The client's Content-Type is never trusted.
* ``check_image`` adds the byte limit (413) and reads the image header to refuse too many
  pixels (413) before anything is decoded.
* ``RateLimiter`` is a token bucket per key: ``rate_per_minute`` sustained, ``burst`` at once;
  over it, 429 with ``Retry-After``.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from oculi.core.errors import InputError
from oculi.imageio import SUPPORTED_NAMES, sniff_format


class HTTPProblem(Exception):
    """An error with an HTTP status, raised by server code and rendered as JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.headers = headers or {}
        self.param = param
        self.code = code

    def body(self) -> dict:
        err: dict = {"message": self.message, "type": self.type}
        if self.param is not None:
            err["param"] = self.param
        if self.code is not None:
            err["code"] = self.code
        return {"error": err}


# ----------------------------------------------------------------------------------------------
# body size
class _BodyTooLarge(Exception):
    pass


def _json_error(status: int, message: str, type_: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_}}).encode()


class BodySizeLimitMiddleware:
    """Pure ASGI middleware: 413 for a body over ``max_bytes`` without reading it all."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                await self._reply(send, 400, "Content-Length is not a number", "invalid_request_error")
                return
            if n > limit:
                await self._reply(send, 413, f"request body of {n:,} bytes is over the limit of {limit:,}", "request_too_large")
                return

        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return msg

        async def tracking_send(msg: dict) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reply(send, 413, f"request body is over the limit of {limit:,} bytes", "request_too_large")

    @staticmethod
    async def _reply(send: Any, status: int, message: str, type_: str) -> None:
        body = _json_error(status, message, type_)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------------------------
# image sniffing
def check_image(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "image") -> str:
    """Refuse what is not an image (415), too big (413) or has too many pixels (413).

    Only the header is parsed here; the engine decodes later with the same limits.
    """
    if not data:
        raise HTTPProblem(400, f"{name}: empty upload")
    if len(data) > max_bytes:
        raise HTTPProblem(413, f"{name}: {len(data):,} bytes is over the limit of {max_bytes:,}", "request_too_large")
    fmt = sniff_format(data)
    if fmt is None:
        raise HTTPProblem(415, f"{name}: not an image (accepted: {SUPPORTED_NAMES})", "unsupported_media_type")
    from PIL import Image

    try:
        Image.MAX_IMAGE_PIXELS = None  # our limit below replaces PIL's global one
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Exception:
        raise HTTPProblem(400, f"{name}: image is corrupt or unreadable") from None
    if w * h > max_pixels:
        raise HTTPProblem(413, f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}", "request_too_large")
    return fmt


# ----------------------------------------------------------------------------------------------
# rate limits
@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by caller id. ``rate_per_minute <= 0`` turns it off."""

    def __init__(self, rate_per_minute: float, burst: int, *, clock: Any = time.monotonic, max_keys: int = 10_000) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = max(1, int(burst))
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; returns 0 when allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:  # bound memory: drop the stalest
                    oldest = min(self._buckets, key=lambda k: self._buckets[k].stamp)
                    del self._buckets[oldest]
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
            if b.tokens >= cost:
                b.tokens -= cost
                return 0.0
            return (cost - b.tokens) / self.rate


def input_error_status(e: InputError) -> int:
    """400 by default; 413 for the core loader's size and pixel limits."""
    msg = str(e)
    if "over the limit" in msg:
        return 413
    if "not an image" in msg or "unsupported image format" in msg:
        return 415
    return getattr(e, "http_status", 400)
