"""`JobStore` on SQL that SQLite and PostgreSQL both speak: one implementation, two dialects.

`SQLiteJobStore` (embedded) and `PostgresJobStore` (shared by API replicas and workers) only
open connections, create the schema and say how to lock; every transition is written once,
here, so both stores keep exactly the same semantics.

Uploads live in an `UploadDir` (jobs/uploads.py), one durable file per job id. `create` writes
the upload before it inserts the row, and the row's commit is durable when it returns, so once
`create` returns the job and its upload survive a killed process. A finished job's upload is
deleted at once (the result is in the row); files that lost their row are swept by
`purge_expired`.

Leases. A worker that claims a job with `lease_s` holds it until `lease_expires_at` and renews
it by heartbeat (`renew_lease`). `reap_expired` queues again every running job whose lease ran
out (its worker died), and `claim` takes over such a job even before the reaper ran, so a
redelivered message for a job whose worker is alive does nothing, and one for a job whose
worker died runs it. Each start counts an attempt; a job started `max_attempts` times without
finishing fails with `job_crashed` instead of crashing workers forever.

SQL is written with `?` placeholders and portable syntax (RETURNING, row comparisons, CASE):
SQLite >= 3.35 and PostgreSQL >= 9.5 run it as is (the PostgreSQL store rewrites the
placeholders). Dialect differences are three attributes: `_for_update` (row locks, empty on
SQLite where `BEGIN IMMEDIATE` already serialises writers), `_skip_locked` (claims that never
wait on each other) and the connection handling in `_write`/`_read`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from asrserve.engine import Transcript
from asrserve.jobmodel.errors import JobNotFinishedError
from asrserve.jobmodel.records import (
    DEFAULT_PAGE_SIZE,
    Job,
    JobPage,
    JobState,
    WebhookState,
    is_valid_job_id,
    new_job_id,
)
from asrserve.jobs.serialization import transcript_from_json, transcript_to_json
from asrserve.jobs.store import Upload, check_page_size, decode_cursor, encode_cursor
from asrserve.jobs.uploads import UploadDir
from asrserve.jobs.webhooks import validate_webhook_url

log = logging.getLogger(__name__)

_MAX_FILENAME = 255
JOB_CRASHED = "job_crashed"

# Everything but the result, which can be megabytes: listings and webhooks do not need it.
_SUMMARY = (
    "id, state, model, options, filename, webhook_url, upload_bytes, created_at, started_at, "
    "finished_at, progress_done_s, progress_total_s, error_code, error_message, attempts, "
    "cancel_requested, worker_id, expires_at, webhook_state, webhook_attempts, "
    "webhook_delivered_at, webhook_last_error"
)
_FULL = _SUMMARY + ", result"

QUEUED = JobState.QUEUED.value
RUNNING = JobState.RUNNING.value


class Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> Any: ...


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    """One connection inside a transaction, as the dialect hands it out."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...


def _crashed_message(attempts: int) -> str:
    return (
        f"The job was started {attempts} times and each time the worker stopped before it "
        "finished, so it is not tried again; the file may crash the decoder: convert it (for "
        "example to WAV) and submit it again."
    )


class SqlJobStore:
    """The store's semantics; subclasses provide `_write`, `_read`, `close` and the schema.

    `retention_s` is how long a finished job and its result are kept (None: forever).
    `max_attempts` is how many starts a job gets when each one ends with the worker process
    dying. `clock` is injectable for tests.
    """

    _for_update = ""
    _skip_locked = ""

    def __init__(
        self,
        uploads_dir: Path,
        *,
        retention_s: float | None,
        max_attempts: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._uploads = UploadDir(uploads_dir)
        self.retention_s = retention_s
        self.max_attempts = max_attempts
        self._clock = clock

    # --- dialect ----------------------------------------------------------------------------------

    def _write(self) -> contextlib.AbstractContextManager[Transaction]:
        """A transaction that may write, committed when the block ends without an error."""
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[Transaction]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> SqlJobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rows -----------------------------------------------------------------------------------

    @staticmethod
    def _job(row: Row) -> Job:
        keys = row.keys()
        result = row["result"] if "result" in keys else None
        webhook_state = row["webhook_state"]
        options = row["options"]
        return Job(
            id=row["id"],
            state=JobState(row["state"]),
            model=row["model"],
            options=json.loads(options) if isinstance(options, str) else dict(options),
            filename=row["filename"],
            created_at=row["created_at"],
            webhook_url=row["webhook_url"],
            upload_bytes=row["upload_bytes"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            progress_done_s=row["progress_done_s"],
            progress_total_s=row["progress_total_s"],
            result=transcript_from_json(result) if result is not None else None,
            error_code=row["error_code"],
            error_message=row["error_message"],
            attempts=row["attempts"],
            cancel_requested=bool(row["cancel_requested"]),
            worker_id=row["worker_id"],
            expires_at=row["expires_at"],
            webhook_state=WebhookState(webhook_state) if webhook_state else None,
            webhook_attempts=row["webhook_attempts"],
            webhook_delivered_at=row["webhook_delivered_at"],
            webhook_last_error=row["webhook_last_error"],
        )

    # --- uploads --------------------------------------------------------------------------------

    @property
    def uploads_dir(self) -> Path:
        return self._uploads.directory

    def upload_path(self, job_id: str) -> Path:
        return self._uploads.path(job_id)

    def _is_unfinished(self, job_id: str) -> bool:
        with self._read() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and not JobState(row["state"]).finished

    # --- used by the routes ---------------------------------------------------------------------

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
        if webhook_url is not None:
            webhook_url = validate_webhook_url(webhook_url)
        # Before any file is written: a bad option must not leave a stray upload behind.
        options_json = json.dumps(dict(options), ensure_ascii=False, allow_nan=False)
        filename = (filename or "").strip()[:_MAX_FILENAME] or "upload"
        job_id = new_job_id()
        size = self._uploads.write(job_id, upload, max_bytes)
        now = self._clock()
        try:
            with self._write() as db:
                row = db.execute(
                    "INSERT INTO jobs (id, state, model, options, filename, webhook_url, "
                    "upload_bytes, created_at, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    f"RETURNING {_FULL}",
                    (job_id, QUEUED, model, options_json, filename, webhook_url, size, now, now),
                ).fetchone()
        except BaseException:
            self._uploads.remove(job_id)
            raise
        log.info("job created", extra={"job_id": job_id, "model": model, "bytes": size})
        return self._job(row)

    def get(self, job_id: str) -> Job | None:
        if not is_valid_job_id(job_id):
            return None
        with self._read() as db:
            row = db.execute(f"SELECT {_FULL} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row is not None else None

    def request_cancel(self, job_id: str) -> Job | None:
        if not is_valid_job_id(job_id):
            return None
        with self._write() as db:
            row = db.execute(
                f"SELECT state FROM jobs WHERE id = ?{self._for_update}", (job_id,)
            ).fetchone()
            if row is None:
                return None
            state = JobState(row["state"])
            if state is JobState.QUEUED:
                row = self._finish(db, job_id, JobState.CANCELLED, from_state=JobState.QUEUED)
            elif state is JobState.RUNNING:
                row = db.execute(
                    f"UPDATE jobs SET cancel_requested = TRUE WHERE id = ? RETURNING {_FULL}",
                    (job_id,),
                ).fetchone()
            else:
                row = db.execute(f"SELECT {_FULL} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if state is JobState.QUEUED:
            self._uploads.remove(job_id)
        log.info("job cancel requested", extra={"job_id": job_id, "state": state.value})
        return self._job(row)

    def delete(self, job_id: str) -> bool:
        if not is_valid_job_id(job_id):
            return False
        with self._write() as db:
            row = db.execute(
                f"SELECT state FROM jobs WHERE id = ?{self._for_update}", (job_id,)
            ).fetchone()
            if row is None:
                return False
            if not JobState(row["state"]).finished:
                raise JobNotFinishedError(
                    f"Job {job_id} is {row['state']}; cancel it first, and delete it once it "
                    "has stopped."
                )
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._uploads.remove(job_id)
        log.info("job deleted", extra={"job_id": job_id})
        return True

    def count_by_state(self) -> dict[JobState, int]:
        with self._read() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(JobState, 0)
        for row in rows:
            counts[JobState(row["state"])] = int(row["n"])
        return counts

    def queue_depth(self) -> int:
        return self.count_by_state()[JobState.QUEUED]

    def oldest_queued_at(self) -> float | None:
        """When the job that has waited longest was created (None: nothing waits)."""
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(created_at) AS t FROM jobs WHERE state = ?", (QUEUED,)
            ).fetchone()
        return row["t"]

    # --- used by workers ------------------------------------------------------------------------

    def _finish(
        self,
        db: Transaction,
        job_id: str,
        state: JobState,
        *,
        from_state: JobState = JobState.RUNNING,
        worker_id: str | None = None,
        result: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        duration_s: float | None = None,
    ) -> Row | None:
        """Move a job to a finished state inside the caller's transaction. Queuing the webhook
        here, in the same statement, is what makes a notification impossible to lose."""
        now = self._clock()
        expires_at = now + self.retention_s if self.retention_s is not None else None
        sql = (
            "UPDATE jobs SET state = ?, finished_at = ?, expires_at = ?, result = ?, "
            "error_code = ?, error_message = ?, cancel_requested = FALSE, "
            "lease_expires_at = NULL, "
            "progress_done_s = COALESCE(?, progress_done_s), "
            "progress_total_s = COALESCE(?, progress_total_s), "
            "webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE ? END, "
            "webhook_next_at = CASE WHEN webhook_url IS NULL THEN NULL ELSE ? END "
            "WHERE id = ? AND state = ?"
        )
        params: list[Any] = [
            state.value,
            now,
            expires_at,
            result,
            error_code,
            error_message,
            duration_s,
            duration_s,
            WebhookState.PENDING.value,
            now,
            job_id,
            from_state.value,
        ]
        if worker_id is not None:
            sql += " AND worker_id = ?"
            params.append(worker_id)
        row: Row | None = db.execute(sql + f" RETURNING {_FULL}", params).fetchone()
        return row

    def _finish_running(
        self,
        job_id: str,
        state: JobState,
        worker_id: str | None,
        *,
        result: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        duration_s: float | None = None,
    ) -> Job | None:
        if not is_valid_job_id(job_id):
            return None
        with self._write() as db:
            flag = db.execute(
                f"SELECT cancel_requested FROM jobs WHERE id = ?{self._for_update}", (job_id,)
            ).fetchone()
            if flag is not None and flag["cancel_requested"]:
                # The client was told the job is being cancelled: honour that even if the
                # decode happened to end first.
                state, result, error_code, error_message = JobState.CANCELLED, None, None, None
                duration_s = None
            row = self._finish(
                db,
                job_id,
                state,
                worker_id=worker_id,
                result=result,
                error_code=error_code,
                error_message=error_message,
                duration_s=duration_s,
            )
        if row is None:
            return None
        self._uploads.remove(job_id)
        return self._job(row)

    def _start(
        self, db: Transaction, job_id: str, worker_id: str, lease_s: float | None
    ) -> Row | None:
        now = self._clock()
        lease = now + lease_s if lease_s is not None else None
        row: Row | None = db.execute(
            "UPDATE jobs SET state = ?, attempts = attempts + 1, started_at = ?, worker_id = ?, "
            f"progress_done_s = 0, lease_expires_at = ? WHERE id = ? RETURNING {_FULL}",
            (RUNNING, now, worker_id, lease, job_id),
        ).fetchone()
        return row

    def _fail_crashed(self, db: Transaction, job_id: str, attempts: int, from_state: str) -> None:
        self._finish(
            db,
            job_id,
            JobState.FAILED,
            from_state=JobState(from_state),
            error_code=JOB_CRASHED,
            error_message=_crashed_message(attempts),
        )

    def claim_next(self, worker_id: str, *, lease_s: float | None = None) -> Job | None:
        ended: list[tuple[str, JobState]] = []
        claimed = None
        with self._write() as db:
            while claimed is None:
                row = db.execute(
                    "SELECT id, attempts FROM jobs WHERE state = ? ORDER BY created_at, id "
                    f"LIMIT 1{self._skip_locked}",
                    (QUEUED,),
                ).fetchone()
                if row is None:
                    break
                if row["attempts"] >= self.max_attempts:
                    self._fail_crashed(db, row["id"], row["attempts"], QUEUED)
                    ended.append((row["id"], JobState.FAILED))
                    continue
                claimed = self._start(db, row["id"], worker_id, lease_s)
        self._forget_ended(ended)
        return self._job(claimed) if claimed is not None else None

    def claim(self, job_id: str, worker_id: str, *, lease_s: float) -> Job | None:
        """Take this job for `worker_id` with a lease of `lease_s`: a queued job, or a running
        one whose lease ran out (its worker died; the attempt counts). None when the job is
        finished, unknown, or held by a live lease; a job out of attempts is failed instead."""
        if not is_valid_job_id(job_id):
            return None
        ended: list[tuple[str, JobState]] = []
        claimed = None
        with self._write() as db:
            row = db.execute(
                "SELECT state, attempts, lease_expires_at, cancel_requested FROM jobs "
                f"WHERE id = ?{self._for_update}",
                (job_id,),
            ).fetchone()
            if row is None:
                return None
            expired = (
                row["state"] == RUNNING
                and row["lease_expires_at"] is not None
                and row["lease_expires_at"] <= self._clock()
            )
            if row["state"] != QUEUED and not expired:
                return None
            if expired and row["cancel_requested"]:
                self._finish(db, job_id, JobState.CANCELLED)
                ended.append((job_id, JobState.CANCELLED))
            elif row["attempts"] >= self.max_attempts:
                self._fail_crashed(db, job_id, row["attempts"], row["state"])
                ended.append((job_id, JobState.FAILED))
            else:
                claimed = self._start(db, job_id, worker_id, lease_s)
        self._forget_ended(ended)
        return self._job(claimed) if claimed is not None else None

    def _forget_ended(self, jobs: list[tuple[str, JobState]]) -> None:
        """Jobs a claim finished instead of running: out of attempts (an error: each attempt
        ended its worker), or cancelled while their worker was gone (as asked)."""
        for job_id, state in jobs:
            if state is JobState.CANCELLED:
                log.info("job cancelled while its worker was gone", extra={"job_id": job_id})
            else:
                log.error("job failed: out of attempts", extra={"job_id": job_id})
            self._uploads.remove(job_id)

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Extend the lease of a job `worker_id` holds; False when it no longer holds it (the
        lease expired and another worker took the job, or the job finished)."""
        with self._write() as db:
            row = db.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND state = ? "
                "AND worker_id = ? RETURNING id",
                (self._clock() + lease_s, job_id, RUNNING, worker_id),
            ).fetchone()
        return row is not None

    def reap_expired(self) -> list[str]:
        """Queue again every running job whose lease ran out (cancel those asked to cancel);
        returns the ids queued again, for the caller to hand to the queue."""
        now = self._clock()
        with self._write() as db:
            rows = db.execute(
                "SELECT id, cancel_requested FROM jobs WHERE state = ? AND lease_expires_at <= ? "
                f"ORDER BY created_at{self._skip_locked}",
                (RUNNING, now),
            ).fetchall()
            requeued, cancelled = [], []
            for row in rows:
                if row["cancel_requested"]:
                    self._finish(db, row["id"], JobState.CANCELLED)
                    cancelled.append(row["id"])
                else:
                    db.execute(
                        "UPDATE jobs SET state = ?, progress_done_s = 0, lease_expires_at = NULL, "
                        "enqueued_at = ? WHERE id = ?",
                        (QUEUED, now, row["id"]),
                    )
                    requeued.append(row["id"])
        for job_id in cancelled:
            self._uploads.remove(job_id)
        for job_id in requeued:
            log.warning("job's worker stopped renewing its lease; queued again",
                        extra={"job_id": job_id})  # fmt: skip
        return requeued

    def stale_queued(self, older_than_s: float) -> list[str]:
        """Queued jobs last handed to the queue more than `older_than_s` ago (a message lost
        with a broker, or never sent by an API process killed after `create`); their hand-off
        time is reset, so each comes back once per period. Duplicates are harmless: a claim
        takes a job once."""
        now = self._clock()
        with self._write() as db:
            rows = db.execute(
                "UPDATE jobs SET enqueued_at = ? WHERE id IN ("
                "  SELECT id FROM jobs WHERE state = ? AND enqueued_at <= ?"
                f"  ORDER BY created_at{self._skip_locked}"
                ") RETURNING id",
                (now, QUEUED, now - older_than_s),
            ).fetchall()
        return [row["id"] for row in rows]

    def update_progress(
        self, job_id: str, done_s: float, total_s: float, *, worker_id: str | None = None
    ) -> bool:
        """Record progress; returns True when the worker should stop: a cancel was requested,
        or the job is no longer running (for `worker_id`, when given)."""
        sql = "UPDATE jobs SET progress_done_s = ?, progress_total_s = ? WHERE id = ? AND state = ?"
        params: list[Any] = [float(done_s), float(total_s), job_id, RUNNING]
        if worker_id is not None:
            sql += " AND worker_id = ?"
            params.append(worker_id)
        with self._write() as db:
            row = db.execute(sql + " RETURNING cancel_requested", params).fetchone()
        return row is None or bool(row["cancel_requested"])

    def is_cancel_requested(self, job_id: str) -> bool:
        with self._read() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and bool(row["cancel_requested"])

    def complete(
        self, job_id: str, transcript: Transcript, *, worker_id: str | None = None
    ) -> Job | None:
        # The result's duration is the exact total, whatever the last progress report said.
        return self._finish_running(
            job_id,
            JobState.SUCCEEDED,
            worker_id,
            result=transcript_to_json(transcript),
            duration_s=transcript.duration,
        )

    def fail(
        self, job_id: str, code: str, message: str, *, worker_id: str | None = None
    ) -> Job | None:
        return self._finish_running(
            job_id, JobState.FAILED, worker_id, error_code=code, error_message=message
        )

    def mark_cancelled(self, job_id: str, *, worker_id: str | None = None) -> Job | None:
        return self._finish_running(job_id, JobState.CANCELLED, worker_id)

    def release(self, job_id: str, *, worker_id: str | None = None) -> bool:
        if not is_valid_job_id(job_id):
            return False
        cancelled = False
        with self._write() as db:
            row = db.execute(
                "SELECT state, cancel_requested, worker_id FROM jobs "
                f"WHERE id = ?{self._for_update}",
                (job_id,),
            ).fetchone()
            if (
                row is None
                or row["state"] != RUNNING
                or (worker_id is not None and row["worker_id"] != worker_id)
            ):
                return False
            if row["cancel_requested"]:
                # Asked to cancel while being handed back: the cancel wins.
                self._finish(db, job_id, JobState.CANCELLED)
                cancelled = True
            else:
                db.execute(
                    "UPDATE jobs SET state = ?, "
                    "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
                    "progress_done_s = 0, lease_expires_at = NULL, enqueued_at = ? WHERE id = ?",
                    (QUEUED, self._clock(), job_id),
                )
        if cancelled:
            self._uploads.remove(job_id)
        return not cancelled

    def requeue_interrupted(self) -> list[str]:
        cancelled: list[str] = []
        with self._write() as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE state = ? AND cancel_requested = TRUE", (RUNNING,)
            ).fetchall()
            for row in rows:
                self._finish(db, row["id"], JobState.CANCELLED)
                cancelled.append(row["id"])
            requeued = [
                r["id"]
                for r in db.execute(
                    "UPDATE jobs SET state = ?, progress_done_s = 0, lease_expires_at = NULL, "
                    "enqueued_at = ? WHERE state = ? RETURNING id",
                    (QUEUED, self._clock(), RUNNING),
                ).fetchall()
            ]
        for job_id in cancelled:
            self._uploads.remove(job_id)
        for job_id in requeued:
            log.warning(
                "job was running when its process stopped; queued again", extra={"job_id": job_id}
            )
        return requeued

    def purge_expired(self, now: float | None = None) -> int:
        now = self._clock() if now is None else now
        with self._write() as db:
            purged = [
                r["id"]
                for r in db.execute(
                    "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ? "
                    "RETURNING id",
                    (now,),
                ).fetchall()
            ]
        for job_id in purged:
            self._uploads.remove(job_id)
        self._uploads.sweep(now, self._is_unfinished)
        if purged:
            log.info("expired jobs purged", extra={"count": len(purged)})
        return len(purged)

    # --- used by the webhook sender -------------------------------------------------------------

    def claim_webhooks(self, now: float, limit: int, lease_s: float) -> list[Job]:
        with self._write() as db:
            rows = db.execute(
                "UPDATE jobs SET webhook_next_at = ? WHERE id IN ("
                "  SELECT id FROM jobs WHERE webhook_state = ? AND webhook_next_at <= ?"
                f"  ORDER BY webhook_next_at LIMIT ?{self._skip_locked}"
                f") RETURNING {_SUMMARY}",
                (now + lease_s, WebhookState.PENDING.value, now, limit),
            ).fetchall()
        return [self._job(r) for r in rows]

    def record_webhook_attempt(
        self,
        job_id: str,
        *,
        delivered: bool,
        error: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        if delivered:
            state, next_at, delivered_at = WebhookState.DELIVERED, None, self._clock()
        elif retry_at is None:
            state, next_at, delivered_at = WebhookState.FAILED, None, None
        else:
            state, next_at, delivered_at = WebhookState.PENDING, retry_at, None
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET webhook_attempts = webhook_attempts + 1, webhook_state = ?, "
                "webhook_next_at = ?, webhook_delivered_at = ?, "
                "webhook_last_error = COALESCE(?, webhook_last_error) "
                "WHERE id = ? AND webhook_state = ?",
                (
                    state.value,
                    next_at,
                    delivered_at,
                    error,
                    job_id,
                    WebhookState.PENDING.value,
                ),
            )

    def next_webhook_due(self) -> float | None:
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(webhook_next_at) AS t FROM jobs WHERE webhook_state = ?",
                (WebhookState.PENDING.value,),
            ).fetchone()
        due: float | None = row["t"]
        return due

    # --- listing (last: a method named `list` would shadow the builtin in the annotations of the
    # methods defined after it) -------------------------------------------------------------

    def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        state: JobState | None = None,
    ) -> JobPage:
        check_page_size(limit)
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(JobState(state).value)
        if cursor is not None:
            created_at, job_id = decode_cursor(cursor)
            where.append("(created_at, id) < (?, ?)")
            params += [created_at, job_id]
        sql = f"SELECT {_SUMMARY} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)  # one more than asked says whether another page exists
        with self._read() as db:
            rows = db.execute(sql, params).fetchall()
        jobs = [self._job(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)


def iter_statements(schema: str) -> Iterator[str]:
    """The statements of a schema script, one at a time (drivers run one per call)."""
    for statement in schema.split(";"):
        if statement.strip():
            yield statement
