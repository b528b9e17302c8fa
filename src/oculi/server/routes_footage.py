"""Footage over HTTP: watch a video (upload, or register a path/stream), sources, events,
questions, reports, and the timeline the web UI draws.

Uploading a video needs the ``write`` scope; registering a server path or a stream URL needs
``admin`` (it makes the server read a file or reach a camera on its network). Every route
checks the collection name and the key's binding first, like the collection routes. Times in
query strings are ISO 8601 (an offset, or ``tz``); bodies and answers use the JSON of the CLI.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from oculi.core.errors import InputError, NotFoundError
from oculi.core.types import SCHEMA_VERSION
from oculi.server.auth import Principal, Scope
from oculi.server.footage_jobs import UPLOAD_PREFIX, FootageJobQueue
from oculi.server.limits import HTTPProblem
from oculi.server.state import (
    ERROR_RESPONSES,
    GuardedRoute,
    ServerState,
    check_collection,
    get_state,
    require,
    run_blocking,
    scrub,
)
from oculi.store.blobs import content_key

router = APIRouter(prefix="/api/v1", tags=["footage"], route_class=GuardedRoute, responses=ERROR_RESPONSES)

SOURCE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
VIDEO_MAGIC = (b"ftyp", b"\x1aE\xdf\xa3", b"RIFF", b"\x00\x00\x01\xba", b"G", b"FLV", b"0&\xb2u")


class WatchBody(BaseModel):
    """What to watch and how (the fields of ``oculi watch``)."""

    model_config = ConfigDict(extra="forbid")
    source: str | None = Field(None, max_length=4096, description="A server path or stream URL (admin only).")
    camera: str = Field(min_length=1, max_length=128)
    start: str | None = Field(None, max_length=64, description="ISO time the footage starts.")
    zones: list[str] = Field(default_factory=list, max_length=32)
    zone_names: list[str] = Field(default_factory=list, max_length=32)
    loiter_after: str = "30s"
    crowd: int = Field(5, ge=0, le=1000)
    fps: float = Field(2.0, gt=0, le=60)
    lost_after: str = "4s"
    tz: str | None = Field(None, max_length=64)


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=1000)
    now: str | None = Field(None, max_length=64)
    tz: str | None = Field(None, max_length=64)


def _tz(st: ServerState, name: str | None) -> Any:
    return st.library().timezone(name)


def _instant(text: str | None, tz: Any, name: str) -> float | None:
    from oculi.tasks.footage.zones import parse_instant

    return None if text is None else parse_instant(text, tz, name=name)


def _open(st: ServerState, name: str) -> Any:
    lib = st.library()
    if not lib.exists(name):
        raise NotFoundError(f"no collection named {name!r}")
    return lib.open(name)


def _queue(st: ServerState) -> FootageJobQueue:
    if st.footage_jobs is None:
        raise HTTPProblem(503, "footage is not available on this server", "service_unavailable")
    return st.footage_jobs


def make_footage_queue(st: ServerState) -> FootageJobQueue:
    """The server's footage job queue, watching with ``watch_source``."""

    def run(job: Any, should_stop: Any, progress: Any) -> dict[str, Any]:
        from oculi.tasks.footage.watch import WatchOptions

        o = job.options
        opts = WatchOptions(camera=job.camera, start=o.get("start"), zones=o.get("zones", []), zone_names=o.get("zone_names", []),
                            loiter_after=o.get("loiter_after"), crowd_min=o.get("crowd_min"), sample_fps=o.get("sample_fps", 2.0),
                            lost_after=o.get("lost_after", 4.0), collection=job.collection)
        lib = st.library()
        uri = job.source
        if uri.startswith(UPLOAD_PREFIX):  # an upload: read from the store (a local copy where it is remote)
            uri = str(lib.store.blobs(job.collection).local_path(uri[len(UPLOAD_PREFIX):]))
        rep = lib.watch(uri, opts, should_stop=should_stop, progress=lambda p: progress(p.t, p.duration))
        doc = rep.to_dict()
        doc["source"] = {k: v for k, v in doc["source"].items() if k != "uri"}
        return doc

    # with a PostgreSQL store the jobs live in it: every replica lists them and the free one runs them
    return FootageJobQueue(st.settings.home, run, store=st.library().store, lease_s=st.config.job_lease_s)


def _job_dict(st: ServerState, job: Any) -> dict[str, Any]:
    from oculi.tasks.footage.video import is_stream, redact_url

    shown = redact_url(job.source) if is_stream(job.source) else os.path.basename(job.source)
    d = job.to_dict(show_source=shown)
    if d.get("error"):
        d["error"] = scrub(d["error"], st.settings.home)
    return d


def _watch_options(body: WatchBody, tz: Any) -> dict[str, Any]:
    from oculi.tasks.footage.zones import build_zones, parse_duration

    for z in body.zones:  # checked now (400) rather than when the job runs
        build_zones([z], [], width=10**6, height=10**6, loiter_after=None)
    return {"start": _instant(body.start, tz, "start"), "zones": body.zones, "zone_names": body.zone_names,
            "loiter_after": parse_duration(body.loiter_after, name="loiter_after") or None,
            "crowd_min": body.crowd or None, "sample_fps": body.fps, "lost_after": parse_duration(body.lost_after, name="lost_after")}


@router.post("/collections/{name}/footage", status_code=202, summary="Watch a video: upload one, or register a path/stream (admin)",
             description="multipart/form-data with a file field `video` and the WatchBody fields as form fields "
                         "(`zones` repeated), or JSON WatchBody with `source` (admin). Returns a footage job.")
async def watch_footage(name: str, request: Request, p: Principal = Depends(require(Scope.WRITE))) -> JSONResponse:
    st = get_state(request)
    check_collection(p, name)
    q = _queue(st)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            body = WatchBody.model_validate_json(await request.body())
        except ValueError as e:
            raise HTTPProblem(400, f"malformed body: {str(e)[:300]}") from None
        if not body.source:
            raise HTTPProblem(400, "'source' is required (or upload a file as multipart field 'video')")
        if p.scope < Scope.ADMIN:
            raise HTTPProblem(403, "registering a server path or stream URL needs an admin key; upload the video instead",
                              "permission_error")
        from oculi.tasks.footage.video import is_stream

        if not is_stream(body.source) and not Path(body.source).is_absolute():
            raise HTTPProblem(400, "'source' must be an absolute server path or a stream URL")
        opts = _watch_options(body, _tz(st, body.tz))

        def go_register() -> Any:
            st.library().create(name, exist_ok=True)
            return q.submit(name, body.source, body.camera.strip(), opts, key_id=p.key_id)

        job = await run_blocking(go_register)
        return JSONResponse(_job_dict(st, job), status_code=202, headers={"Location": f"/api/v1/footage/jobs/{job.id}"})
    if ctype != "multipart/form-data":
        raise HTTPProblem(415, "send multipart/form-data (file field 'video') or application/json with 'source'",
                          "unsupported_media_type")
    try:
        form = await request.form(max_files=1, max_fields=80, max_part_size=64 * 1024)
    except Exception as e:  # noqa: BLE001 - malformed multipart
        raise HTTPProblem(400, f"malformed upload: {getattr(e, 'detail', e)}") from None
    video = form.get("video")
    if not isinstance(video, UploadFile):
        raise HTTPProblem(400, "multipart request needs a file field named 'video'")
    fields: dict[str, Any] = {"zones": [], "zone_names": []}
    for k, v in form.multi_items():
        if isinstance(v, str) and k in ("zones", "zone_names"):
            fields[k].append(v)
        elif isinstance(v, str) and k != "video":
            fields[k] = v
    try:
        body = WatchBody.model_validate(fields)
    except ValueError as e:
        raise HTTPProblem(400, f"malformed fields: {str(e)[:300]}") from None
    opts = _watch_options(body, _tz(st, body.tz))
    head = await video.read(64)
    if not any(m in head[:12] for m in VIDEO_MAGIC):
        raise HTTPProblem(415, "the 'video' file is not a video container oculi recognises (MP4/MOV, MKV/WebM, AVI, MPEG-TS/PS, FLV, WMV)",
                          "unsupported_media_type")
    await video.seek(0)

    def go_upload() -> Any:
        lib = st.library()
        lib.create(name, exist_ok=True)
        blobs = lib.store.blobs(name)
        h = hashlib.sha256()
        video.file.seek(0)
        while chunk := video.file.read(1 << 20):
            h.update(chunk)
        ext = (os.path.splitext(video.filename or "")[1].lower() or ".bin")[:8]
        key = content_key(h.hexdigest(), ext, folder="videos")
        video.file.seek(0)
        blobs.put_stream(key, video.file)
        # the key, not a path: the replica that claims the job reads the video from the store
        return q.submit(name, UPLOAD_PREFIX + key, body.camera.strip(), opts, key_id=p.key_id)

    job = await run_blocking(go_upload)
    return JSONResponse(_job_dict(st, job), status_code=202, headers={"Location": f"/api/v1/footage/jobs/{job.id}"})


def _visible_job(st: ServerState, p: Principal, job_id: str) -> Any:
    job = _queue(st).get(job_id)
    if not p.may_see(job.collection):
        raise NotFoundError(f"no footage job {job_id!r}")
    return job


@router.get("/footage/jobs", summary="Recent footage jobs")
async def list_footage_jobs(request: Request, collection: str | None = Query(None, max_length=64),
                            p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    if collection is not None:
        check_collection(p, collection)
    elif p.collection is not None:
        collection = p.collection
    jobs = await run_blocking(_queue(st).list, collection=collection)
    return {"jobs": [_job_dict(st, j) for j in jobs]}


@router.get("/footage/jobs/{job_id}", summary="A footage job's state and progress")
async def get_footage_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    return _job_dict(st, await run_blocking(_visible_job, st, p, job_id))


@router.post("/footage/jobs/{job_id}/cancel", summary="Stop a footage job (it checkpoints; watching again resumes)")
async def cancel_footage_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.WRITE))) -> dict[str, Any]:
    st = get_state(request)
    await run_blocking(_visible_job, st, p, job_id)
    return _job_dict(st, await run_blocking(_queue(st).cancel, job_id))


@router.get("/collections/{name}/sources", summary="Watched sources (files and streams)")
async def list_sources(name: str, request: Request, tz: str | None = Query(None, max_length=64),
                       p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)
    zone_tz = _tz(st, tz)

    def go() -> list[dict[str, Any]]:
        _open(st, name)
        return [dict(s.to_dict(zone_tz), uri=os.path.basename(s.uri) if s.kind == "file" else s.uri)
                for s in st.library().sources(name)]

    return {"schema_version": SCHEMA_VERSION, "sources": await run_blocking(go)}


@router.get("/collections/{name}/events", summary="Footage events, oldest first")
async def list_events(name: str, request: Request, camera: str | None = Query(None, max_length=128),
                      after: str | None = Query(None, max_length=64), before: str | None = Query(None, max_length=64),
                      type: list[str] = Query([]), zone: str | None = Query(None, max_length=64),
                      label: str | None = Query(None, max_length=64), source: str | None = Query(None, max_length=32),
                      limit: int = Query(1000, ge=1, le=10_000), tz: str | None = Query(None, max_length=64),
                      p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    from oculi.store.records import EventType

    st = get_state(request)
    check_collection(p, name)
    zone_tz = _tz(st, tz)
    bad = [t for t in type if t not in {e.value for e in EventType}]
    if bad:
        raise InputError(f"unknown event type {bad[0]!r}; use {', '.join(e.value for e in EventType)}")

    def go() -> list[dict[str, Any]]:
        _open(st, name)
        evs = st.library().events(name, camera=camera, types=type or None, zone=zone, labels=[label] if label else None,
                          source_id=source, after=_instant(after, zone_tz, "after"), before=_instant(before, zone_tz, "before"),
                          limit=limit)
        return [e.to_dict(zone_tz) for e in evs]

    return {"schema_version": SCHEMA_VERSION, "events": await run_blocking(go)}


@router.post("/collections/{name}/footage/ask", summary="Answer a question about the footage, with evidence")
async def ask_footage(name: str, body: AskBody, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    check_collection(p, name)
    zone_tz = _tz(st, body.tz)
    now = datetime.fromtimestamp(_instant(body.now, zone_tz, "now"), zone_tz) if body.now else datetime.now(zone_tz)
    def go() -> Any:
        _open(st, name)
        return st.library().ask_footage(name, body.question, now=now, tz=zone_tz)

    ans = await run_blocking(go)
    return ans.to_dict(zone_tz)


@router.get("/collections/{name}/footage/report", summary="A day of one camera as a report (json, md, html or pdf)")
async def footage_report(name: str, request: Request, camera: str = Query(..., max_length=128),
                         day: str = Query(..., max_length=10), format: str = Query("json", pattern="^(json|md|html|pdf)$"),
                         tz: str | None = Query(None, max_length=64), p: Principal = Depends(require(Scope.READ))) -> Response:
    from oculi.tasks.footage.render import annotated_keyframe, to_html, to_markdown

    st = get_state(request)
    check_collection(p, name)
    zone_tz = _tz(st, tz)
    try:
        the_day = date.fromisoformat(day)
    except ValueError:
        raise InputError(f"day {day!r} is not a date (YYYY-MM-DD)") from None

    def go() -> Response:
        import base64

        coll = _open(st, name)
        rep = st.library().footage_report(name, camera, the_day, tz=zone_tz, tz_name=tz)
        if format == "json":
            return JSONResponse(rep.to_dict())
        thumbs = {k["id"]: f"/api/v1/collections/{name}/items/{k['id']}/thumbnail" for k in rep.keyframes}
        if format == "md":
            return Response(to_markdown(rep, zone_tz, thumbs), media_type="text/markdown; charset=utf-8")
        images = {k["id"]: "data:image/jpeg;base64," + base64.b64encode(annotated_keyframe(coll, k)).decode() for k in rep.keyframes}
        html = to_html(rep, zone_tz, images)
        if format == "pdf":
            from oculi.tasks.report.render import html_to_pdf

            return Response(html_to_pdf(html), media_type="application/pdf")
        return Response(html, media_type="text/html; charset=utf-8")

    return await run_blocking(go)


@router.get("/collections/{name}/sources/{source_id}/timeline", summary="A source's events, tracks and keyframes (the web UI's timeline)")
async def source_timeline(name: str, source_id: str, request: Request, tz: str | None = Query(None, max_length=64),
                          p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    from oculi.store.records import iso_time

    st = get_state(request)
    check_collection(p, name)
    if not SOURCE_ID_RE.fullmatch(source_id):
        raise NotFoundError(f"no source {source_id!r}")
    zone_tz = _tz(st, tz)

    def go() -> dict[str, Any]:
        _open(st, name)
        t = st.library().timeline(name, source_id)
        s = t["source"]
        return {"schema_version": SCHEMA_VERSION,
                "source": dict(s.to_dict(zone_tz), uri=os.path.basename(s.uri) if s.kind == "file" else s.uri),
                "events": [e.to_dict(zone_tz) for e in t["events"]], "tracks": [x.to_dict(zone_tz) for x in t["tracks"]],
                "keyframes": [dict(k, time=iso_time(k["time"], zone_tz), time_ts=k["time"]) for k in t["keyframes"]]}

    return await run_blocking(go)
