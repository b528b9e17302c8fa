"""Jobs: status and progress of ingestion jobs, and cancelling them.

A key bound to a collection sees only that collection's jobs; any other job id is a 404,
so job ids of other collections cannot be probed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from oculi.core.errors import NotFoundError
from oculi.server.auth import Principal, Scope
from oculi.server.limits import HTTPProblem
from oculi.server.state import ERROR_RESPONSES, GuardedRoute, ServerState, check_collection, get_state, require, run_blocking, scrub

router = APIRouter(prefix="/api/v1", tags=["jobs"], route_class=GuardedRoute, responses=ERROR_RESPONSES)


def _queue(st: ServerState) -> Any:
    if st.jobs is None:
        raise HTTPProblem(503, "collections are not available on this server", "service_unavailable")
    return st.jobs


def _public(st: ServerState, job: Any) -> dict[str, Any]:
    d = job.to_dict()
    if d.get("error"):
        d["error"] = scrub(d["error"], st.settings.home)
    d["errors"] = [{"name": e["name"], "error": scrub(e["error"], st.settings.home)} for e in d.get("errors", [])]
    return d


def _visible(st: ServerState, p: Principal, job_id: str) -> Any:
    job = _queue(st).get(job_id)
    if not p.may_see(job.collection):
        raise NotFoundError(f"no job {job_id!r}")
    return job


@router.get("/jobs", summary="Recent jobs (of the collections this key may see)")
async def list_jobs(
    request: Request,
    collection: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
    p: Principal = Depends(require(Scope.READ)),
) -> dict[str, Any]:
    st = get_state(request)
    q = _queue(st)
    if collection is not None:
        check_collection(p, collection)
    elif p.collection is not None:
        collection = p.collection
    jobs = await run_blocking(q.list, collection=collection, limit=limit)
    return {"jobs": [_public(st, j) for j in jobs]}


@router.get("/jobs/{job_id}", summary="A job's state and progress")
async def get_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    return _public(st, await run_blocking(_visible, st, p, job_id))


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job (images already ingested stay)")
async def cancel_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.WRITE))) -> dict[str, Any]:
    st = get_state(request)
    await run_blocking(_visible, st, p, job_id)
    return _public(st, await run_blocking(_queue(st).cancel, job_id))


@router.delete("/jobs/{job_id}", summary="Cancel a job (same as POST .../cancel)")
async def delete_job(job_id: str, request: Request, p: Principal = Depends(require(Scope.WRITE))) -> dict[str, Any]:
    return await cancel_job(job_id, request, p)
