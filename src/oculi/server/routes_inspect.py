"""``POST /api/v1/inspect``: inspect uploaded images with a fitted inspector (``oculi inspect``).

``multipart/form-data`` with one or more file fields ``image`` (up to ``MAX_IMAGES``), a field
``name`` (the inspector, fitted with ``oculi inspect fit``) and optionally ``heatmaps=true``
(each result's ``heatmap`` is then the overlay PNG as a ``data:`` URL). The body is the JSON
``oculi inspect --json`` prints (schema ``oculi.inspect/1``); an image that cannot be decoded
or is shaped unlike the good images is listed under ``errors`` and the others are inspected.
Scope: read.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile

from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.server.auth import Principal, Scope
from oculi.server.limits import HTTPProblem
from oculi.server.state import ERROR_RESPONSES, GuardedRoute, field_bool, field_str, get_state, read_upload, require, run_model

router = APIRouter(prefix="/api/v1", tags=["inspection"], route_class=GuardedRoute, responses=ERROR_RESPONSES)

MAX_IMAGES = 16


def _inspect(settings: Any, name: str, images: list[tuple[str, Any]], heatmaps: bool) -> dict[str, Any]:
    from oculi.draw import heatmap_overlay
    from oculi.tasks.inspect import SCHEMA, inspect_images

    errors: list[tuple[str, str]] = []
    results = inspect_images(images, name, settings=settings, errors=errors)
    docs = []
    by_name = dict(images)
    for r in results:
        d = r.to_dict()
        if heatmaps:
            buf = io.BytesIO()
            heatmap_overlay(by_name[r.path], r.heatmap, [g.box for g in r.regions], floor=r.threshold).save(buf, format="PNG")
            d["heatmap"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        docs.append(d)
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "model": name, "results": docs,
            "errors": [{"path": p, "error": m} for p, m in errors]}


@router.post(
    "/inspect",
    summary="Inspect images for defects",
    description="Per image: anomaly score, pass/fail against the inspector's calibrated threshold, defect regions "
                "with boxes, and a one-line finding. Fit the inspector first with `oculi inspect fit`.",
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image", "name"],
        "properties": {"image": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": MAX_IMAGES},
                       "name": {"type": "string", "description": "the inspector's name"},
                       "heatmaps": {"type": "boolean", "default": False}}}}}}},
)
async def inspect(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    from oculi.imageio import load_image_bytes

    st = get_state(request)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise HTTPProblem(415, "send multipart/form-data with file fields 'image' and a field 'name'", "unsupported_media_type")
    form = await request.form(max_files=MAX_IMAGES, max_fields=10, max_part_size=64 * 1024)
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    name = field_str(fields, "name", required=True, max_len=64)
    heatmaps = field_bool(fields, "heatmaps")
    uploads = [v for k, v in form.multi_items() if k == "image" and isinstance(v, UploadFile)]
    if not uploads:
        raise HTTPProblem(400, "send one or more file fields named 'image'")
    images, bad = [], []
    for i, f in enumerate(uploads):
        label = f.filename or f"image-{i + 1}"
        data = await read_upload(f, st.settings.max_image_bytes)
        try:
            images.append((label, load_image_bytes(data, name=label, max_bytes=st.settings.max_image_bytes,
                                                   max_pixels=st.settings.max_image_pixels).image))
        except InputError as e:
            bad.append({"path": label, "error": str(e)})
    if not images:
        raise HTTPProblem(400, "no image could be decoded: " + "; ".join(b["error"] for b in bad))
    doc = await run_model(st, "inspect", _inspect, st.settings, name, images, heatmaps)
    doc["errors"] = bad + doc["errors"]
    return doc
