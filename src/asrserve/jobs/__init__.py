"""Durable asynchronous transcription jobs for long files.

- `options`: `JobOptions`, the jobs' settings as plain values (the defaults' one home)
- `serialization`: transcripts as lossless JSON (records and errors: `asrserve.jobmodel`)
- `store`: the `JobStore` protocol; `sqlstore`: its one implementation on SQL, with the
  dialects `sqlite` (`SQLiteJobStore`, embedded) and `postgres` (`PostgresJobStore`, shared)
- `runner`: `JobRunner` (worker threads, the in-process `JobQueue`) and `execute_job`
- `celery_queue`: the Celery app and `CeleryJobQueue`; `worker`: `JobWorker`, what a Celery
  worker runs for each message (leases, reaper, drain)
- `webhooks`: `WebhookSender`, URL and destination checks, signatures
- `service`: `JobService`, the facade the HTTP routes call

This package imports the engine and nothing of the API, the WebSocket server, the CLI or the
settings: the composition root (`asrserve.runtime`) builds everything from plain values.
`postgres` and `celery_queue` are imported only where used, so the embedded setup never loads
psycopg or Celery.
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
