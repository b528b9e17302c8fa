"""Image tasks on one uploaded image: caption, ask, detect, read, classify.

Each endpoint takes either ``multipart/form-data`` with a file field ``image`` (and the other
fields as form fields) or ``application/json`` with ``image`` as base64 or a ``data:`` URL.
The answer is the same JSON the CLI prints with ``--json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from oculi.tasks.ask import MAX_QUESTION_CHARS
from oculi.server.auth import Principal, Scope
from oculi.server.state import (
    ERROR_RESPONSES,
    GuardedRoute,
    field_bool,
    field_float,
    field_str,
    get_state,
    image_request_body,
    read_image_input,
    require,
    run_blocking,
    run_model,
)

router = APIRouter(prefix="/api/v1", tags=["images"], route_class=GuardedRoute, responses=ERROR_RESPONSES)


@router.post(
    "/caption",
    summary="Caption an image",
    description="One grounded caption, and the observation it was written from (objects with boxes, labels, text read, colours).",
    openapi_extra=image_request_body({"detailed": {"type": "boolean", "default": False}}),
)
async def caption(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    data, fields = await read_image_input(request, st)
    detailed = field_bool(fields, "detailed")
    res = await run_model(st, "caption", st.engine.caption, data, detailed=detailed)
    return res.to_dict()


@router.post(
    "/ask",
    summary="Ask a question about an image",
    description="An answer with confidence and evidence; says so when perception cannot tell.",
    openapi_extra=image_request_body({"question": {"type": "string", "maxLength": MAX_QUESTION_CHARS}}, ("question",)),
)
async def ask(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    data, fields = await read_image_input(request, st)
    question = field_str(fields, "question", required=True, max_len=MAX_QUESTION_CHARS)
    res = await run_model(st, "ask", st.engine.ask, data, question)
    return res.to_dict()


@router.post(
    "/detect",
    summary="Detect objects",
    description="Objects with label, score, box [x1, y1, x2, y2] in pixels, and colour.",
    openapi_extra=image_request_body({"min_score": {"type": "number", "minimum": 0, "maximum": 1, "default": 0}}),
)
async def detect(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    data, fields = await read_image_input(request, st)
    min_score = field_float(fields, "min_score", 0.0, 0.0, 1.0)
    res = await run_model(st, "detect", st.engine.detect, data, min_score=min_score)
    return res.to_dict()


@router.post(
    "/read",
    summary="Read the text (OCR)",
    description="Text lines with boxes, and the text in reading order.",
    openapi_extra=image_request_body({}),
)
async def read(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    data, _fields = await read_image_input(request, st)
    res = await run_model(st, "read", st.engine.read, data)
    return res.to_dict()


@router.post(
    "/classify",
    summary="Zero-shot classification over your labels",
    description="Scores for the labels you give (comma-separated string, or a JSON list), best first.",
    openapi_extra=image_request_body(
        {"labels": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}], "description": "e.g. \"cat,dog,car\""}},
        ("labels",),
    ),
)
async def classify(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    data, fields = await read_image_input(request, st)
    labels = fields.get("labels")
    if isinstance(labels, list):
        if not all(isinstance(x, str) for x in labels):
            from oculi.server.limits import HTTPProblem

            raise HTTPProblem(400, "'labels' must be strings")
    else:
        labels = field_str(fields, "labels", required=True, max_len=10_000)
    res = await run_model(st, "classify", st.engine.classify, data, labels)
    return res.to_dict()


@router.get(
    "/models",
    summary="The configured models",
    description="Every configured model (oculi.toml) with its backend type, capabilities, what it serves and, with "
                "health=true, whether it loads or its server answers; which model serves each capability; the backend "
                "types installed. The same JSON as `oculi models --json`, without the built-in asset list.",
    tags=["models"],
)
async def models(request: Request, health: bool = False, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    from oculi.core.types import SCHEMA_VERSION

    st = get_state(request)
    listing = await run_blocking(st.engine.list_models, health=health)
    return {"schema_version": SCHEMA_VERSION, **listing}
