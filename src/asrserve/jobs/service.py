"""The jobs facade the HTTP routes call: one object per process, made by the entry point.

Every method blocks (SQLite, fsync, file copies): call them from a thread in async code
(`starlette.concurrency.run_in_threadpool` or `anyio.to_thread.run_sync`).

Route by route::

    POST   /v1/jobs              job = jobs.submit(upload.file, filename=..., model=...,
                                                   options={...}, webhook_url=...)   -> 202
    GET    /v1/jobs/{id}         job = jobs.get(id)
    GET    /v1/jobs/{id}?format= text = engine.formats.render(jobs.result(id), fmt)
    GET    /v1/jobs              page = jobs.list(limit=..., cursor=..., state=...)
    DELETE /v1/jobs/{id}         job = jobs.cancel_or_delete(id)
                                 (a Job: 202, cancelled or cancelling; None: 204, deleted)

Failures are `JobError`s (and the engine's upload errors) with codes for the API's error table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asrserve.engine import Transcript
from asrserve.jobmodel.errors import (
    JobNotFinishedError,
    JobNotFoundError,
    JobResultUnavailableError,
)
from asrserve.jobmodel.records import DEFAULT_PAGE_SIZE, Job, JobPage, JobState, is_valid_job_id
from asrserve.jobs.runner import JobQueue
from asrserve.jobs.store import JobStore, Upload
from asrserve.jobs.webhooks import check_webhook_destination, validate_webhook_url


class JobService:
    """Jobs as the API sees them: a store for the records, a queue that runs them.

    `max_upload_bytes` caps uploads (None: no cap). `queue` may be None in a process that only
    reads jobs; submitted jobs then wait for whichever process runs the workers.
    """

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue | None = None,
        *,
        max_upload_bytes: int | None = None,
        webhook_allow_private: bool = False,
    ) -> None:
        self.store = store
        self.queue = queue
        self.max_upload_bytes = max_upload_bytes
        self.webhook_allow_private = webhook_allow_private

    def submit(
        self,
        upload: Upload,
        *,
        filename: str,
        model: str,
        options: Mapping[str, Any],
        webhook_url: str | None = None,
    ) -> Job:
        """Store the upload and a queued job durably, then tell the queue. The caller has
        validated `model` and `options` (they are stored as given and read back by the
        `transcribe` the entry point gave the runner). Raises AudioTooLargeError,
        EmptyAudioError, InvalidWebhookUrlError (also for a host that is not public, unless
        `webhook_allow_private`)."""
        if webhook_url is not None:
            webhook_url = validate_webhook_url(webhook_url)
            if not self.webhook_allow_private:
                check_webhook_destination(webhook_url)
        job = self.store.create(
            upload,
            filename=filename,
            model=model,
            options=options,
            webhook_url=webhook_url,
            max_bytes=self.max_upload_bytes,
        )
        if self.queue is not None:
            self.queue.submit(job)
        return job

    def get(self, job_id: str) -> Job:
        """The job with its result; JobNotFoundError if there is none (or the id is
        malformed, which is never a job)."""
        job = self.store.get(job_id) if is_valid_job_id(job_id) else None
        if job is None:
            raise JobNotFoundError(
                f"No job has the id {job_id!r}; it may have expired. List jobs with GET /v1/jobs."
            )
        return job

    def result(self, job_id: str) -> Transcript:
        """The transcript of a succeeded job. JobNotFinishedError while queued or running,
        JobResultUnavailableError for a failed or cancelled job."""
        job = self.get(job_id)
        if job.result is not None:
            return job.result
        if not job.state.finished:
            raise JobNotFinishedError(
                f"Job {job.id} is {job.state.value} and has no result yet; poll it until its "
                "state is succeeded, or give a webhook URL when creating it."
            )
        if job.state is JobState.FAILED:
            raise JobResultUnavailableError(
                f"Job {job.id} failed ({job.error_code}: {job.error_message}), so it has no result."
            )
        raise JobResultUnavailableError(f"Job {job.id} was cancelled, so it has no result.")

    def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        state: JobState | str | None = None,
    ) -> JobPage:
        """Newest first, without results. Raises InvalidCursorError, InvalidOptionError (a
        limit outside 1..1000), ValueError for an unknown state."""
        return self.store.list(
            limit=limit, cursor=cursor, state=JobState(state) if state is not None else None
        )

    def cancel_or_delete(self, job_id: str) -> Job | None:
        """DELETE semantics: an unfinished job is cancelled and returned (state cancelled, or
        running with `cancel_requested` until its worker stops); a finished job is deleted with
        its result, and None is returned. JobNotFoundError if there is no such job."""
        job = self.get(job_id)
        if not job.state.finished:
            cancelled = self.store.request_cancel(job_id)
            if cancelled is None:
                raise JobNotFoundError(f"No job has the id {job_id!r}.")
            if self.queue is not None:
                self.queue.wake()  # a cancelled queued job may have a webhook to send now
            return cancelled
        if not self.store.delete(job_id):
            raise JobNotFoundError(f"No job has the id {job_id!r}.")
        return None

    def count_by_state(self) -> dict[JobState, int]:
        return self.store.count_by_state()

    def queue_depth(self) -> int:
        return self.store.queue_depth()
