"""The oculi HTTP server: ``create_app(settings, engine=None, *, auth=True) -> FastAPI``.

One ``Engine`` per process, warmed up in a background thread at startup (``/readyz`` says
when); model calls run in two lanes of worker threads (``oculi.server.lanes``): image models
at most ``inference_concurrency`` at a time and at a lower OS priority, text search and text
embeddings in a lane of their own, so the event loop keeps answering and search never
queues behind image work. Every endpoint except ``/healthz`` and ``/readyz`` (and the static
UI shell and API docs, which hold no data) needs an API key unless the app is built with
``auth=False`` (``oculi serve --no-auth``, loopback only).

Errors are JSON ``{"error": {"message", "type"}}`` everywhere (the OpenAI shape, also for the
REST API); an unexpected failure is a 500 with no detail in the body.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from oculi import __version__ as oculi_version
from oculi.config import Settings
from oculi.core.errors import InputError, OculiError
from oculi.server.auth import Principal, Scope, open_keys
from oculi.server.config import ServerConfig
from oculi.server.lanes import Lane, Lanes
from oculi.server.limits import BodySizeLimitMiddleware, HTTPProblem, RateLimiter, input_error_status
from oculi.server.metrics import Metrics
from oculi.server.state import ERROR_RESPONSES, ServerState, get_state, require, scrub

log = logging.getLogger("oculi.server")

HERE = Path(__file__).parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


# ----------------------------------------------------------------------------------------------
class GuardMiddleware:
    """Pure ASGI: metrics, security headers, the Host check (no-auth) and the Origin check.

    * Without auth, only loopback ``Host`` headers are served, so a DNS-rebinding page cannot
      drive the server through a victim's browser.
    * A state-changing request whose ``Origin`` is neither this server nor an allowed CORS
      origin is refused (CSRF), whatever the auth mode.
    """

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        method = scope.get("method", "GET")
        refusal = None
        if not st.auth and _host_name(host) not in {h.lower() for h in st.config.allowed_hosts}:
            refusal = (403, f"host {host!r} is not served without auth; connect via 127.0.0.1 or localhost")
        origin = headers.get("origin")
        if refusal is None and origin and method not in SAFE_METHODS:
            o = origin.rstrip("/")
            same = o.split("://", 1)[-1].lower() == host.lower()
            if not same and o not in st.config.cors_origins:
                refusal = (403, "cross-origin request refused")
        path = scope.get("path", "")
        t0 = time.perf_counter()
        status_holder = {"status": 500}
        html = not path.startswith(("/api/", "/v1/", "/metrics", "/healthz", "/readyz", "/openapi.json"))

        async def send_wrapped(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status_holder["status"] = msg["status"]
                hs = list(msg.get("headers") or [])
                hs += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                if html:
                    hs.append((b"content-security-policy", CSP.encode()))
                # API answers are not cached unless the route says otherwise (thumbnails do)
                if not path.startswith("/static/") and not any(k.lower() == b"cache-control" for k, _ in hs):
                    hs.append((b"cache-control", b"no-store"))
                msg = {**msg, "headers": hs}
            await send(msg)

        st.metrics.inflight += 1
        try:
            if refusal is not None:
                resp = JSONResponse({"error": {"message": refusal[1], "type": "permission_error"}}, status_code=refusal[0])
                await resp(scope, receive, send_wrapped)
            else:
                await self.app(scope, receive, send_wrapped)
        finally:
            st.metrics.inflight -= 1
            route = scope.get("route")
            tmpl = getattr(route, "path", None) or ("/static" if path.startswith("/static/") else "unmatched")
            st.metrics.observe_request(method, tmpl, status_holder["status"], time.perf_counter() - t0)


def _host_name(host: str) -> str:
    h = host.strip().lower()
    if h.startswith("["):
        return h.split("]", 1)[0] + "]"
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


# ----------------------------------------------------------------------------------------------
def _body(message: str, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_}}


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 409: "conflict_error", 413: "request_too_large", 415: "unsupported_media_type",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable", 504: "timeout_error",
          507: "insufficient_storage"}


def _validation_message(first: dict[str, Any]) -> tuple[str, str | None]:
    """A client-facing message and ``param`` for FastAPI's first validation error."""
    loc = [str(x) for x in first.get("loc", ())]
    kind = first.get("type", "")
    if kind == "json_invalid":  # FastAPI's own parser (normally ``GuardedRoute`` parses first)
        detail = (first.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON{': ' + detail if detail else ''}", None
    if loc == ["body"] and kind == "missing":
        return "a JSON request body is required", None
    param = ".".join(x for x in (loc[1:] if loc[:1] == ["body"] else loc))
    msg = str(first.get("msg", "invalid request"))
    return (f"{param}: {msg}" if param else msg), (param or None)


def _install_error_handlers(app: FastAPI) -> None:
    def respond(request: Request, status: int, body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
        if request.url.path.startswith("/v1/"):  # the OpenAI error object always has param and code
            body["error"].setdefault("param", None)
            body["error"].setdefault("code", None)
        return JSONResponse(body, status_code=status, headers=headers or None)

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, e: HTTPProblem) -> JSONResponse:
        return respond(request, e.status, e.body(), e.headers)

    @app.exception_handler(OculiError)
    async def _oculi(request: Request, e: OculiError) -> JSONResponse:
        status = input_error_status(e) if isinstance(e, InputError) else getattr(e, "http_status", 500)
        if status >= 500:
            log.warning("%s on %s: %s", type(e).__name__, request.url.path, e)
        msg = scrub(str(e), get_state(request).settings.home) if status < 500 or status in (502, 503, 507) \
            else "internal error"
        return respond(request, status, _body(msg, _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        msg, param = _validation_message(errs[0] if errs else {})
        return respond(request, 400, {"error": {"message": msg, "type": "invalid_request_error", "param": param}})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        body = _body(str(e.detail), _TYPES.get(e.status_code, "invalid_request_error"))
        return respond(request, e.status_code, body, getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(request, 500, _body("internal error", "server_error"))


# ----------------------------------------------------------------------------------------------
def _library_factory(engine: Any, settings: Settings, store_factory: Any) -> Any:
    """How the server opens its ``Library``: ``"default"`` the store of ``settings``, a callable
    the store it returns, None no collections."""
    if store_factory is None:
        return None

    def factory() -> Any:
        from oculi.library import Library

        return Library(engine, None if store_factory == "default" else store_factory(), settings=settings)

    return factory


def create_app(
    settings: Settings | None = None,
    engine: Any = None,
    *,
    auth: bool = True,
    config: ServerConfig | None = None,
    store_factory: Any = "default",
    warmup: bool = True,
    start_jobs: bool = True,
) -> FastAPI:
    """Build the FastAPI app.

    Args:
        settings: Core settings (home, image limits); ``Settings()`` when omitted.
        engine: An ``Engine`` (or a test double with the same methods); built from ``settings``
            when omitted.
        auth: Require API keys. ``False`` serves everyone as admin: only for loopback (the CLI
            refuses otherwise, and the app then only answers loopback ``Host`` headers).
        config: Server limits (``ServerConfig()`` from the environment when omitted).
        store_factory: A callable opening the collection store; ``"default"`` uses
            ``oculi.store.open_store(settings)``; ``None`` disables collections.
        warmup: Load the models at startup (in a background thread; ``/readyz`` reports).
        start_jobs: Start the ingestion worker (resuming unfinished jobs).
    """
    settings = settings or Settings()
    config = config or ServerConfig()
    if engine is None:
        from oculi.engine import Engine

        engine = Engine(settings)
    keys = open_keys(settings) if auth else None
    state = ServerState(
        settings=settings,
        config=config,
        engine=engine,
        auth=auth,
        keys=keys,
        limiter=RateLimiter(config.rate_per_minute, config.rate_burst),
        fail_limiter=RateLimiter(60.0, 20),
        metrics=Metrics(),
        library_factory=_library_factory(engine, settings, store_factory),
    )
    from oculi.server import routes_collections

    if state.collections:
        state.jobs = routes_collections.make_job_queue(state)
        from oculi.server import routes_footage

        state.footage_jobs = routes_footage.make_footage_queue(state)
    from oculi.server import routes_reports

    state.report_jobs = routes_reports.make_report_queue(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        n = config.inference_concurrency or (os.cpu_count() or 1)
        state.lanes = Lanes(n, config.light_concurrency, config.model_nice)
        if state.collections:
            # open the store from a normal-priority thread before the (lower-priority)
            # ingestion worker can: the threads the store's runtime starts inherit priority
            await state.lanes.run(Lane.LIGHT, _open_store_quietly, state)
        if warmup:
            threading.Thread(target=_warm, args=(state,), name="oculi-warmup", daemon=True).start()
        else:
            state.ready = True
        if state.jobs is not None and start_jobs:
            state.jobs.start()
        if state.footage_jobs is not None and start_jobs:
            state.footage_jobs.start()
        if state.report_jobs is not None and start_jobs:
            state.report_jobs.start()
        try:
            yield
        finally:
            if state.jobs is not None:
                await anyio.to_thread.run_sync(state.jobs.stop)
            if state.footage_jobs is not None:
                await anyio.to_thread.run_sync(state.footage_jobs.stop)
            if state.report_jobs is not None:
                await anyio.to_thread.run_sync(state.report_jobs.stop)
            state.lanes.shutdown()

    app = FastAPI(
        title="oculi",
        version=oculi_version,
        description=(
            "Private, offline vision-language API: caption, ask, detect, read, classify; collections "
            "with search; an OpenAI-compatible face under /v1. Authenticate with `Authorization: Bearer <key>` "
            "(create one with `oculi keys create`)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.oculi = state
    state.metrics.gauges["oculi_ready"] = lambda: 1.0 if state.ready else 0.0
    if state.jobs is not None:
        for s in ("queued", "running", "done", "failed", "cancelled"):
            state.metrics.gauges[f"oculi_jobs_{s}"] = (lambda s=s: state.jobs.counts().get(s, 0))

    _install_error_handlers(app)
    _install_routes(app, state)

    # middleware: the last added is outermost
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(GuardMiddleware, state=state)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_request_bytes)
    return app


WARMUP_TEXTS = ["warm up"]


def _open_store_quietly(state: ServerState) -> None:
    try:
        state.library().collections()
    except Exception as e:  # the routes report it when they need the store
        log.warning("collections store did not open: %s", e)


def _warm(state: ServerState) -> None:
    """Load the models, each in the lane that will run it, so their thread pools get its priority."""
    t0 = time.perf_counter()
    lanes = state.lanes
    try:
        if lanes is None:
            state.engine.warmup()
        else:
            lanes.submit(Lane.LIGHT, state.engine.embed_texts, WARMUP_TEXTS).result()
            lanes.submit(Lane.MODEL, state.engine.warmup).result()
        state.ready = True
        state.warmup_seconds = time.perf_counter() - t0
        log.info("models warm in %.1f s", state.warmup_seconds)
    except OculiError as e:
        state.ready_error = f"{type(e).__name__}: {e}"
        log.error("warm-up failed: %s", e)
    except Exception as e:  # an import error while perception is missing, say
        state.ready_error = f"{type(e).__name__}: {e}"
        log.exception("warm-up failed")


def _install_routes(app: FastAPI, state: ServerState) -> None:
    from oculi.server import openai_compat, routes_collections, routes_jobs, routes_vision

    templates = Jinja2Templates(directory=str(HERE / "templates"))

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: the models are loaded", responses={503: {"description": "loading or failed"}})
    async def readyz() -> JSONResponse:
        if state.ready:
            return JSONResponse({"status": "ready"})
        if state.ready_error:
            kind = state.ready_error.split(":", 1)[0]
            hint = " (run `oculi models pull`)" if kind == "ModelAssetError" else ""
            return JSONResponse({"status": "error", "message": f"models failed to load: {kind}{hint}"}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503)

    auth_errors = {k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403, 429)}
    # a plain-text route's errors are still JSON: say so, or the schema would claim text/plain
    json_errors = {k: {"description": v["description"], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
                   for k, v in auth_errors.items()}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (admin key)", response_class=PlainTextResponse, responses=json_errors)
    async def metrics(_: Principal = Depends(require(Scope.ADMIN))) -> PlainTextResponse:
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/whoami", tags=["auth"], summary="The calling key's scope and collection", responses=auth_errors)
    async def whoami(p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
        # ``scopes``: every scope the key holds, so a client (the web UI) offers only what will work
        scopes = [str(s) for s in Scope if p.can(s)]
        return {**p.to_dict(), "scopes": scopes, "auth": state.auth, "collections": state.collections}

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def ui(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "index.html", {"auth": state.auth, "version": oculi_version})

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "docs.html", {"spec": app.openapi(), "version": oculi_version})

    app.include_router(routes_vision.router)
    app.include_router(routes_collections.router)
    app.include_router(routes_jobs.router)
    from oculi.server import routes_footage

    app.include_router(routes_footage.router)
    from oculi.server import routes_reports

    app.include_router(routes_reports.router)
    from oculi.server import routes_inspect

    app.include_router(routes_inspect.router)
    app.include_router(openai_compat.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


__all__ = ["create_app", "get_state"]
