"""Reports over HTTP: ``POST /api/v1/reports`` (images + records → a job), its state, the file.

``multipart/form-data`` with file fields ``images`` (repeated), an optional ``records`` file
(``.csv``, ``.json``, ``.md``) and form fields ``kind``, ``format``, ``title``, ``inspector``,
``records_encoding``, ``collection``, ``camera``, ``day``, ``tz``, ``model``. Records are parsed
before the job is accepted, so a file that does not parse or an unknown encoding is a 400 at
once, and so is a ``model`` that is not a configured chat model; images are checked like every
upload (415 not an image, 413 too big). The job runs ``Library.report`` (with ``model``, that
model narrates the summary and the claim check keeps only what the evidence supports, as
``oculi report --model``) and writes the report; ``GET /api/v1/reports/{id}/file`` downloads it (a Markdown report comes
as a zip with its annotated images). Jobs are visible to the key that made them (and admins).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile

from oculi.core.errors import InputError, NotFoundError, OculiError
from oculi.server.auth import Principal, Scope
from oculi.server.jobs import safe_item_name
from oculi.server.limits import HTTPProblem, check_image
from oculi.server.report_jobs import EXTENSIONS, MEDIA_TYPES, ReportJob, ReportJobQueue
from oculi.server.state import ERROR_RESPONSES, GuardedRoute, ServerState, check_collection, get_state, require, run_blocking, scrub

router = APIRouter(prefix="/api/v1", tags=["reports"], route_class=GuardedRoute, responses=ERROR_RESPONSES)

MAX_REPORT_FILES = 200
FIELDS = ("kind", "format", "title", "inspector", "records_encoding", "collection", "camera", "day", "tz", "model")


def make_report_queue(st: ServerState) -> ReportJobQueue:
    """The server's report job queue, building reports with ``Library.report``."""

    def run(job: ReportJob, folder: Path, progress: Any) -> dict[str, Any]:
        from oculi.tasks.report import write_report
        from oculi.tasks.report.records import read_records

        o = job.options
        inbox = folder / "in"
        lib = st.library()
        recs = read_records(inbox / o["records_file"], encoding=o.get("records_encoding")) if o.get("records_file") else None
        if recs is not None:
            recs.source = o.get("records_name") or recs.source
        rep = lib.report([str(inbox / n) for n in o["image_files"]], kind=o["kind"], records=recs, inspector=o.get("inspector"),
                         collection=o.get("collection"), camera=o.get("camera"), day=o.get("day"),
                         tz=lib.timezone(o.get("tz")) if o.get("tz") else None, title=o.get("title"), model=o.get("model"),
                         progress=lambda d, t, _stage: progress(d, t))
        for im in rep.images:  # the uploaded name, not the spool path
            im.path = Path(im.path).name
        rep.warnings = [scrub(w.replace(str(inbox) + "/", ""), st.settings.home) for w in rep.warnings]
        fmt = job.format
        if fmt == "md":
            work = folder / "md"
            written = write_report(rep, "md", work / "report.md")
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in written:
                    z.write(p, p.relative_to(work))
            (folder / "report.zip").write_bytes(buf.getvalue())
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            write_report(rep, fmt, folder / f"report.{fmt}")
        conflicts = sum(1 for c in rep.cross_checks if c.status.value == "conflict")
        return {"title": rep.title, "severity": rep.severity.value, "images": len(rep.images), "conflicts": conflicts,
                "warnings": rep.warnings, "rejected_sentences": len(rep.rejected), "model": rep.model,
                "narrator": rep.narrator}

    # with a PostgreSQL store the jobs and their files live in it: any replica runs and serves them
    return ReportJobQueue(st.settings.home, run, store=st.library().store if st.collections else None,
                          lease_s=st.config.job_lease_s)


def _queue(st: ServerState) -> ReportJobQueue:
    if st.report_jobs is None:
        raise HTTPProblem(503, "reports are not available on this server", "service_unavailable")
    return st.report_jobs


def chat_model_names(st: ServerState) -> list[str]:
    """The configured models that chat (``GET /api/v1/models`` lists them with ``chat`` among
    their capabilities): the ones that can narrate a report's summary."""
    from oculi.backends.registry import capabilities_of

    eng = st.engine
    out = []
    for name in eng.models.names() if hasattr(eng, "models") else ():
        try:
            if "chat" in capabilities_of(eng.model(name)):
                out.append(name)
        except OculiError:  # a broken table: `oculi models` says why; it narrates nothing
            continue
    return out


def check_narrator(st: ServerState, name: str) -> None:
    """400 unless ``name`` is a configured model that chats, naming the ones that do; checked at
    submit, so no job is queued only to fail in the worker."""
    chat = chat_model_names(st)
    if name not in chat:
        raise InputError(f"model {name!r} is not a configured chat model, so it cannot narrate the report; "
                         f"configured chat models: {', '.join(chat) or 'none'} (leave model empty for the built-in summary)")


def _visible(st: ServerState, p: Principal, job_id: str) -> ReportJob:
    job = _queue(st).get(job_id)
    if st.auth and p.scope < Scope.ADMIN and job.key_id != p.key_id:
        raise NotFoundError(f"no report job {job_id!r}")
    return job


def _job_dict(st: ServerState, job: ReportJob) -> dict[str, Any]:
    d = job.to_dict()
    if d.get("error"):
        d["error"] = scrub(d["error"], st.settings.home)
    return d


@router.post("/reports", status_code=202, summary="Write a report from images (and records): a job",
             description="multipart/form-data: file fields `images` (repeated) and `records` (optional .csv/.json/.md); "
                         "form fields " + ", ".join(f"`{f}`" for f in FIELDS) + ". Returns a report job; download the "
                         "file from its `download` link when it is done.")
async def create_report_job(request: Request, p: Principal = Depends(require(Scope.READ))) -> JSONResponse:
    from oculi.tasks.report import FORMATS, KINDS
    from oculi.tasks.report.records import parse_records

    st = get_state(request)
    q = _queue(st)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise HTTPProblem(415, "send multipart/form-data with file fields 'images' (and 'records')", "unsupported_media_type")
    try:
        form = await request.form(max_files=MAX_REPORT_FILES + 1, max_fields=20, max_part_size=64 * 1024)
    except HTTPProblem:
        raise
    except Exception as e:  # noqa: BLE001 - too many files, malformed body
        status = getattr(e, "status_code", 400)
        raise HTTPProblem(status if 400 <= status < 500 else 400, f"malformed upload: {getattr(e, 'detail', e)}") from None
    fields = {k: v.strip() for k, v in form.multi_items() if isinstance(v, str) and k in FIELDS}
    kind = fields.get("kind") or "general"
    fmt = (fields.get("format") or "pdf").lower()
    if kind not in KINDS:
        raise InputError(f"unknown report kind {kind!r}; use one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fields.get("collection"):
        check_collection(p, fields["collection"])
        if not st.library().exists(fields["collection"]):
            raise NotFoundError(f"no collection named {fields['collection']!r}")
    if fields.get("model"):
        await run_blocking(check_narrator, st, fields["model"])
    if fields.get("day"):
        from datetime import date

        try:
            date.fromisoformat(fields["day"])
        except ValueError:
            raise InputError(f"day {fields['day']!r} is not a date (YYYY-MM-DD)") from None
    files = [f for k, f in form.multi_items() if k in ("images", "image") and isinstance(f, UploadFile)]
    if not files:
        raise InputError("no images: send file fields named 'images'")
    if len(files) > MAX_REPORT_FILES:
        raise HTTPProblem(413, f"{len(files)} images; a report takes at most {MAX_REPORT_FILES}", "request_too_large")
    images = []
    seen: set[str] = set()
    for i, f in enumerate(files):
        data = await f.read(st.settings.max_image_bytes + 1)
        fmt_i = check_image(data, max_bytes=st.settings.max_image_bytes, max_pixels=st.settings.max_image_pixels,
                            name=f"image {i + 1}")
        name = safe_item_name(f.filename, i, fmt_i)
        if name in seen:
            stem, ext = os.path.splitext(name)
            name = f"{stem}-{i + 1}{ext}"
        seen.add(name)
        images.append((name, data))
    records = None
    rec = form.get("records")
    if isinstance(rec, UploadFile):
        from oculi.tasks.report.records import MAX_RECORDS_BYTES

        data = await rec.read(MAX_RECORDS_BYTES + 1)
        rname = safe_item_name(rec.filename, 0, "csv")
        parse_records(data, rname, encoding=fields.get("records_encoding"))  # 400 now, not a failed job later
        records = (rname, data)
    opts = {"kind": kind, "format": fmt, **{k: fields[k] for k in FIELDS if k not in ("kind", "format") and fields.get(k)}}
    if records is not None:
        opts["records_name"] = records[0]
    job = await run_blocking(q.submit, images, records, opts, key_id=p.key_id)
    return JSONResponse(_job_dict(st, job), status_code=202, headers={"Location": f"/api/v1/reports/{job.id}"})


@router.get("/reports", summary="Recent report jobs (yours; all for an admin)")
async def list_report_jobs(request: Request, limit: int = Query(50, ge=1, le=200),
                           p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    jobs = await run_blocking(_queue(st).list, limit=limit)
    mine = [j for j in jobs if not st.auth or p.scope >= Scope.ADMIN or j.key_id == p.key_id]
    return {"jobs": [_job_dict(st, j) for j in mine]}


@router.get("/reports/{job_id}", summary="A report job's state and progress")
async def get_report_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    return _job_dict(st, await run_blocking(_visible, st, p, job_id))


@router.delete("/reports/{job_id}", summary="Cancel a report job")
async def cancel_report_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    await run_blocking(_visible, st, p, job_id)
    return _job_dict(st, await run_blocking(_queue(st).cancel, job_id))


@router.get("/reports/{job_id}/file", summary="Download a finished report (pdf, html, json; md as a zip)")
async def download_report(job_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> Any:
    st = get_state(request)
    job = await run_blocking(_visible, st, p, job_id)
    if job.state != "done":
        raise HTTPProblem(409, f"report job {job_id} is {job.state}, not done" + (f": {scrub(job.error, st.settings.home)}"
                                                                                  if job.error else ""), "conflict")
    path = _queue(st).report_file(job)
    if not path.is_file():
        raise NotFoundError(f"the file of report job {job_id} is gone")
    ext = EXTENSIONS[job.format]
    return FileResponse(path, media_type=MEDIA_TYPES[job.format], filename=f"report-{job_id}.{ext}")
