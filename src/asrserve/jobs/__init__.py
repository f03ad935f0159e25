"""Durable asynchronous transcription jobs for long files.

- `models`: `Job`, `JobState`, job ids; `serialization`: transcripts as lossless JSON
- `store`: the `JobStore` protocol; `sqlite`: `SQLiteJobStore`, the embedded default
- `runner`: `JobRunner` (worker threads, the in-process `JobQueue`) and `execute_job`
- `webhooks`: `WebhookSender` and `validate_webhook_url`
- `service`: `JobService`, the facade the HTTP routes call

This package imports the engine and nothing of the API, CLI or settings: the entry point builds
the store, the runner (with the `transcribe` callable) and the service from plain values.
"""

from __future__ import annotations

from asrserve.jobmodel.errors import (
    InvalidCursorError,
    InvalidWebhookUrlError,
    JobError,
    JobNotFinishedError,
    JobNotFoundError,
    JobResultUnavailableError,
)
from asrserve.jobmodel.records import Job, JobPage, JobState, WebhookState, is_valid_job_id
from asrserve.jobs.runner import (
    JobCancelled,
    JobInterrupted,
    JobQueue,
    JobRunner,
    TranscribeFn,
    execute_job,
    registry_transcriber,
)
from asrserve.jobs.serialization import transcript_from_json, transcript_to_json
from asrserve.jobs.service import JobService
from asrserve.jobs.sqlite import SQLiteJobStore
from asrserve.jobs.store import JobStore, Upload
from asrserve.jobs.webhooks import WebhookSender, validate_webhook_url

__all__ = [
    "InvalidCursorError",
    "InvalidWebhookUrlError",
    "Job",
    "JobCancelled",
    "JobError",
    "JobInterrupted",
    "JobNotFinishedError",
    "JobNotFoundError",
    "JobPage",
    "JobQueue",
    "JobResultUnavailableError",
    "JobRunner",
    "JobService",
    "JobState",
    "JobStore",
    "SQLiteJobStore",
    "TranscribeFn",
    "Upload",
    "WebhookSender",
    "WebhookState",
    "execute_job",
    "is_valid_job_id",
    "registry_transcriber",
    "transcript_from_json",
    "transcript_to_json",
    "validate_webhook_url",
]
