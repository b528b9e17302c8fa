"""Collections: create, list, delete, browse (items and thumbnails), upload (a job), search.

Every route checks the collection name (``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``, no ``..``) and
the key's collection binding before touching the store, so a key bound to ``A`` gets 403 for
``B`` whether ``B`` exists or not, and no request path ever reaches the filesystem: the store
maps validated names to its own directories, uploads are spooled under names the server
chooses, and item ids must be 32 hex characters.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Sequence

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from oculi.core.errors import InputError, NotFoundError, OculiError
from oculi.library import Library
from oculi.server.auth import Principal, Scope
from oculi.server.job_tables import is_shared_store
from oculi.server.jobs import PENDING, JobQueue, safe_item_name
from oculi.server.limits import HTTPProblem, check_image, parse_json
from oculi.server.state import (
    ERROR_RESPONSES,
    ErrorBody,
    GuardedRoute,
    ServerState,
    check_collection,
    field_int,
    field_str,
    get_state,
    read_upload,
    require,
    run_blocking,
    run_model,
    scrub,
)
from oculi.store.base import CollectionInfo

router = APIRouter(prefix="/api/v1", tags=["collections"], route_class=GuardedRoute, responses=ERROR_RESPONSES)

ITEM_ID_RE = re.compile(r"^[0-9a-f]{32}$")
LIST_COLUMNS = ["id", "name", "caption", "width", "height"]
MAX_TOP_K = 200


# --- the ingestion job's work ---------------------------------------------------------------
def make_job_queue(st: ServerState) -> Any:
    """The server's job queue, ingesting with ``Library.ingest``."""

    def run_chunk(collection: str, items: list[tuple[str, bytes]], should_stop: Any) -> Sequence[Any]:
        progress = lambda p: queue.set_live(getattr(p, "done", 0)) if getattr(p, "phase", "") == "indexing" else None  # noqa: E731
        report = st.library().ingest(collection, items, should_stop=should_stop, progress=progress)
        return [scrub(r, st.settings.home) if isinstance(r, str) else r for r in item_results(report, items)]

    store = st.library().store
    if is_shared_store(store):  # shared by replicas: the queue lives in the store too
        from oculi.server.pg_jobs import PgJobQueue

        queue = PgJobQueue(store, run_chunk, chunk=st.config.job_chunk, nice=st.config.model_nice,
                           lease_s=st.config.job_lease_s)
    else:
        queue = JobQueue(st.settings.home, run_chunk, chunk=st.config.job_chunk, nice=st.config.model_nice)
    return queue


def item_results(report: Any, items: list[tuple[str, bytes]]) -> list[Any]:
    """Per uploaded item: None (stored), an error message, or PENDING (not reached).

    ``Library.ingest`` reports stored uploads in ``report.ids`` under their name, and failures
    in ``report.failed`` under their name (a bad image) or their blob path, which holds the
    content hash (perception failed).
    """
    ids = getattr(report, "ids", {}) or {}
    failed = [(str(f.get("path", "")), str(f.get("error", "failed"))) for f in (getattr(report, "failed", None) or [])]
    interrupted = bool(getattr(report, "interrupted", False))
    out: list[Any] = []
    for name, data in items:
        sha = hashlib.sha256(data).hexdigest()
        err = next((e for p, e in failed if p == name or sha in p), None)
        if err is not None:
            out.append(err.replace(str(name) + ": ", "", 1) if err.startswith(str(name) + ": ") else err)
        elif name in ids:
            out.append(None)
        elif interrupted:
            out.append(PENDING)
        else:
            out.append("not indexed")
    return out


def unique_names(names: list[str]) -> list[str]:
    """Make names unique within one upload: ``a.jpg``, ``a-2.jpg``, ``a-3.jpg``."""
    seen: set[str] = set()
    out = []
    for n in names:
        cand, k = n, 1
        stem, dot, ext = n.rpartition(".")
        if not dot:
            stem, ext = n, ""
        while cand in seen:
            k += 1
            cand = f"{stem}-{k}.{ext}" if dot else f"{stem}-{k}"
        seen.add(cand)
        out.append(cand)
    return out


# --- helpers ----------------------------------------------------------------------------------
def _info_dict(info: CollectionInfo) -> dict[str, Any]:
    d = info.to_dict()
    d.pop("path", None)  # a server-side filesystem path is nobody's business
    return d


def _library(st: ServerState, name: str) -> Library:
    """The library, once ``name`` is known to exist (404 with a plain message otherwise)."""
    lib = st.library()
    if not lib.exists(name):
        raise NotFoundError(f"no collection named {name!r}")
    return lib


class CreateCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, max_length=1000)
    image: str | None = Field(default=None, description="base64 image bytes or a data: URL")
    top_k: int = Field(default=20, ge=1, le=MAX_TOP_K)
    where: list[str] | str | None = None
    after: str | None = None
    before: str | None = None
    path_glob: str | None = Field(default=None, max_length=500)


# --- routes -----------------------------------------------------------------------------------
@router.get("/collections", summary="List collections (those this key may see)")
async def list_collections(request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    infos = await run_blocking(lambda: st.library().collections())
    return {"collections": [_info_dict(i) for i in infos if p.may_see(i.name)]}


@router.post(
    "/collections",
    status_code=201,
    summary="Create a collection",
    description="201 with the new collection; 409 if one of that name already exists (nothing is changed).",
    responses={409: {"model": ErrorBody, "description": "a collection of that name already exists"}},
)
async def create_collection(body: CreateCollection, request: Request, p: Principal = Depends(require(Scope.WRITE))) -> dict[str, Any]:
    st = get_state(request)
    name = check_collection(p, body.name)

    def go() -> Any:
        lib = st.library()
        if lib.exists(name):
            raise HTTPProblem(409, f"collection {name!r} already exists", "conflict_error")
        try:
            return lib.create(name, exist_ok=False)
        except InputError:
            if lib.exists(name):  # created by a concurrent request in between
                raise HTTPProblem(409, f"collection {name!r} already exists", "conflict_error") from None
            raise

    return _info_dict(await run_blocking(go))


@router.get("/collections/{name}", summary="One collection's size and dates")
async def get_collection(name: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)
    return _info_dict(await run_blocking(lambda: _library(st, name).info(name)))


@router.delete("/collections/{name}", summary="Delete a collection and its index (admin)")
async def delete_collection(name: str, request: Request, p: Principal = Depends(require(Scope.ADMIN))) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)
    if st.jobs is not None:
        for j in st.jobs.list(collection=name, limit=1000):
            if j.state in ("queued", "running"):
                st.jobs.cancel(j.id)

    await run_blocking(lambda: _library(st, name).drop(name))
    return {"deleted": name}


@router.get("/collections/{name}/items", summary="Browse a collection's items (for a thumbnail grid)")
async def list_items(
    name: str,
    request: Request,
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(60, ge=1, le=500),
    p: Principal = Depends(require(Scope.READ)),
) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)

    rows, total = await run_blocking(lambda: _library(st, name).items(name, columns=LIST_COLUMNS, offset=offset, limit=limit))
    return {"items": rows, "total": total, "offset": offset, "limit": limit}


def _check_item_id(item_id: str) -> str:
    if not ITEM_ID_RE.fullmatch(item_id):
        raise HTTPProblem(400, "an item id is 32 hexadecimal characters")
    return item_id


@router.get("/collections/{name}/items/{item_id}", summary="One item: caption and observation")
async def get_item(name: str, item_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)
    _check_item_id(item_id)
    cols = ["id", "name", "caption", "width", "height", "format", "time", "labels", "objects", "colours", "text", "observation"]

    def go() -> dict[str, Any]:
        row = _library(st, name).item(name, item_id, columns=cols)
        if row is None:
            raise NotFoundError(f"no item {item_id} in {name!r}")
        obs = row.get("observation")
        if isinstance(obs, str):
            try:
                row["observation"] = json.loads(obs)
            except json.JSONDecodeError:
                pass
        if isinstance(row.get("observation"), dict):
            row["observation"].get("image", {}).pop("path", None)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in row.items()}

    return await run_blocking(go)


@router.get(
    "/collections/{name}/items/{item_id}/thumbnail",
    summary="An item's JPEG thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def thumbnail(name: str, item_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> Response:
    st = get_state(request)
    check_collection(p, name)
    _check_item_id(item_id)
    data = await run_blocking(lambda: _library(st, name).thumbnail(name, item_id))
    if not data:
        raise NotFoundError(f"no thumbnail for item {item_id}")
    # An item id names fixed content, so the browser may keep its thumbnail for an hour; only
    # this client (``private``): the request carried a key.
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/collections/{name}/images",
    status_code=202,
    summary="Upload images into a collection (queued; returns a job)",
    description="multipart/form-data with one or more file fields named `images`. Each file is checked "
    "(image signature, bytes, pixels) before the job is queued; the collection is created if missing.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["images"], "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}}
                }
            },
        }
    },
)
async def upload_images(name: str, request: Request, p: Principal = Depends(require(Scope.WRITE))) -> JSONResponse:
    st = get_state(request)
    check_collection(p, name)
    if st.jobs is None:
        raise HTTPProblem(503, "collections are not available on this server", "service_unavailable")
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise HTTPProblem(415, "send multipart/form-data with file fields named 'images'", "unsupported_media_type")
    max_files = st.config.max_files_per_upload
    try:
        form = await request.form(max_files=max_files, max_fields=10, max_part_size=64 * 1024)
    except HTTPProblem:
        raise
    except Exception as e:  # python-multipart/starlette refusal: too many files, malformed body
        status = getattr(e, "status_code", 400)
        raise HTTPProblem(status if 400 <= status < 500 else 400, f"malformed upload: {getattr(e, 'detail', e)}") from None
    files = [f for k, f in form.multi_items() if k in ("images", "image", "files", "file") and isinstance(f, UploadFile)]
    if not files:
        raise HTTPProblem(400, "no files: send file fields named 'images'")
    items: list[tuple[str, bytes]] = []
    for i, f in enumerate(files):
        data = await read_upload(f, st.settings.max_image_bytes)
        fmt = check_image(data, max_bytes=st.settings.max_image_bytes, max_pixels=st.settings.max_image_pixels, name=f"file {i + 1}")
        items.append((safe_item_name(f.filename, i, fmt), data))
    items = list(zip(unique_names([n for n, _ in items]), [d for _, d in items]))

    def go() -> Any:
        st.library().create(name)
        return st.jobs.submit(name, items, key_id=p.key_id)

    job = await run_blocking(go)
    return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.post(
    "/collections/{name}/search",
    summary="Search a collection by text or by image",
    description="JSON `{text, top_k, where, after, before, path_glob}` (or `image` as base64/data: URL), or "
    "multipart with a file field `image` and the same fields as form fields.",
)
async def search_collection(name: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    image: bytes | None = None
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=20, max_part_size=64 * 1024)
        fields: dict[str, Any] = {}
        for k, v in form.multi_items():
            if isinstance(v, UploadFile):
                if k == "image":
                    image = await read_upload(v, st.settings.max_image_bytes)
            elif k == "where":
                fields.setdefault("where", []).append(v)
            else:
                fields[k] = v
        req = SearchRequest(
            text=field_str(fields, "text", max_len=1000),
            top_k=field_int(fields, "top_k", 20, 1, MAX_TOP_K),
            where=fields.get("where"),
            after=field_str(fields, "after", max_len=64),
            before=field_str(fields, "before", max_len=64),
            path_glob=field_str(fields, "path_glob", max_len=500),
        )
    elif ctype == "application/json":
        try:
            req = SearchRequest.model_validate(parse_json(await request.body()))
        except ValidationError as e:
            first = e.errors()[0] if e.errors() else {}
            loc = ".".join(str(x) for x in first.get("loc", ()))
            raise HTTPProblem(400, f"invalid search request: {loc + ': ' if loc else ''}{first.get('msg', 'invalid')}", param=loc or None) from None
        if req.image:
            from oculi.server.fetch import decode_base64, decode_data_url

            mb = st.settings.max_image_bytes
            image = decode_data_url(req.image, max_bytes=mb) if req.image[:5].lower() == "data:" else decode_base64(req.image, max_bytes=mb)
    else:
        raise HTTPProblem(415, "send application/json or multipart/form-data", "unsupported_media_type")
    if image is not None:
        check_image(image, max_bytes=st.settings.max_image_bytes, max_pixels=st.settings.max_image_pixels)
    text = (req.text or "").strip() or None
    if text is None and image is None:
        raise HTTPProblem(400, "give 'text' or an 'image' to search by")
    where = [req.where] if isinstance(req.where, str) else req.where

    def go() -> Any:
        return _library(st, name).search(
            name, text=text, image=image, top_k=req.top_k, where=where or None,
            after=req.after, before=req.before, path_glob=req.path_glob,
        )

    res = await run_model(st, "search" if image is None else "search_image", go)
    doc = res.to_dict()
    home = str(st.settings.home.resolve())
    for r in doc.get("results", []):
        if _is_server_path(r.get("path"), home):
            r["path"] = None
    return doc


@router.get("/collections/{name}/check", summary="Verify a collection's stored files, versions and indexes (admin)")
async def collection_check(name: str, request: Request, p: Principal = Depends(require(Scope.ADMIN))) -> dict[str, Any]:
    """``oculi collections check NAME``: ``{"ok", "damaged", "collections": [{"status", "damage", ...}]}``.
    Damage is reported with 200 (the check worked); 400 while the collection is being written."""
    st = get_state(request)
    check_collection(p, name)
    rep = await run_blocking(lambda: _library(st, name).check(name))
    doc = rep.to_dict()
    for c in doc["collections"]:
        c.pop("path", None)
    return doc


@router.post("/collections/{name}/repair", summary="Repair a damaged collection; re-index lost items (admin)")
async def collection_repair(name: str, request: Request, p: Principal = Depends(require(Scope.ADMIN))) -> dict[str, Any]:
    """``oculi collections repair NAME``: what was done, what was lost, the check after."""
    st = get_state(request)
    check_collection(p, name)
    rep = await run_model(st, "index", lambda: _library(st, name).repair(name))
    doc = json.loads(scrub(json.dumps(rep.to_dict()), st.settings.home))
    for part in ("before", "after"):
        if doc.get(part):
            doc[part].pop("path", None)
    return doc


def _is_server_path(p: Any, home: str) -> bool:
    """A stored path inside the oculi home (an uploaded blob): not shown to clients."""
    return isinstance(p, str) and (p == home or p.startswith(home.rstrip("/") + "/"))


__all__ = ["router", "make_job_queue", "item_results", "InputError", "OculiError"]
