"""The embedded job store: one SQLite database and a directory of uploads, nothing to install.

The semantics (transitions, leases, uploads) are `SqlJobStore`'s; this module opens the
database and keeps its schema.

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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from asrserve.jobs.options import JobOptions
from asrserve.jobs.sqlstore import SqlJobStore, iter_statements
from asrserve.jobs.uploads import STRAY_UPLOAD_GRACE_S

__all__ = ["DB_NAME", "STRAY_UPLOAD_GRACE_S", "SQLiteJobStore"]

DB_NAME = "jobs.sqlite3"
UPLOADS = "uploads"
SCHEMA_VERSION = 2
_DEFAULTS = JobOptions()

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
    webhook_last_error   TEXT,
    lease_expires_at     REAL,
    enqueued_at          REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_expires ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_webhook_due ON jobs (webhook_next_at)
    WHERE webhook_state = 'pending';
"""

# Each entry takes a database of schema N-1 to N (index 0: from 1 to 2).
_MIGRATIONS = (
    "ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;"
    "ALTER TABLE jobs ADD COLUMN enqueued_at REAL;"
    "UPDATE jobs SET enqueued_at = created_at",
)


class SQLiteJobStore(SqlJobStore):
    """`JobStore` on SQLite and local files; see the module docstring for the guarantees.

    `upload_dir` defaults to `data_dir/uploads`. `retention_s`, `max_attempts` and `clock` are
    `SqlJobStore`'s.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        upload_dir: Path | None = None,
        retention_s: float | None = _DEFAULTS.retention_s,
        max_attempts: int = _DEFAULTS.max_attempts,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(
            upload_dir or self.data_dir / UPLOADS,
            retention_s=retention_s,
            max_attempts=max_attempts,
            clock=clock,
        )
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
            tables = db.execute("SELECT name FROM sqlite_master WHERE name = 'jobs'").fetchone()
            if tables is not None and 0 < version < SCHEMA_VERSION:
                for migration in _MIGRATIONS[version - 1 :]:
                    for statement in iter_statements(migration):
                        db.execute(statement)
            for statement in iter_statements(_SCHEMA):
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
