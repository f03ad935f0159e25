"""Async jobs for long files: `/v1/jobs`. The upload and the job are on disk before 202 returns."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from asrserve.api.deps import JobForm, ServicesDep
from asrserve.api.errors import ApiError
from asrserve.api.forms import transcript_response
from asrserve.engine import AsrError, parse_format
from asrserve.jobmodel import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Job, JobState, is_valid_job_id

router = APIRouter(prefix="/v1/jobs", tags=["Jobs"])

JobId = Annotated[str, Path(description="The id POST /v1/jobs returned (32 hex digits).")]


def job_body(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id,
        "object": "transcription.job",
        "status": job.state.value,
        "model": job.model,
        "filename": job.filename,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "expires_at": job.expires_at,
        "progress": {
            "done_seconds": round(job.progress_done_s, 3),
            "total_seconds": None
            if job.progress_total_s is None
            else round(job.progress_total_s, 3),
            "fraction": round(job.progress, 4),
        },
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "error": (
            {"code": job.error_code, "message": job.error_message}
            if job.state is JobState.FAILED
            else None
        ),
        "result_url": f"/v1/jobs/{job.id}?format={job.options.get('response_format', 'json')}"
        if job.state is JobState.SUCCEEDED
        else None,
    }
    if job.webhook_url:
        body["webhook"] = {
            "url": job.webhook_url,
            "state": job.webhook_state.value if job.webhook_state else None,
            "attempts": job.webhook_attempts,
            "delivered_at": job.webhook_delivered_at,
            "last_error": job.webhook_last_error,
        }
    return body


def _checked(job_id: str) -> str:
    # Ids are used to name files on disk: anything but a well-formed id is simply not found.
    if not is_valid_job_id(job_id):
        raise ApiError(404, f"There is no job {job_id[:64]!r}.", code="job_not_found")
    return job_id


@router.post("", status_code=202, summary="Submit a file for asynchronous transcription")
async def create_job(services: ServicesDep, form: JobForm) -> JSONResponse:
    request = form.transcription
    model = services.transcription.model_name(request.model)
    job = await anyio.to_thread.run_sync(
        lambda: services.jobs.submit(
            request.file.file,
            filename=(request.file.filename or "upload")[:255],
            model=model,
            options=request.as_record(),
            webhook_url=form.webhook_url,
        )
    )
    return JSONResponse(job_body(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("", summary="List jobs, newest first")
async def list_jobs(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the last page")
    ] = None,
    status: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
) -> dict[str, Any]:
    page = await anyio.to_thread.run_sync(
        lambda: services.jobs.list(limit=limit, cursor=cursor, state=status)
    )
    return {
        "object": "list",
        "data": [job_body(j) for j in page.jobs],
        "next_cursor": page.next_cursor,
    }


@router.get(
    "/{job_id}",
    summary="A job's status; with ?format=, its result in that format",
    responses={409: {"description": "The job has no result (yet)."}},
)
async def get_job(
    job_id: JobId,
    services: ServicesDep,
    format: Annotated[
        str | None, Query(description="json, verbose_json, text, srt or vtt.")
    ] = None,
) -> Response:
    job_id = _checked(job_id)
    if format is None:
        job = await anyio.to_thread.run_sync(services.jobs.get, job_id)
        return JSONResponse(job_body(job))
    try:
        fmt = parse_format(format)
    except AsrError as exc:
        raise ApiError(400, str(exc), code="invalid_request", param="format") from exc
    job = await anyio.to_thread.run_sync(services.jobs.get, job_id)
    transcript = await anyio.to_thread.run_sync(services.jobs.result, job_id)
    return transcript_response(
        transcript,
        fmt,
        include_words=bool(job.options.get("include_words", True)),
        include_segments=bool(job.options.get("include_segments", True)),
    )


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job, or delete a finished one",
    responses={202: {"description": "Cancelled or cancelling"}, 204: {"description": "Deleted"}},
)
async def delete_job(job_id: JobId, services: ServicesDep) -> Response:
    job_id = _checked(job_id)
    job = await anyio.to_thread.run_sync(services.jobs.cancel_or_delete, job_id)
    if job is None:
        return Response(status_code=204)
    return JSONResponse(job_body(job), status_code=202)
