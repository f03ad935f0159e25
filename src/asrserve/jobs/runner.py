"""Run queued jobs: the in-process queue of the embedded server.

`JobRunner` is a pool of worker threads in the server process. Each claims the oldest queued
job from the store, calls the injected `transcribe(job, upload_path, progress)`, reports
progress into the store and finishes the job. The runner knows nothing of HTTP or of how a
job's `options` become `TranscribeOptions`: the entry point supplies `transcribe` (see
`registry_transcriber`), which keeps this package independent of the API.

What the API needs from "the queue" is the `JobQueue` protocol: `submit` a job that is already
durable in the store, `wake`, `start`, `stop`. Cancelling needs nothing from the queue: the
route flags the job in the store and the worker stops at its next progress report.

Scaled out, `CeleryJobQueue` (`celery_queue`) is the API side's `JobQueue`: `submit` sends the
job id to Redis, and `asrserve worker` processes run each message with `JobWorker` (`worker`),
which leases the job in the shared store and calls `execute_job`, the function the threads
here use, so progress, cancellation, error codes and webhooks behave the same.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from asrserve.engine import AsrError, ModelRegistry, TranscribeOptions, Transcript
from asrserve.engine.pipeline import ProgressCallback
from asrserve.jobmodel.records import Job
from asrserve.jobs.store import JobStore
from asrserve.jobs.webhooks import WebhookSender

log = logging.getLogger(__name__)

TranscribeFn = Callable[[Job, Path, ProgressCallback], Transcript]
"""Transcribe a job's upload, calling `progress(done_s, total_s)` as audio is decoded; an
exception the callback raises must abort the decode and propagate (the pipeline's does)."""

INTERNAL_ERROR = "internal_error"
UPLOAD_MISSING = "upload_missing"


class JobCancelled(Exception):
    """Raised by the progress callback when the job's cancel was requested."""


class JobInterrupted(Exception):
    """Raised by the progress callback when the runner stops past its deadline."""


class JobQueue(Protocol):
    """What the API needs from the queue, whatever runs the jobs (threads here, Celery later)."""

    def start(self) -> None:
        """Begin running jobs (in API processes of a distributed setup: nothing to do)."""
        ...

    def submit(self, job: Job) -> None:
        """Run `job`, which the store already holds durably as queued. Losing this call (a
        crash right after the store's create) loses nothing: queued jobs are found again."""
        ...

    def wake(self) -> None:
        """Something changed in the store (a job created or cancelled): look now, not at the
        next poll."""
        ...

    def stop(self, deadline_s: float) -> None:
        """Stop taking jobs; let running ones finish within `deadline_s` and hand the rest
        back to the queue so the next start resumes them."""
        ...


PROGRESS_INTERVAL_S = 0.5
"""A running job's progress is written to the store at most this often."""
PURGE_INTERVAL_S = 300.0
"""Expired jobs and stray uploads are removed this often."""


class ProgressReporter:
    """The progress callback given to `transcribe` for one job.

    Writes progress to the store at most every `interval_s` (and always the final report), and
    turns the store's answer into an exception that aborts the decode: `JobCancelled` when the
    client cancelled, `JobInterrupted` when the runner is stopping past its deadline.
    """

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        worker_id: str | None,
        *,
        interval_s: float = PROGRESS_INTERVAL_S,
        abort: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.abort = abort
        self._last = float("-inf")

    def __call__(self, done_s: float, total_s: float) -> None:
        if self.abort is not None and self.abort.is_set():
            raise JobInterrupted(self.job_id)
        now = time.monotonic()
        if done_s < total_s and now - self._last < self.interval_s:
            return
        self._last = now
        try:
            stop = self.store.update_progress(
                self.job_id, done_s, total_s, worker_id=self.worker_id
            )
        except Exception:
            # Progress is informative: a store hiccup must not fail an hour-long decode.
            log.warning("could not record progress", exc_info=True, extra={"job_id": self.job_id})
            return
        if stop:
            raise JobCancelled(self.job_id)


_UPLOAD_MISSING_SENTENCE = (
    "The job's upload is missing from the server's storage, so it cannot be transcribed; "
    "submit the file again."
)
_INTERNAL_ERROR_SENTENCE = (
    "The job failed because of an internal error in the server; submit it again, and report "
    "the problem if it persists."
)


def _hand_back(
    store: JobStore, job_id: str, worker_id: str | None, extra: dict[str, Any]
) -> Job | None:
    """Requeues a job this runner is stopping under; returns it only when it ended instead."""
    if store.release(job_id, worker_id=worker_id):
        log.info("job handed back on stop", extra=extra)
        return None
    # Not requeued: a cancel had been requested, and release cancelled it instead.
    now = store.get(job_id)
    return now if now and now.state.finished and now.worker_id == worker_id else None


def execute_job(
    store: JobStore,
    job: Job,
    transcribe: TranscribeFn,
    *,
    worker_id: str | None,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
    abort: threading.Event | None = None,
) -> Job | None:
    """Run one job already claimed by `worker_id` to its end and record the outcome.

    Returns the finished job, or None when the job was handed back to the queue (the runner is
    stopping) or is no longer this worker's. Errors become the job's error: an `AsrError` keeps
    its code and sentence; anything else is logged and reported as `internal_error`.
    """
    extra: dict[str, Any] = {"job_id": job.id, "worker_id": worker_id, "model": job.model}
    path = store.upload_path(job.id)
    if not path.is_file():
        log.error("job upload missing", extra=extra)
        return store.fail(job.id, UPLOAD_MISSING, _UPLOAD_MISSING_SENTENCE, worker_id=worker_id)
    progress = ProgressReporter(
        store, job.id, worker_id, interval_s=progress_interval_s, abort=abort
    )
    started = time.monotonic()
    log.info("job started", extra={**extra, "attempt": job.attempts})
    try:
        transcript = transcribe(job, path, progress)
    except JobCancelled:
        log.info("job cancelled while running", extra=extra)
        return store.mark_cancelled(job.id, worker_id=worker_id)
    except JobInterrupted:
        return _hand_back(store, job.id, worker_id, extra)
    except AsrError as exc:
        log.warning("job failed", extra={**extra, "error_code": exc.code, "error": str(exc)})
        message = str(exc) or f"The job failed ({exc.code})."
        return store.fail(job.id, exc.code, message, worker_id=worker_id)
    except Exception:
        if abort is not None and abort.is_set():
            # Shutting down: the model was released under this decode; not the job's fault.
            store.release(job.id, worker_id=worker_id)
            log.info("job interrupted by shutdown", extra=extra)
            return None
        log.exception("job failed with an internal error", extra=extra)
        return store.fail(job.id, INTERNAL_ERROR, _INTERNAL_ERROR_SENTENCE, worker_id=worker_id)
    finished = store.complete(job.id, transcript, worker_id=worker_id)
    log.info(
        "job finished",
        extra={
            **extra,
            "state": finished.state.value if finished else None,
            "seconds": round(time.monotonic() - started, 3),
            "audio_seconds": round(transcript.duration, 3),
        },
    )
    return finished


def renew_leases(store: JobStore, jobs: Mapping[str, str], lease_s: float) -> None:
    """Heartbeat for running jobs (job id -> worker id). A lease already lost (taken over after
    a pause longer than the lease) is only logged: the store refuses that worker's result, and
    its next progress report stops it."""
    for job_id, worker_id in jobs.items():
        if not store.renew_lease(job_id, worker_id, lease_s):
            log.warning("job lease lost", extra={"job_id": job_id, "worker_id": worker_id})


def announce_finished(
    job: Job, webhooks: WebhookSender | None, on_finished: Callable[[Job], None] | None
) -> None:
    """After a worker finished `job`: its webhook is due now, and `on_finished` (metrics) hears
    of it; a failing callback is logged, never raised into the worker."""
    if webhooks is not None and job.webhook_url:
        webhooks.wake()
    if on_finished is not None:
        try:
            on_finished(job)
        except Exception:
            log.exception("on_finished callback failed", extra={"job_id": job.id})


def registry_transcriber(
    registry: ModelRegistry, to_options: Callable[[Mapping[str, Any]], TranscribeOptions]
) -> TranscribeFn:
    """A `transcribe` for `JobRunner`: the job's model from `registry`, its stored options
    turned into `TranscribeOptions` by `to_options` (`TranscribeOptions.from_record`)."""

    def transcribe(job: Job, path: Path, progress: ProgressCallback) -> Transcript:
        options = to_options(job.options)
        with registry.use(job.model) as model:
            # Progressive: the first chunk alone, so a long job shows progress early.
            return model.pipeline.transcribe(path, options, progress=progress, progressive=True)

    return transcribe


class JobRunner:
    """Worker threads that run the store's queued jobs (`JobQueue` for one process).

    A runner starts once and stops once. `start` first hands every job left running by a
    previous process back to the queue (unless `recover=False`), so only one process may run
    workers on such a store. With `lease_s` (a store shared by several servers), jobs are leased
    instead: renewed while they run, queued again by any runner once their lease ran out, and
    nothing is requeued at start. `on_finished` is called with each job a worker finishes
    (metrics); `webhooks`, when given, is started and stopped with the runner and woken when
    jobs finish. Expired jobs are purged every `purge_interval_s`.
    """

    def __init__(
        self,
        store: JobStore,
        transcribe: TranscribeFn,
        *,
        workers: int = 1,
        poll_interval_s: float = 0.5,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
        purge_interval_s: float = PURGE_INTERVAL_S,
        recover: bool = True,
        lease_s: float | None = None,
        on_finished: Callable[[Job], None] | None = None,
        webhooks: WebhookSender | None = None,
        name: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.store = store
        self.transcribe = transcribe
        self.workers = workers
        self.poll_interval_s = poll_interval_s
        self.progress_interval_s = progress_interval_s
        self.purge_interval_s = purge_interval_s
        self.recover = recover and lease_s is None
        self.lease_s = lease_s
        self.on_finished = on_finished
        self.webhooks = webhooks
        # Unique per runner, so a stale thread of a stopped runner cannot touch a job that a
        # newer runner in the same process claimed again.
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}  # worker id -> job id
        self._threads: list[threading.Thread] = []
        self._started = False

    @property
    def active_jobs(self) -> dict[str, str]:
        """Worker id -> id of the job it is running, right now."""
        with self._lock:
            return dict(self._active)

    def start(self) -> None:
        if self._started:
            raise RuntimeError("a JobRunner starts once; make a new one")
        self._started = True
        if self.recover:
            requeued = self.store.requeue_interrupted()
            if requeued:
                log.warning("resuming interrupted jobs", extra={"count": len(requeued)})
        if self.webhooks is not None:
            self.webhooks.start()
        for n in range(self.workers):
            worker_id = f"{self.name}/{n}"
            thread = threading.Thread(
                target=self._work, args=(worker_id,), name=f"asrserve-job-{n}", daemon=True
            )
            self._threads.append(thread)
        housekeeping = threading.Thread(
            target=self._housekeeping, name="asrserve-job-purge", daemon=True
        )
        self._threads.append(housekeeping)
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        """The job is already durable in the store; just make an idle worker look now."""
        self.wake()

    def wake(self) -> None:
        self._wake.set()
        if self.webhooks is not None:
            self.webhooks.wake()

    def stop(self, deadline_s: float = 30.0) -> None:
        """Stop claiming; give running jobs `deadline_s` to finish; then abort the rest at
        their next progress report and hand them back to the queue. A worker stuck inside a
        long chunk past that is left to die with the process: its job is handed back here, and
        the worker's late result is ignored (the job is no longer its own)."""
        if not self._started:
            return
        self._stopping.set()
        self._wake.set()
        end = time.monotonic() + max(0.0, deadline_s)
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self._abort.set()
            grace_end = time.monotonic() + min(5.0, max(1.0, self.progress_interval_s * 2))
            for thread in self._threads:
                thread.join(max(0.0, grace_end - time.monotonic()))
            for worker_id, job_id in self.active_jobs.items():
                if self.store.release(job_id, worker_id=worker_id):
                    log.warning("job handed back on stop", extra={"job_id": job_id})
        if self.webhooks is not None:
            self.webhooks.stop(max(0.0, end - time.monotonic()))

    # --- threads --------------------------------------------------------------------------------

    def _work(self, worker_id: str) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next(worker_id, lease_s=self.lease_s)
            except Exception:
                log.exception("claiming a job failed", extra={"worker_id": worker_id})
                self._stopping.wait(self.poll_interval_s)
                continue
            if job is None:
                self._wake.wait(self.poll_interval_s)
                # Cleared after waking: a job created meanwhile is committed before its wake,
                # so the claim that follows sees it.
                self._wake.clear()
                continue
            with self._lock:
                self._active[worker_id] = job.id
            try:
                finished = execute_job(
                    self.store,
                    job,
                    self.transcribe,
                    worker_id=worker_id,
                    progress_interval_s=self.progress_interval_s,
                    abort=self._abort,
                )
            except Exception:
                # Only the store can fail here (execute_job catches the job's own errors);
                # the job stays running and is recovered at the next start.
                log.exception("recording a job's outcome failed", extra={"job_id": job.id})
                finished = None
            finally:
                with self._lock:
                    self._active.pop(worker_id, None)
            if finished is not None:
                self._finished(finished)

    def _finished(self, job: Job) -> None:
        announce_finished(job, self.webhooks, self.on_finished)

    def _housekeeping(self) -> None:
        interval = self.purge_interval_s
        if self.lease_s is not None:
            interval = min(interval, max(0.2, self.lease_s / 3))
        next_purge = time.monotonic()
        while not self._stopping.is_set():
            try:
                if self.lease_s is not None:
                    # A shared store: other servers' runners may have died mid-job.
                    jobs = {job_id: worker for worker, job_id in self.active_jobs.items()}
                    renew_leases(self.store, jobs, self.lease_s)
                    self.store.reap_expired()
                if time.monotonic() >= next_purge:
                    self.store.purge_expired()
                    next_purge = time.monotonic() + self.purge_interval_s
            except Exception:
                log.exception("job housekeeping failed")
            self._stopping.wait(interval)
