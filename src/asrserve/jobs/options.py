"""Job settings as plain values: the one home of their defaults (the settings read them here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "asrserve"
LOCAL_QUEUE = "local"
SQLITE_STORE = "sqlite"


def _redact(url: str) -> str:
    """A URL fit for logs and error sentences: the password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


@dataclass(frozen=True, slots=True)
class JobOptions:
    store: str = SQLITE_STORE
    """`sqlite` (embedded, under `data_dir`) or a `postgresql://` URL shared by every process."""
    queue: str = LOCAL_QUEUE
    """`local` (worker threads in the server process) or a `redis://` URL (Celery workers)."""
    data_dir: Path = field(default_factory=lambda: DEFAULT_DATA_DIR)
    upload_dir: Path | None = None
    """Where uploads are kept until their job finishes (default `data_dir/uploads`). With the
    Redis queue, every API replica and worker must see the same directory (a shared volume)."""
    workers: int = 1
    """Jobs decoded at once: threads of the server (`local`) or of each worker process."""
    retention_s: float | None = 7 * 24 * 3600.0
    """How long a finished job and its result are kept (None: forever)."""
    max_attempts: int = 3
    """Starts a job gets when each one ends with its worker dying; then it fails."""
    lease_s: float = 60.0
    """A worker renews its job's lease by heartbeat; a job whose lease ran out (its worker died)
    is queued again by the reaper, so it runs again within about this long."""
    resend_after_s: float = 600.0
    """A job queued this long since its message was sent has its message sent again (the
    broker lost it, or the API process died before sending it); duplicates do nothing."""
    max_job_s: float = 4 * 3600.0
    """The longest a job may run; the broker's visibility timeout is set above it so a running
    job is never delivered a second time while its worker lives."""
    webhook_max_attempts: int = 5
    webhook_secret: str | None = None
    """Signs every webhook delivery (HMAC-SHA256 over timestamp and body) when set."""
    webhook_allow_private: bool = False
    """Allow webhook URLs that resolve to loopback, link-local or private addresses."""
    queue_name: str = "asrserve-jobs"

    @property
    def uploads(self) -> Path:
        return self.upload_dir or self.data_dir / "uploads"

    @property
    def distributed(self) -> bool:
        return self.queue != LOCAL_QUEUE

    def describe(self) -> dict[str, str]:
        """The backends, passwords redacted: for the start-up log line."""
        return {"job_store": _redact(self.store), "job_queue": _redact(self.queue)}

    def validate(self) -> None:
        """Refuse a combination that cannot work, with a sentence saying what to change."""
        store_ok = self.store == SQLITE_STORE or self.store.startswith(
            ("postgresql://", "postgres://")
        )
        if not store_ok:
            raise ValueError(
                f"ASRSERVE_JOB_STORE must be 'sqlite' or a postgresql:// URL, not "
                f"{_redact(self.store)!r}."
            )
        queue_ok = self.queue == LOCAL_QUEUE or self.queue.startswith(("redis://", "rediss://"))
        if not queue_ok:
            raise ValueError(
                f"ASRSERVE_JOB_QUEUE must be 'local' or a redis:// URL, not "
                f"{_redact(self.queue)!r}."
            )
        if self.distributed and self.store == SQLITE_STORE:
            raise ValueError(
                "The redis job queue runs jobs in worker processes on other hosts, which cannot "
                "share an SQLite file: set ASRSERVE_JOB_STORE to a postgresql:// URL, or use "
                "ASRSERVE_JOB_QUEUE=local."
            )
        if self.lease_s <= 0 or self.max_job_s <= self.lease_s:
            raise ValueError("job_lease_s must be positive and shorter than job_max_seconds.")
