"""What a job store must do, whatever keeps the jobs (SQLite embedded, PostgreSQL shared).

The routes, the runner and the webhook sender use only this protocol, so another store plugs in
without touching them. Every method is safe to call from any thread.

Life of a job::

    create ─► queued ──claim_next──► running ──complete──► succeeded
                 │  ▲                   │  │───fail──────► failed
                 │  └─release/requeue───┘  └─(cancel requested)──mark_cancelled──► cancelled
                 └────request_cancel──────────────────────────────────────────────► cancelled

A finished job keeps its result until `expires_at`, then `purge_expired` removes it. Finishing a
job that has a webhook URL queues its notification in the same transaction (an outbox), so a
notification is never lost between "finished" and "sent".
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from asrserve.engine import InvalidOptionError, Transcript
from asrserve.jobmodel.errors import InvalidCursorError
from asrserve.jobmodel.records import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Job,
    JobPage,
    JobState,
    is_valid_job_id,
)

Upload = BinaryIO | Path | bytes
"""An upload: an open binary file (read to its end), a path to copy, or the bytes."""


class JobStore(Protocol):
    # --- used by the routes -----------------------------------------------------------------

    def create(
        self,
        upload: Upload,
        *,
        filename: str,
        model: str,
        options: Mapping[str, Any],
        webhook_url: str | None = None,
        max_bytes: int | None = None,
    ) -> Job:
        """Store the upload and a queued job; both are durable when this returns.

        Raises AudioTooLargeError past `max_bytes`, EmptyAudioError for an empty upload,
        InvalidWebhookUrlError for a webhook URL that is not http(s), TypeError when `options`
        is not JSON-serialisable. Blocking: call it from a worker thread in async code.
        """
        ...

    def get(self, job_id: str) -> Job | None:
        """The job with its result, or None (also for a malformed id)."""
        ...

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel: a queued job is cancelled at once; a running one is flagged and its worker
        stops at its next progress report. A finished job is returned unchanged. None if no
        such job."""
        ...

    def delete(self, job_id: str) -> bool:
        """Remove a finished job, its result and its upload. False if no such job; raises
        JobNotFinishedError for a queued or running job (cancel it first)."""
        ...

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero included)."""
        ...

    def queue_depth(self) -> int:
        """Jobs waiting for a worker."""
        ...

    def oldest_queued_at(self) -> float | None:
        """When the job that has waited longest was created; None when none waits."""
        ...

    # --- used by workers ----------------------------------------------------------------------

    def upload_path(self, job_id: str) -> Path:
        """Where the job's upload is on this machine. Raises ValueError for a malformed id."""
        ...

    def claim_next(self, worker_id: str, *, lease_s: float | None = None) -> Job | None:
        """Atomically move the oldest queued job to running for `worker_id` and count the
        attempt (leased for `lease_s`, when given). A job already started `max_attempts` times
        (each start ended by a crash) is failed instead of started, so a poison upload cannot
        crash workers forever."""
        ...

    def claim(self, job_id: str, worker_id: str, *, lease_s: float) -> Job | None:
        """Take this job (a queued one, or a running one whose lease ran out) for `worker_id`,
        leased for `lease_s`. None when it is finished, unknown or held by a live lease."""
        ...

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Heartbeat: extend the lease; False when `worker_id` no longer holds the job."""
        ...

    def reap_expired(self) -> list[str]:
        """Queue again the running jobs whose lease ran out; returns their ids."""
        ...

    def stale_queued(self, older_than_s: float) -> list[str]:
        """Queued jobs handed to the queue longer ago than `older_than_s` (their message may
        be lost); each is returned once per period, for the reaper to send again."""
        ...

    def update_progress(
        self, job_id: str, done_s: float, total_s: float, *, worker_id: str | None = None
    ) -> bool:
        """Record progress; returns whether a cancel was requested (one round trip for both).
        With `worker_id`, only that worker's claim is updated (a job handed back is not)."""
        ...

    def is_cancel_requested(self, job_id: str) -> bool: ...

    def complete(
        self, job_id: str, transcript: Transcript, *, worker_id: str | None = None
    ) -> Job | None:
        """running -> succeeded with the result (cancelled if a cancel was requested). Returns
        the finished job, or None if the job was not running (for `worker_id`, when given)."""
        ...

    def fail(
        self, job_id: str, code: str, message: str, *, worker_id: str | None = None
    ) -> Job | None:
        """running -> failed with an error code and a sentence for the user."""
        ...

    def mark_cancelled(self, job_id: str, *, worker_id: str | None = None) -> Job | None:
        """running -> cancelled, once its worker has stopped on a cancel request."""
        ...

    def release(self, job_id: str, *, worker_id: str | None = None) -> bool:
        """running -> queued without counting the attempt: a graceful shutdown hands the job
        back for the next start, and progress is reset (the decode starts again). A job whose
        cancel was requested is cancelled instead. False unless it went back to the queue."""
        ...

    def requeue_interrupted(self) -> list[str]:
        """Every running job goes back to queued: call once at start-up, before any worker
        runs, in the one process that runs workers for this store. Returns their ids."""
        ...

    def purge_expired(self, now: float | None = None) -> int:
        """Remove finished jobs past their `expires_at` (row and upload) and stray upload
        files; returns how many jobs were removed."""
        ...

    # --- used by the webhook sender ---------------------------------------------------------

    def claim_webhooks(self, now: float, limit: int, lease_s: float) -> list[Job]:
        """Pending notifications due by `now`; each is leased for `lease_s` (not handed out
        again meanwhile), so a crash mid-delivery retries it after the lease."""
        ...

    def record_webhook_attempt(
        self,
        job_id: str,
        *,
        delivered: bool,
        error: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        """Count one delivery attempt: delivered; or failed and retried at `retry_at`; or
        failed for good when `retry_at` is None."""
        ...

    def next_webhook_due(self) -> float | None:
        """When the earliest pending notification is due, or None if none is pending."""
        ...

    def close(self) -> None: ...

    # Last in the class: a method named `list` would shadow the builtin in the annotations of
    # the methods defined after it.
    def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        state: JobState | None = None,
    ) -> JobPage:
        """Jobs newest first, without results. Paging is by an opaque cursor on (created_at,
        id), so jobs created or deleted meanwhile never shift or repeat later pages. Raises
        InvalidCursorError for a cursor this store did not make."""
        ...


def encode_cursor(created_at: float, job_id: str) -> str:
    """An opaque page cursor; repr keeps the float exact, so no job at the edge is skipped."""
    raw = f"{created_at!r}:{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    bad = InvalidCursorError(
        "The page cursor is not valid; pass the next_cursor of a previous page, or no cursor "
        "for the first page."
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split(":", 1)
        created_at = float(created)
    except ValueError:  # bad base64, bad UTF-8, no colon or no number: all ValueErrors
        raise bad from None
    if not is_valid_job_id(job_id) or created_at != created_at:  # NaN compares unequal
        raise bad
    return created_at, job_id


def check_page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidOptionError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}.")
    return limit
