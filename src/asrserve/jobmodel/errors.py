"""Failures a jobs client can cause, each a sentence fit to show the user.

They extend the engine's `AsrError`, so the HTTP layer maps them through its one error table by
`code`: job_not_found -> 404; job_not_finished, job_result_unavailable -> 409;
invalid_webhook_url, invalid_cursor -> 400; job_store_unavailable -> 503. Upload limits reuse
the engine's `AudioTooLargeError` and `EmptyAudioError`.
"""

from __future__ import annotations

from asrserve.engine import AsrError


class JobError(AsrError):
    code = "job_error"


class JobNotFoundError(JobError):
    """No job has this id (or it expired and was purged)."""

    code = "job_not_found"


class JobNotFinishedError(JobError):
    """The operation needs a finished job: deleting it, or reading its result."""

    code = "job_not_finished"


class JobResultUnavailableError(JobError):
    """The job failed or was cancelled, so it has no result to render."""

    code = "job_result_unavailable"


class InvalidWebhookUrlError(JobError, ValueError):
    code = "invalid_webhook_url"


class InvalidCursorError(JobError, ValueError):
    code = "invalid_cursor"


class JobStoreUnavailableError(JobError):
    """The job database cannot be reached (down, restarting, or out of connections): the API
    answers 503 with this sentence, and the request can be retried once it is back."""

    code = "job_store_unavailable"
