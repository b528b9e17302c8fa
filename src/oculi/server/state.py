"""What every route shares: the server state, the auth dependencies, model calls, image input."""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio
from fastapi import Depends, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from oculi.config import Settings
from oculi.core.errors import InputError
from oculi.library import Library
from oculi.store.base import validate_collection_name
from oculi.server.auth import ANONYMOUS_ADMIN, KeyStore, Principal, Scope
from oculi.server.config import ServerConfig
from oculi.server.fetch import decode_base64, decode_data_url
from oculi.server.lanes import Lane, Lanes
from oculi.server.limits import HTTPProblem, RateLimiter, check_image, parse_json
from oculi.server.metrics import Metrics


@dataclass
class ServerState:
    settings: Settings
    config: ServerConfig
    engine: Any
    auth: bool
    keys: KeyStore | None
    limiter: RateLimiter
    fail_limiter: RateLimiter
    metrics: Metrics
    lanes: Lanes | None = None  # created at startup (oculi.server.lanes)
    jobs: Any = None  # JobQueue, once collections are available
    footage_jobs: Any = None  # FootageJobQueue, likewise
    report_jobs: Any = None  # ReportJobQueue (oculi.server.report_jobs)
    ready: bool = False
    ready_error: str | None = None
    library_factory: Callable[[], Library] | None = None  # None: collections are off
    _library: Library | None = None
    _library_lock: threading.Lock = field(default_factory=threading.Lock)
    warmup_seconds: float | None = None

    @property
    def collections(self) -> bool:
        """Whether this server serves collections."""
        return self.library_factory is not None

    def library(self) -> Library:
        """Collections through the one front door, opened on first use (503 when they are off)."""
        with self._library_lock:
            if self._library is None:
                if self.library_factory is None:
                    raise HTTPProblem(503, "collections are not available on this server", "service_unavailable")
                self._library = self.library_factory()
            return self._library


_COLLECTION_LIST_RE = re.compile(r"\s*\(collections: [^)]*\)")


def scrub(message: str, home: Any) -> str:
    """An error message fit for a client: no server paths, no list of other collections."""
    msg = _COLLECTION_LIST_RE.sub("", str(message))
    for h in {str(home), str(getattr(home, "resolve", lambda: home)())}:
        if h and h != ".":
            msg = msg.replace(h.rstrip("/") + "/", "").replace(h, "<home>")
    return msg


def get_state(request: Request) -> ServerState:
    return request.app.state.oculi


class ErrorDetail(BaseModel):
    message: str = Field(description="what went wrong and, where it helps, how to fix it")
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, not_found_error, "
                      "conflict_error, request_too_large, unsupported_media_type, rate_limit_error, timeout_error, "
                      "service_unavailable, server_error")
    param: str | None = Field(default=None, description="the request field at fault (always present on /v1)")
    code: str | None = Field(default=None, description="a machine-readable code where there is one (always present on /v1)")


class ErrorBody(BaseModel):
    """Every error the server sends, REST and ``/v1`` alike (the OpenAI error object)."""

    error: ErrorDetail


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _err("bad input: malformed JSON or field, unreadable image"),
    401: _err("no key, or an invalid or revoked one"),
    403: _err("the key's scope or collection does not allow it, or a cross-origin write"),
    404: _err("no such collection, item, job or model"),
    413: _err("body, image bytes or pixels over the limit"),
    415: _err("not an image, or an unsupported content type"),
    429: _err("rate limited (see Retry-After)"),
    503: _err("models not loaded, or collections not available"),
}
"""The errors every API route may answer, documented in the OpenAPI schema."""


class JSONRequest(Request):
    """A request whose ``json()`` is ``oculi.server.limits.parse_json``: clear 400s, no RecursionError."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class GuardedRoute(APIRoute):
    """Every API route: JSON bodies are parsed (and refused) by ``parse_json`` before FastAPI sees them.

    FastAPI turns any error while parsing a body into a generic 400, and a JSON syntax error
    into ``"10: JSON decode error"``; parsing here first gives the client the real reason.
    """

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            req = JSONRequest(request.scope, request.receive)
            ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
            if req.method in ("POST", "PUT", "PATCH") and (ctype == "application/json" or ctype.endswith("+json")):
                if await req.body():  # an empty body is the route's to refuse ("body is required")
                    await req.json()
            return await handler(req)

        return guarded


bearer = HTTPBearer(auto_error=False, description="An oculi API key (`oculi keys create`), sent as `Authorization: Bearer <key>`.")


def client_id(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
    """Who is calling (401 without a valid key), after the per-key rate limit (429)."""
    st = get_state(request)
    if not st.auth:
        p = ANONYMOUS_ADMIN
        bucket = "ip:" + client_id(request)
    else:
        p_or_none = st.keys.verify(creds.credentials) if (creds is not None and st.keys is not None) else None
        if p_or_none is None:
            wait = st.fail_limiter.take("fail:" + client_id(request))
            if wait > 0:
                raise HTTPProblem(429, "too many failed authentications; slow down", "rate_limit_error", {"Retry-After": str(math.ceil(wait))})
            msg = "missing API key: send Authorization: Bearer <key>" if creds is None else "invalid or revoked API key"
            raise HTTPProblem(401, msg, "authentication_error", {"WWW-Authenticate": "Bearer"})
        p = p_or_none
        bucket = "key:" + p.key_id
    wait = st.limiter.take(bucket)
    if wait > 0:
        raise HTTPProblem(429, f"rate limit exceeded; retry in {math.ceil(wait)} s", "rate_limit_error", {"Retry-After": str(math.ceil(wait))})
    request.state.principal = p
    return p


def require(scope: Scope) -> Callable[..., Any]:
    """A dependency: the caller's key must have at least ``scope`` (403 otherwise)."""

    async def dep(p: Principal = Depends(principal)) -> Principal:
        if not p.can(scope):
            raise HTTPProblem(403, f"this key has scope {p.scope}; {scope} is needed", "permission_error")
        return p

    dep.__name__ = f"require_{scope}"
    return dep


def check_collection(p: Principal, name: str) -> str:
    """A valid collection name the key may touch: 400 for a bad name, 403 outside its binding."""
    try:
        valid = validate_collection_name(name) == name  # exactly: no blanks trimmed off a URL's name
    except InputError:
        valid = False
    if not valid:
        raise HTTPProblem(400, "a collection name is 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    if not p.may_see(name):
        raise HTTPProblem(403, "this key is not allowed to access that collection", "permission_error")
    return name


LIGHT_TASKS = frozenset({"search", "embed_text"})
"""Tasks of the light lane; every other model task (image models, image search) is in the model lane."""


async def run_model(st: ServerState, task: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking model call in its lane (``oculi.server.lanes``) and time it.

    Image models (caption, ask, detect, read, classify, image embeddings, image search) run in
    the model lane, at most ``inference_concurrency`` at once and at a lower OS priority; text
    search and text embeddings run in the light lane, so they never wait behind image work.
    """
    t0 = time.perf_counter()
    lane = Lane.LIGHT if task in LIGHT_TASKS else Lane.MODEL
    try:
        if st.lanes is None:  # outside the app's lifespan (tests calling routes directly)
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        return await st.lanes.run(lane, fn, *args, **kwargs)
    finally:
        st.metrics.observe_model(task, time.perf_counter() - t0)


async def run_blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


# ----------------------------------------------------------------------------------------------
# image input: multipart (field "image") or JSON ({"image": base64 | data: URL})
def image_request_body(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` documenting an image endpoint's two request encodings."""
    req = ["image", *required]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": req, "properties": {"image": {"type": "string", "format": "binary"}, **props}}
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": req,
                        "properties": {"image": {"type": "string", "description": "base64 image bytes, or a data: URL"}, **props},
                    }
                },
            },
        }
    }


async def read_upload(f: UploadFile, max_bytes: int) -> bytes:
    data = await f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPProblem(413, f"{f.filename or 'image'}: over the limit of {max_bytes:,} bytes", "request_too_large")
    return data


async def read_image_input(request: Request, st: ServerState) -> tuple[bytes, dict[str, Any]]:
    """The image bytes (checked: 415/413/400) and the other fields of an image request."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    max_bytes = st.settings.max_image_bytes
    fields: dict[str, Any] = {}
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=20, max_part_size=64 * 1024)
        img = form.get("image")
        if not isinstance(img, UploadFile):
            raise HTTPProblem(400, "multipart request needs a file field named 'image'")
        data = await read_upload(img, max_bytes)
        for k, v in form.multi_items():
            if k != "image" and isinstance(v, str):
                fields[k] = v
    elif ctype == "application/json":
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            raise HTTPProblem(400, "JSON body must be an object")
        raw = body.pop("image", None)
        if not isinstance(raw, str) or not raw:
            raise HTTPProblem(400, "JSON body needs 'image': base64 bytes or a data: URL")
        if raw[:5].lower() == "data:":
            data = decode_data_url(raw, max_bytes=max_bytes)
        else:
            data = decode_base64(raw, max_bytes=max_bytes)
        fields = body
    else:
        raise HTTPProblem(415, "send multipart/form-data (field 'image') or application/json ({\"image\": base64})", "unsupported_media_type")
    check_image(data, max_bytes=max_bytes, max_pixels=st.settings.max_image_pixels)
    return data, fields


def field_bool(fields: dict[str, Any], name: str, default: bool = False) -> bool:
    v = fields.get(name, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def field_float(fields: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    v = fields.get(name, default)
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise HTTPProblem(400, f"'{name}' must be a number") from None
    if not (lo <= x <= hi) or math.isnan(x):
        raise HTTPProblem(400, f"'{name}' must lie in [{lo}, {hi}]")
    return x


def field_int(fields: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    v = fields.get(name, default)
    try:
        x = int(v)
    except (TypeError, ValueError):
        raise HTTPProblem(400, f"'{name}' must be an integer") from None
    if not lo <= x <= hi:
        raise HTTPProblem(400, f"'{name}' must lie in [{lo}, {hi}]")
    return x


def field_str(fields: dict[str, Any], name: str, *, required: bool = False, max_len: int = 2000) -> str | None:
    v = fields.get(name)
    if v is None or v == "":
        if required:
            raise HTTPProblem(400, f"'{name}' is required")
        return None
    if not isinstance(v, str):
        raise HTTPProblem(400, f"'{name}' must be a string")
    if len(v) > max_len:
        raise HTTPProblem(400, f"'{name}' is {len(v)} characters; the limit is {max_len}")
    return v
