"""The job record and its states.

A `Job` is an immutable snapshot read from a store; the store is the only place a job changes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from asrserve.engine import Transcript

_JOB_ID = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> str:
    """A fresh job id: 32 lowercase hex digits (a uuid4), safe as a file name."""
    return uuid.uuid4().hex


def is_valid_job_id(value: object) -> bool:
    """Whether `value` has the exact shape of a job id.

    Ids arrive in URLs and name upload files, so anything else ("../etc/passwd", "a/b", upper
    case, whitespace) is rejected before it reaches a query or a path.
    """
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the terminal states: the job will not change again (until it expires)."""
        return self in _FINISHED


_FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class WebhookState(StrEnum):
    """Delivery of the job's finished notification (only for jobs with a webhook URL)."""

    PENDING = "pending"
    """Finished, notification not yet delivered; retried with backoff."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Given up: a 4xx answer, or every attempt failed."""


@dataclass(frozen=True, slots=True)
class Job:
    """One transcription job as a store last saw it. All times are Unix epoch seconds."""

    id: str
    state: JobState
    model: str
    options: dict[str, Any]
    """The request's options as the API stored them; the jobs package never interprets them.
    Each snapshot has its own copy."""
    filename: str
    """The client's file name, for display only: uploads are stored under the job id."""
    created_at: float
    webhook_url: str | None = None
    upload_bytes: int = 0
    started_at: float | None = None
    """When a worker last started it (a job resumed after a crash starts again)."""
    finished_at: float | None = None
    progress_done_s: float = 0.0
    """Seconds of audio decoded so far."""
    progress_total_s: float | None = None
    """Seconds of audio in all; None until a worker has decoded the upload."""
    result: Transcript | None = field(default=None, repr=False)
    """The transcript of a succeeded job. Listings leave it out (None); `get` fills it."""
    error_code: str | None = None
    error_message: str | None = None
    """For failed jobs: the error's code and a sentence fit to show the user."""
    attempts: int = 0
    """How many times a worker started the job without a graceful hand-back."""
    cancel_requested: bool = False
    """A running job was asked to stop; it ends cancelled as soon as its worker notices."""
    worker_id: str | None = None
    """The worker that holds (or last held) the job."""
    expires_at: float | None = None
    """When a finished job and its result are purged; None while unfinished or kept forever."""
    webhook_state: WebhookState | None = None
    webhook_attempts: int = 0
    webhook_delivered_at: float | None = None
    webhook_last_error: str | None = None

    @property
    def progress(self) -> float:
        """Fraction done in [0, 1]: 1 once succeeded, 0 while the total is unknown."""
        if self.state is JobState.SUCCEEDED:
            return 1.0
        if not self.progress_total_s:
            return 0.0
        return min(1.0, self.progress_done_s / self.progress_total_s)


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
"""Jobs in one page of a listing: by default, and at most."""


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing, newest first."""

    jobs: list[Job]
    next_cursor: str | None
    """Give it back as `cursor` for the next page; None on the last page."""
