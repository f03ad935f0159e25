"""`asrserve worker`: a Celery worker on the Redis queue that runs jobs from the shared store.

One process loads each model once, before it takes a job, and runs up to `concurrency` jobs in
threads of that process (Celery's `threads` pool): the threads share the model and its batcher,
and nothing forks after the model (or CUDA) was loaded. Configuration is the Celery app's
(`asrserve.jobs.celery_queue`); leases, the reaper and the drain are `JobWorker`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
from typing import Any

from celery import Celery
from celery.signals import worker_shutting_down

from asrserve.config import Settings
from asrserve.engine import TranscribeOptions
from asrserve.jobs import registry_transcriber
from asrserve.jobs.celery_queue import TASK_NAME, CeleryJobQueue, make_celery
from asrserve.jobs.options import JobOptions
from asrserve.jobs.worker import JobWorker
from asrserve.observability.health_server import HealthServer
from asrserve.observability.metrics import Metrics
from asrserve.runtime.components import (
    build_job_store,
    build_registry,
    watch_jobs,
    webhook_sender,
)

log = logging.getLogger(__name__)


def distributed_job_options(settings: Settings, concurrency: int | None) -> JobOptions:
    """The job options a worker runs with; refuses settings without a shared queue and store."""
    job_options = settings.job_options()
    if concurrency is not None:
        job_options = dataclasses.replace(job_options, workers=concurrency)
    job_options.validate()
    if not job_options.distributed:
        raise ValueError(
            "asrserve worker takes jobs from a Redis queue: set ASRSERVE_JOB_QUEUE to a "
            "redis:// URL and ASRSERVE_JOB_STORE to a postgresql:// URL (with the local queue, "
            "`asrserve serve` runs the jobs itself)."
        )
    return job_options


def _consumer(
    celery: Celery, job_options: JobOptions, queues: list[str] | None, log_level: str
) -> Any:
    # Threads share the loaded model; mingle, gossip and heartbeats only add broker traffic
    # for features (remote control, clock sync) asrserve does not use.
    return celery.Worker(
        hostname=f"asrserve@{socket.gethostname()}",
        pool="threads",
        concurrency=job_options.workers,
        queues=queues or [job_options.queue_name],
        loglevel=log_level.upper(),
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
    )


def run_worker(
    settings: Settings, *, concurrency: int | None = None, queues: list[str] | None = None
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    job_options = distributed_job_options(settings, concurrency)
    metrics = Metrics()
    registry = build_registry(settings, metrics, pinned={settings.model})
    # Loaded here, in the process that runs the jobs, before the first message is taken.
    registry.release(registry.acquire(settings.model))
    store = build_job_store(job_options)
    celery = make_celery(job_options)
    queue = CeleryJobQueue(celery, job_options)
    status = {"code": 0}

    def stalled() -> None:
        # A warm shutdown (running jobs drain within the grace period), then exit 1, so the
        # supervisor (Kubernetes, Compose, systemd) starts a fresh process.
        status["code"] = 1
        os.kill(os.getpid(), signal.SIGTERM)

    worker = JobWorker(
        store,
        registry_transcriber(registry, TranscribeOptions.from_record),
        job_options,
        resend=queue.send,
        webhooks=webhook_sender(store, job_options),
        on_finished=lambda job: metrics.track_job_finished(job.state.value),
        on_stalled=stalled,
    )
    celery.task(name=TASK_NAME, ignore_result=True)(worker.run)
    watch_jobs(metrics, registry, store)
    metrics.watch(worker_jobs=lambda: (worker.busy, worker.capacity))
    health = None
    if settings.worker_port:
        health = HealthServer(settings.host, settings.worker_port, metrics, worker.healthy).start()

    def drain(**_: object) -> None:
        worker.begin_shutdown(settings.shutdown_grace_s)

    worker_shutting_down.connect(drain, weak=False)
    worker.start()
    consumer = _consumer(celery, job_options, queues, settings.log_level)
    log.info(
        "worker ready",
        extra={
            **job_options.describe(),
            "model": settings.model,
            "concurrency": job_options.workers,
            "health_port": health.port if health else None,
        },
    )
    try:
        consumer.start()
    finally:
        worker.stop()
        store.close()
        if health is not None:
            health.stop()
        log.info("worker stopped")
    return status["code"] or int(consumer.exitcode or 0)
