"""The shared job store: PostgreSQL through psycopg 3 and a connection pool.

Every API replica and every worker opens one of these on the same database; the semantics are
`SqlJobStore`'s, so they are the SQLite store's. What PostgreSQL changes:

- **Concurrency.** Transactions are READ COMMITTED; a transition reads its row `FOR UPDATE`
  (so a cancel and a completion never interleave), and claims use `FOR UPDATE SKIP LOCKED` (two
  workers never wait on, or take, the same queued job).
- **Schema.** Created and migrated at start inside one transaction holding an advisory lock,
  so replicas starting together migrate once; the version is a row in `asrserve_schema`. A
  database written by a newer asrserve is refused with a sentence.
- **Outages.** A connection that cannot be had within `connect_timeout_s` (the server down or
  restarting) raises `JobStoreUnavailableError`, which the API answers with 503 and a
  Retry-After. The pool's reconnection attempts back off exponentially without a cap, so after
  a long outage it could sleep half a minute past the server's return; each attempt is
  therefore given up after `connect_timeout_s`, and the next request starts a fresh one at
  once: the first request after the server is back is served.
- **Uploads** stay files in `upload_dir`, which every process must mount (a ReadWriteMany
  volume in Kubernetes); the rows hold only their size.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from asrserve.jobmodel.errors import JobStoreUnavailableError
from asrserve.jobs.options import JobOptions
from asrserve.jobs.sqlstore import Cursor, SqlJobStore, iter_statements

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_DEFAULTS = JobOptions()
_MIGRATION_LOCK = 0x61737273  # "asrs": the advisory lock replicas take to migrate one at a time

# Index i takes the schema from version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id                   TEXT PRIMARY KEY,
        state                TEXT NOT NULL,
        model                TEXT NOT NULL,
        options              TEXT NOT NULL,
        filename             TEXT NOT NULL,
        webhook_url          TEXT,
        upload_bytes         BIGINT NOT NULL,
        created_at           DOUBLE PRECISION NOT NULL,
        started_at           DOUBLE PRECISION,
        finished_at          DOUBLE PRECISION,
        progress_done_s      DOUBLE PRECISION NOT NULL DEFAULT 0,
        progress_total_s     DOUBLE PRECISION,
        result               TEXT,
        error_code           TEXT,
        error_message        TEXT,
        attempts             INTEGER NOT NULL DEFAULT 0,
        cancel_requested     BOOLEAN NOT NULL DEFAULT FALSE,
        worker_id            TEXT,
        expires_at           DOUBLE PRECISION,
        webhook_state        TEXT,
        webhook_attempts     INTEGER NOT NULL DEFAULT 0,
        webhook_next_at      DOUBLE PRECISION,
        webhook_delivered_at DOUBLE PRECISION,
        webhook_last_error   TEXT,
        lease_expires_at     DOUBLE PRECISION,
        enqueued_at          DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
    CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at, id);
    CREATE INDEX IF NOT EXISTS jobs_expires ON jobs (expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
    CREATE INDEX IF NOT EXISTS jobs_webhook_due ON jobs (webhook_next_at)
        WHERE webhook_state = 'pending';
    """,
)


class _Transaction:
    """A pooled connection in a transaction, speaking the `?` placeholders of `SqlJobStore`."""

    def __init__(self, connection: psycopg.Connection[dict[str, Any]]) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._connection.execute(sql.replace("?", "%s"), params)


class PostgresJobStore(SqlJobStore):
    """`JobStore` on PostgreSQL; see the module docstring.

    `url` is a libpq URL (`postgresql://user:password@host:5432/db`). `pool_size` bounds the
    connections this process holds; requests beyond wait up to `connect_timeout_s`.
    """

    _for_update = " FOR UPDATE"
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(
        self,
        url: str,
        *,
        upload_dir: Path,
        retention_s: float | None = _DEFAULTS.retention_s,
        max_attempts: int = _DEFAULTS.max_attempts,
        clock: Callable[[], float] = time.time,
        pool_size: int = 8,
        connect_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            upload_dir, retention_s=retention_s, max_attempts=max_attempts, clock=clock
        )
        self.connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": max(1, round(connect_timeout_s)),
                "application_name": "asrserve",
                # A database created SQL_ASCII (initdb without a locale) would otherwise hand
                # every text column back as bytes.
                "client_encoding": "UTF8",
            },
            timeout=connect_timeout_s,
            # See "Outages" above: a short window, then a request starts a fresh attempt.
            reconnect_timeout=connect_timeout_s,
            # A connection broken by a server restart is found and replaced before use.
            check=ConnectionPool.check_connection,
            open=False,
            name="asrserve-jobs",
        )
        self._pool.open(wait=False)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS asrserve_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM asrserve_schema").fetchone()
            version = int(row["version"]) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"The job database was written by a newer asrserve (schema {version}, this "
                    f"one knows {SCHEMA_VERSION}); upgrade asrserve."
                )
            for migration in _MIGRATIONS[version:]:
                for statement in iter_statements(migration):
                    db.execute(statement)
            if row is None:
                db.execute("INSERT INTO asrserve_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                db.execute("UPDATE asrserve_schema SET version = ?", (SCHEMA_VERSION,))
        if version != SCHEMA_VERSION:
            log.info("job database schema migrated", extra={"from": version, "to": SCHEMA_VERSION})

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._pool.connection() as connection:
                yield connection
        except (PoolTimeout, psycopg.OperationalError) as exc:
            # Down, restarting or unreachable: nothing the client did; it may retry.
            log.warning("job database unavailable", extra={"error": str(exc)})
            raise JobStoreUnavailableError(
                "The job database is unavailable right now, so jobs cannot be read or created; "
                "retry in a few seconds."
            ) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Transaction]:
        # The pool's context commits when the block ends cleanly and rolls back on an error.
        with self._connection() as connection:
            yield _Transaction(connection)

    _read = _write

    def ping(self) -> bool:
        """Whether the database answers now (readiness)."""
        try:
            with self._read() as db:
                db.execute("SELECT 1")
        except JobStoreUnavailableError:
            return False
        return True

    def close(self) -> None:
        self._pool.close()
