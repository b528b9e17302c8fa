"""Request limits: body size (before reading), image sniffing and size, per-key rate limits.

* ``BodySizeLimitMiddleware`` refuses a request whose ``Content-Length`` is over the limit
  with 413 before a byte of the body is read, and cuts off a chunked body the moment it
  passes the limit (413 as well).
* ``check_image`` sniffs the first bytes (``oculi.imageio.sniff_format``): only the signatures
  of the formats the loader decodes pass — JPEG, PNG, GIF, WebP, BMP, TIFF and HEIC/HEIF —
  (415 otherwise). The client's Content-Type is never trusted.
* ``check_image`` adds the byte limit (413) and reads the image header to refuse too many
  pixels (413) before anything is decoded.
* ``parse_json`` reads a JSON body with the errors a client can act on: not JSON (where),
  nested deeper than ``MAX_JSON_DEPTH``, or text that is not Unicode (a lone surrogate such as
  ``"\\ud800"``, which no encoder downstream could take) -- each a 400, never a 500.
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
        exceeded = False
        started = False

        async def limited_receive() -> dict:
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return msg

        async def guarded_send(msg: dict) -> None:
            # Once the body went over the limit, whatever the app answers (a parser that
            # caught the exception and says 400, a generic 500) is replaced by the 413.
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await self._reply(send, 413, f"request body is over the limit of {limit:,} bytes", "request_too_large")
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
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
# JSON bodies
MAX_JSON_DEPTH = 64  # no request oculi takes nests deeper than 6; Python's parser recurses


def parse_json(body: bytes) -> Any:
    """A request body as JSON, or ``HTTPProblem(400)`` saying what is wrong with it.

    Refuses an empty body, malformed JSON (with line and column), nesting deeper than
    ``MAX_JSON_DEPTH`` and strings that are not valid Unicode (lone surrogates); ``param``
    names the top-level field that held the bad string.
    """
    if not body or not body.strip():
        raise HTTPProblem(400, "the request body is empty; send a JSON object")
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise HTTPProblem(400, f"the request body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError:
        raise HTTPProblem(400, "the request body is not valid UTF-8 JSON") from None
    except RecursionError:
        raise HTTPProblem(400, f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    check_json_value(doc)
    return doc


def check_json_value(doc: Any) -> None:
    """Depth and Unicode checks over a parsed JSON value (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int, str | None]] = [(doc, 1, None)]
    while stack:
        v, depth, top = stack.pop()
        if isinstance(v, str):
            _check_text(v, top)
        elif isinstance(v, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise HTTPProblem(400, f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
            if isinstance(v, dict):
                for k, x in v.items():
                    key_top = top if top is not None else (k if depth == 1 else None)
                    _check_text(k, key_top)
                    stack.append((x, depth + 1, key_top))
            else:
                stack.extend((x, depth + 1, top) for x in v)


def _check_text(s: str, param: str | None) -> None:
    if s.isascii():
        return
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        where = f"'{param}'" if param else "a string"
        raise HTTPProblem(400, f"{where} contains an unpaired surrogate (such as \\ud800); text must be valid Unicode",
                          param=param) from None


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
