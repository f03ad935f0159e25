"""The embedded job store: one SQLite database and a directory of uploads, nothing to install.

Layout of `data_dir`::

    jobs.sqlite3 (+ -wal, -shm)   one row per job, results included
    uploads/<job id>              the uploaded bytes of each unfinished job

Durability. The threat is the process dying at any instruction (kill -9, OOM killer, a
segfault in a native decoder). `create` writes the upload to a temporary file, fsyncs it,
renames it into place and fsyncs the directory, and only then inserts the row; the row's commit
returns after the write-ahead log is fsynced (journal_mode=WAL, synchronous=FULL). So once
`create` returns, the job and its upload survive a killed process and also a power cut, and a
row never names an upload that is not on disk.

WAL with synchronous=NORMAL would already survive a killed process (a commit has written the
log into the kernel, which outlives the process); FULL adds one fsync per commit so that a
power cut or a host crash cannot roll back an accepted job whose upload we fsynced. Commits are
few (creation, state changes, progress at most twice a second per worker), so the fsyncs cost
little. SQLite checkpoints the log into the database on its own (every 1000 pages).

A finished job's upload is deleted at once (the result is in the row, and keeping users' audio
longer than needed is a liability); the row stays until `expires_at`. Files that lost their row
(a crash between writing an upload and inserting its row) are swept by `purge_expired`.

Threads. One connection is shared behind a lock (`check_same_thread=False`): every operation
is a short statement or transaction, so serialising them costs less than a connection per
thread would in memory and file handles, and each transaction is atomic for threads and, with
`BEGIN IMMEDIATE` and a busy timeout, for other processes opening the same directory. Only one
process may run workers on a directory, since `requeue_interrupted` treats every running job
as orphaned.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from asrserve.engine.errors import AudioTooLargeError, EmptyAudioError
from asrserve.engine.types import Transcript
from asrserve.jobs.errors import JobNotFinishedError
from asrserve.jobs.models import Job, JobPage, JobState, WebhookState, is_valid_job_id, new_job_id
from asrserve.jobs.serialization import transcript_from_json, transcript_to_json
from asrserve.jobs.store import Upload, check_page_size, decode_cursor, encode_cursor
from asrserve.jobs.webhooks import validate_webhook_url

log = logging.getLogger(__name__)

DB_NAME = "jobs.sqlite3"
UPLOADS = "uploads"
SCHEMA_VERSION = 1
DEFAULT_RETENTION_S = 7 * 24 * 3600.0
DEFAULT_MAX_ATTEMPTS = 3
STRAY_UPLOAD_GRACE_S = 3600.0
"""An upload file without a live job is removed only when older than this, so that a `create`
between writing its file and inserting its row is never swept."""
_COPY_CHUNK = 1 << 20
_MAX_FILENAME = 255
_TMP_PREFIX = ".tmp-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id                   TEXT PRIMARY KEY,
    state                TEXT NOT NULL,
    model                TEXT NOT NULL,
    options              TEXT NOT NULL,
    filename             TEXT NOT NULL,
    webhook_url          TEXT,
    upload_bytes         INTEGER NOT NULL,
    created_at           REAL NOT NULL,
    started_at           REAL,
    finished_at          REAL,
    progress_done_s      REAL NOT NULL DEFAULT 0,
    progress_total_s     REAL,
    result               TEXT,
    error_code           TEXT,
    error_message        TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    cancel_requested     INTEGER NOT NULL DEFAULT 0,
    worker_id            TEXT,
    expires_at           REAL,
    webhook_state        TEXT,
    webhook_attempts     INTEGER NOT NULL DEFAULT 0,
    webhook_next_at      REAL,
    webhook_delivered_at REAL,
    webhook_last_error   TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_expires ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_webhook_due ON jobs (webhook_next_at)
    WHERE webhook_state = 'pending';
"""

# Everything but the result, which can be megabytes: listings and webhooks do not need it.
_SUMMARY = (
    "id, state, model, options, filename, webhook_url, upload_bytes, created_at, started_at, "
    "finished_at, progress_done_s, progress_total_s, error_code, error_message, attempts, "
    "cancel_requested, worker_id, expires_at, webhook_state, webhook_attempts, "
    "webhook_delivered_at, webhook_last_error"
)
_FULL = _SUMMARY + ", result"
_FINISHED_STATES = tuple(s.value for s in JobState if s.finished)


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the directory entry is: fsync the directory itself.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SQLiteJobStore:
    """`JobStore` on SQLite and local files; see the module docstring for the guarantees.

    `retention_s` is how long a finished job and its result are kept (None: forever).
    `max_attempts` is how many starts a job gets when each one ends with the worker process
    dying; `claim_next` fails it after that. `clock` is injectable for tests.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        retention_s: float | None = DEFAULT_RETENTION_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 10.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.data_dir = Path(data_dir)
        self.uploads_dir = self.data_dir / UPLOADS
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self.max_attempts = max_attempts
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.data_dir / DB_NAME,
            timeout=busy_timeout_s,
            isolation_level=None,  # autocommit: transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,
        )
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{self.data_dir / DB_NAME}: SQLite could not enable WAL ({mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.data_dir / DB_NAME} was written by a newer asrserve (schema "
                    f"{version}, this one knows {SCHEMA_VERSION}); upgrade asrserve."
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a read-then-update cannot interleave with
        # another writer (thread or process) between its read and its update.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteJobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rows -----------------------------------------------------------------------------------

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        keys = row.keys()
        result = row["result"] if "result" in keys else None
        webhook_state = row["webhook_state"]
        return Job(
            id=row["id"],
            state=JobState(row["state"]),
            model=row["model"],
            options=json.loads(row["options"]),
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

    def upload_path(self, job_id: str) -> Path:
        if not is_valid_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.uploads_dir / job_id

    def _write_upload(self, job_id: str, upload: Upload, max_bytes: int | None) -> int:
        final = self.upload_path(job_id)
        tmp = self.uploads_dir / f"{_TMP_PREFIX}{job_id}"
        with contextlib.ExitStack() as stack:
            if isinstance(upload, bytes):
                source: BinaryIO = io.BytesIO(upload)
            elif isinstance(upload, Path):
                source = stack.enter_context(upload.open("rb"))
            else:
                source = upload
            try:
                size = 0
                with tmp.open("xb") as out:
                    while chunk := source.read(_COPY_CHUNK):
                        size += len(chunk)
                        if max_bytes is not None and size > max_bytes:
                            raise AudioTooLargeError(
                                f"The upload is larger than the {_human_bytes(max_bytes)} "
                                "allowed; send a shorter or more compressed file."
                            )
                        out.write(chunk)
                    if size == 0:
                        raise EmptyAudioError("The upload is empty: send an audio file.")
                    out.flush()
                    os.fsync(out.fileno())
                tmp.replace(final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        _fsync_dir(self.uploads_dir)
        return size

    def _remove_upload(self, job_id: str) -> None:
        try:
            self.upload_path(job_id).unlink(missing_ok=True)
        except OSError:
            # The row is already final; purge_expired sweeps the file later.
            log.warning("could not remove upload", exc_info=True, extra={"job_id": job_id})

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
        size = self._write_upload(job_id, upload, max_bytes)
        now = self._clock()
        try:
            with self._write() as db:
                row = db.execute(
                    "INSERT INTO jobs (id, state, model, options, filename, webhook_url, "
                    f"upload_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_FULL}",
                    (
                        job_id,
                        JobState.QUEUED.value,
                        model,
                        options_json,
                        filename,
                        webhook_url,
                        size,
                        now,
                    ),
                ).fetchone()
        except BaseException:
            self._remove_upload(job_id)
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
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            state = JobState(row["state"])
            if state is JobState.QUEUED:
                row = self._finish(db, job_id, JobState.CANCELLED, from_state=JobState.QUEUED)
            elif state is JobState.RUNNING:
                row = db.execute(
                    f"UPDATE jobs SET cancel_requested = 1 WHERE id = ? RETURNING {_FULL}",
                    (job_id,),
                ).fetchone()
            else:
                row = db.execute(f"SELECT {_FULL} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if state is JobState.QUEUED:
            self._remove_upload(job_id)
        log.info("job cancel requested", extra={"job_id": job_id, "state": state.value})
        return self._job(row)

    def delete(self, job_id: str) -> bool:
        if not is_valid_job_id(job_id):
            return False
        with self._write() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return False
            if not JobState(row["state"]).finished:
                raise JobNotFinishedError(
                    f"Job {job_id} is {row['state']}; cancel it first, and delete it once it "
                    "has stopped."
                )
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._remove_upload(job_id)
        log.info("job deleted", extra={"job_id": job_id})
        return True

    def count_by_state(self) -> dict[JobState, int]:
        with self._read() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(JobState, 0)
        for row in rows:
            counts[JobState(row["state"])] = row["n"]
        return counts

    def queue_depth(self) -> int:
        with self._read() as db:
            return int(
                db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state = ?", (JobState.QUEUED.value,)
                ).fetchone()[0]
            )

    # --- used by workers ------------------------------------------------------------------------

    def _finish(
        self,
        db: sqlite3.Connection,
        job_id: str,
        state: JobState,
        *,
        from_state: JobState = JobState.RUNNING,
        worker_id: str | None = None,
        result: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        duration_s: float | None = None,
    ) -> sqlite3.Row | None:
        """Move a job to a finished state inside the caller's transaction. Queuing the webhook
        here, in the same statement, is what makes a notification impossible to lose."""
        now = self._clock()
        expires_at = now + self.retention_s if self.retention_s is not None else None
        sql = (
            "UPDATE jobs SET state = ?, finished_at = ?, expires_at = ?, result = ?, "
            "error_code = ?, error_message = ?, cancel_requested = 0, "
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
        return db.execute(sql + f" RETURNING {_FULL}", params).fetchone()

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
                "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
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
        self._remove_upload(job_id)
        return self._job(row)

    def claim_next(self, worker_id: str) -> Job | None:
        poisoned: list[str] = []
        claimed = None
        with self._write() as db:
            while claimed is None:
                row = db.execute(
                    "SELECT id, attempts FROM jobs WHERE state = ? ORDER BY created_at, id LIMIT 1",
                    (JobState.QUEUED.value,),
                ).fetchone()
                if row is None:
                    break
                if row["attempts"] >= self.max_attempts:
                    self._finish(
                        db,
                        row["id"],
                        JobState.FAILED,
                        from_state=JobState.QUEUED,
                        error_code="job_crashed",
                        error_message=(
                            f"The job was started {row['attempts']} times and each time the "
                            "worker stopped before it finished, so it is not tried again; the "
                            "file may crash the decoder: convert it (for example to WAV) and "
                            "submit it again."
                        ),
                    )
                    poisoned.append(row["id"])
                    continue
                claimed = db.execute(
                    "UPDATE jobs SET state = ?, attempts = attempts + 1, started_at = ?, "
                    "worker_id = ?, progress_done_s = 0 WHERE id = ? "
                    f"RETURNING {_FULL}",
                    (JobState.RUNNING.value, self._clock(), worker_id, row["id"]),
                ).fetchone()
        for job_id in poisoned:
            log.error("job failed after repeated crashes", extra={"job_id": job_id})
            self._remove_upload(job_id)
        return self._job(claimed) if claimed is not None else None

    def update_progress(
        self, job_id: str, done_s: float, total_s: float, *, worker_id: str | None = None
    ) -> bool:
        """Record progress; returns True when the worker should stop: a cancel was requested,
        or the job is no longer running (for `worker_id`, when given)."""
        sql = "UPDATE jobs SET progress_done_s = ?, progress_total_s = ? WHERE id = ? AND state = ?"
        params: list[Any] = [float(done_s), float(total_s), job_id, JobState.RUNNING.value]
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
                "SELECT state, cancel_requested, worker_id FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if (
                row is None
                or row["state"] != JobState.RUNNING.value
                or (worker_id is not None and row["worker_id"] != worker_id)
            ):
                return False
            if row["cancel_requested"]:
                # Asked to cancel while being handed back: the cancel wins.
                self._finish(db, job_id, JobState.CANCELLED)
                cancelled = True
            else:
                db.execute(
                    "UPDATE jobs SET state = ?, attempts = MAX(attempts - 1, 0), "
                    "progress_done_s = 0 WHERE id = ?",
                    (JobState.QUEUED.value, job_id),
                )
        if cancelled:
            self._remove_upload(job_id)
        return not cancelled

    def requeue_interrupted(self) -> list[str]:
        cancelled: list[str] = []
        with self._write() as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE state = ? AND cancel_requested = 1",
                (JobState.RUNNING.value,),
            ).fetchall()
            for row in rows:
                self._finish(db, row["id"], JobState.CANCELLED)
                cancelled.append(row["id"])
            requeued = [
                r["id"]
                for r in db.execute(
                    "UPDATE jobs SET state = ?, progress_done_s = 0 WHERE state = ? RETURNING id",
                    (JobState.QUEUED.value, JobState.RUNNING.value),
                ).fetchall()
            ]
        for job_id in cancelled:
            self._remove_upload(job_id)
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
            self._remove_upload(job_id)
        self._sweep_uploads(now)
        if purged:
            log.info("expired jobs purged", extra={"count": len(purged)})
        return len(purged)

    def _sweep_uploads(self, now: float) -> None:
        """Remove upload files no unfinished job owns (left by a crash mid-create or
        mid-finish), once they are old enough that no create can still be inserting them."""
        for path in self.uploads_dir.iterdir():
            try:
                if path.stat().st_mtime > now - STRAY_UPLOAD_GRACE_S:
                    continue
            except FileNotFoundError:
                continue
            name = path.name
            if name.startswith(_TMP_PREFIX):
                stray = True
            elif is_valid_job_id(name):
                with self._read() as db:
                    row = db.execute("SELECT state FROM jobs WHERE id = ?", (name,)).fetchone()
                stray = row is None or JobState(row["state"]).finished
            else:
                stray = False  # not ours: leave it alone
            if stray:
                log.warning("removing stray upload", extra={"file": name})
                path.unlink(missing_ok=True)

    # --- used by the webhook sender -------------------------------------------------------------

    def claim_webhooks(self, now: float, limit: int, lease_s: float) -> list[Job]:
        with self._write() as db:
            rows = db.execute(
                "UPDATE jobs SET webhook_next_at = ? WHERE id IN ("
                "  SELECT id FROM jobs WHERE webhook_state = ? AND webhook_next_at <= ?"
                "  ORDER BY webhook_next_at LIMIT ?"
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
                "SELECT MIN(webhook_next_at) FROM jobs WHERE webhook_state = ?",
                (WebhookState.PENDING.value,),
            ).fetchone()
        return row[0]

    # --- listing (last: a method named `list` would shadow the builtin in the annotations of the
    # methods defined after it) -------------------------------------------------------------

    def list(
        self, *, limit: int = 20, cursor: str | None = None, state: JobState | None = None
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
