"""`JobWorker`: runs the jobs a broker delivers, with leases, a reaper and graceful shutdown.

A broker (Celery) calls `run(job_id)` from one of its pool threads for each message. The worker
leases the job in the store (`claim`), renews the lease by heartbeat while it runs, and runs it
with `execute_job`, the function the embedded `JobRunner` uses, so progress, cancellation,
error codes and webhooks are the same. What makes it safe with several workers on one store:

- **Duplicates do nothing.** A message for a job another live worker holds, or one already
  finished, is acknowledged without work (`claim` returns None).
- **A dead worker's job runs again soon.** Its lease stops being renewed; within about
  `lease_s` the reaper thread of any live worker queues the job again and sends a new message
  (and `claim` takes over an expired lease even before that). The broker's own redelivery,
  after its visibility timeout, is only the last resort.
- **Lost messages are sent again.** A job queued in the store longer than `resend_after_s`
  since it was last sent (a broker that lost its data, an API process killed between `create`
  and `submit`) is sent again by the reaper.
- **A job that kills its workers stops.** Each start counts an attempt; after `max_attempts`
  the store fails it with `job_crashed`.
- **A consumer that stopped is noticed.** Celery's Redis consumer can stop taking messages
  after the broker restarts while a job is running (its acknowledgement fails and nothing
  reconnects; celery/celery#8030, #10205 describe the same). A worker that has had a free slot
  for two resend periods while jobs waited is in that state: it reports itself unhealthy and
  calls `on_stalled` (the runtime stops the process with status 1, for its supervisor to
  restart it). Its running jobs drain as on SIGTERM.
- **SIGTERM drains.** `begin_shutdown(grace_s)` lets running jobs finish for `grace_s`, then
  aborts them at their next progress report; they are handed back to the queue (not counted as
  an attempt) and sent again, so another worker resumes them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from asrserve.jobmodel.records import Job, JobState
from asrserve.jobs.options import JobOptions
from asrserve.jobs.runner import (
    PROGRESS_INTERVAL_S,
    PURGE_INTERVAL_S,
    TranscribeFn,
    announce_finished,
    execute_job,
    renew_leases,
)
from asrserve.jobs.store import JobStore
from asrserve.jobs.webhooks import WebhookSender

log = logging.getLogger(__name__)


class JobWorker:
    """The jobs of one worker process. `resend(job_id)` sends a job's message again (the
    queue's `send`); `on_finished` is called with each finished job (metrics)."""

    def __init__(
        self,
        store: JobStore,
        transcribe: TranscribeFn,
        options: JobOptions,
        *,
        resend: Callable[[str], bool],
        webhooks: WebhookSender | None = None,
        on_finished: Callable[[Job], None] | None = None,
        on_stalled: Callable[[], None] | None = None,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.transcribe = transcribe
        self.lease_s = options.lease_s
        self.resend_after_s = options.resend_after_s
        self.capacity = options.workers
        self.resend = resend
        self.webhooks = webhooks
        self.on_finished = on_finished
        self.on_stalled = on_stalled
        self._clock = clock
        self.stalled = False
        self._free_since: float | None = clock()
        self.progress_interval_s = progress_interval_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.maintenance_interval_s = max(0.2, min(self.lease_s / 3, 10.0))
        self._abort = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}  # job id -> worker id
        self._last_maintenance = time.monotonic()
        self._thread: threading.Thread | None = None
        self._shutdown_timer: threading.Timer | None = None

    # --- state -----------------------------------------------------------------------------------

    @property
    def busy(self) -> int:
        """Jobs running in this process now."""
        with self._lock:
            return len(self._active)

    def healthy(self) -> bool:
        """Liveness: the heartbeat thread is alive and has run recently (a stuck process, or
        one whose thread died, stops renewing leases and must be restarted)."""
        if self.stalled or self._thread is None or not self._thread.is_alive():
            return False
        return time.monotonic() - self._last_maintenance < 3 * self.maintenance_interval_s + 5

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a JobWorker starts once")
        if self.webhooks is not None:
            self.webhooks.start()
        self._thread = threading.Thread(
            target=self._maintain, name="asrserve-job-heartbeat", daemon=True
        )
        self._thread.start()

    def begin_shutdown(self, grace_s: float) -> None:
        """Running jobs get `grace_s` to finish; then they are aborted and handed back."""
        if self._shutdown_timer is None:
            log.info("worker draining", extra={"jobs_running": self.busy, "grace_s": grace_s})
            self._shutdown_timer = threading.Timer(max(0.0, grace_s), self._abort.set)
            self._shutdown_timer.daemon = True
            self._shutdown_timer.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
        if self._thread is not None:
            self._thread.join(5)
        if self.webhooks is not None:
            self.webhooks.stop(5)

    # --- jobs ------------------------------------------------------------------------------------

    def run(self, job_id: str) -> str:
        """Run the job of one message to its end; returns what happened (for logs and tests):
        `skipped` (finished, unknown or held by a live worker), `handed back`, or the job's
        final state."""
        worker_id = f"{self.name}/{threading.get_ident()}"
        if self._abort.is_set():
            self.resend(job_id)  # draining: leave it to another worker
            return "handed back"
        job = self.store.claim(job_id, worker_id, lease_s=self.lease_s)
        if job is None:
            log.info("job message skipped", extra={"job_id": job_id, "worker_id": worker_id})
            return "skipped"
        with self._lock:
            self._active[job.id] = worker_id
            if len(self._active) >= self.capacity:
                self._free_since = None
        try:
            finished = execute_job(
                self.store,
                job,
                self.transcribe,
                worker_id=worker_id,
                progress_interval_s=self.progress_interval_s,
                abort=self._abort,
            )
        finally:
            with self._lock:
                self._active.pop(job.id, None)
                if self._free_since is None:
                    self._free_since = self._clock()
        if finished is None:
            current = self.store.get(job.id)
            if current is not None and current.state is JobState.QUEUED:
                self.resend(job.id)
                return "handed back"
            return "skipped"  # another worker holds it now
        announce_finished(finished, self.webhooks, self.on_finished)
        return finished.state.value

    # --- the heartbeat thread ------------------------------------------------------------------

    def _maintain(self) -> None:
        next_purge = time.monotonic()
        while not self._stopping.is_set():
            self._last_maintenance = time.monotonic()
            try:
                self._renew_leases()
                self._reap()
                if time.monotonic() >= next_purge:
                    self.store.purge_expired()
                    next_purge = time.monotonic() + PURGE_INTERVAL_S
            except Exception:
                # The store may be down for a while; leases are renewed as soon as it is back.
                log.warning("job heartbeat failed", exc_info=True)
            self._stopping.wait(self.maintenance_interval_s)

    def _renew_leases(self) -> None:
        with self._lock:
            active = dict(self._active)
        renew_leases(self.store, active, self.lease_s)

    def _reap(self) -> None:
        for job_id in self.store.reap_expired():
            self.resend(job_id)
        sent = False
        for job_id in self.store.stale_queued(self.resend_after_s):
            log.info("job waited long; its message is sent again", extra={"job_id": job_id})
            sent = self.resend(job_id) or sent
        if sent:  # the broker takes messages: a free consumer should be getting them
            self._check_consuming()

    def _check_consuming(self) -> None:
        """Jobs waited a resend period; if this worker was free all along for two of them,
        messages sent meanwhile never reached it."""
        with self._lock:
            free_since = self._free_since
        if free_since is None or self.stalled or self._abort.is_set():
            return
        if self._clock() - free_since < 2 * self.resend_after_s:
            return
        self.stalled = True
        log.error(
            "worker has had a free slot while jobs waited; its broker consumer has stopped, so "
            "it stops to be restarted",
            extra={"free_for_s": round(self._clock() - free_since, 1)},
        )
        if self.on_stalled is not None:
            self.on_stalled()
