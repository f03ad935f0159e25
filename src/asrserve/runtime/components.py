"""Building blocks shared by the entry points: models, the job store and the job queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from asrserve.config import Settings
from asrserve.engine import ModelRegistry, TranscribeOptions
from asrserve.engine.batching import BatchStats
from asrserve.jobs import (
    JobQueue,
    JobRunner,
    JobStore,
    SQLiteJobStore,
    WebhookSender,
    registry_transcriber,
)
from asrserve.jobs.options import SQLITE_STORE, JobOptions
from asrserve.observability.metrics import Metrics

log = logging.getLogger(__name__)


def build_registry(
    settings: Settings, metrics: Metrics | None = None, *, pinned: Collection[str] | None = None
) -> ModelRegistry:
    """The models of every entry point (`transcribe`, which exports no metrics, passes none).
    `pinned`: for a long-running process, the models it always keeps; the others are unloaded
    once idle for `model_idle_ttl_s`. None, for a one-shot command: nothing is unloaded."""
    on_batch: Callable[[str, BatchStats], None] | None = None
    on_load: Callable[[str, float], None] | None = None
    if metrics is not None:
        on_load = metrics.track_model_load

        def on_batch(model: str, stats: BatchStats) -> None:
            metrics.track_batch(
                model,
                stats.items,
                stats.windows,
                stats.redecoded,
                stats.decode_seconds,
                stats.waited_seconds,
            )

    return ModelRegistry(
        cache_dir=settings.model_dir,
        engine_settings=settings.engine_settings(),
        batching=settings.batching(),
        limits=settings.limits(),
        languages=settings.language_options(),
        on_batch=on_batch,
        on_load=on_load,
        idle_ttl_s=None if pinned is None else (settings.model_idle_ttl_s or None),
        pinned=pinned or (),
        engine_settings_of=dict.fromkeys(
            settings.stream_options().partial_models, settings.partial_engine_settings()
        ),
    )


def watch_jobs(metrics: Metrics, registry: ModelRegistry, store: JobStore) -> None:
    """The gauges every process exports at scrape time: batcher depth and the store's jobs."""
    metrics.watch(
        queue_depth=lambda: {m.name: m.batcher.pending for m in registry.loaded()},
        jobs_by_state=lambda: {s.value: n for s, n in store.count_by_state().items()},
        oldest_job_queued_at=store.oldest_queued_at,
    )


def build_job_store(options: JobOptions) -> JobStore:
    """SQLite under `data_dir`, or the PostgreSQL database of `options.store`."""
    if options.store == SQLITE_STORE:
        return SQLiteJobStore(
            options.data_dir,
            upload_dir=options.upload_dir,
            retention_s=options.retention_s,
            max_attempts=options.max_attempts,
        )
    from asrserve.jobs.postgres import PostgresJobStore  # psycopg only where it is used

    return PostgresJobStore(
        options.store,
        upload_dir=options.uploads,
        retention_s=options.retention_s,
        max_attempts=options.max_attempts,
    )


def webhook_sender(store: JobStore, options: JobOptions) -> WebhookSender:
    return WebhookSender(
        store,
        max_attempts=options.webhook_max_attempts,
        secret=options.webhook_secret,
        allow_private=options.webhook_allow_private,
    )


def build_job_queue(
    options: JobOptions, store: JobStore, registry: ModelRegistry, metrics: Metrics
) -> JobQueue:
    """The server's queue: worker threads in this process (`local`), or Celery on Redis, whose
    workers are other processes (`asrserve worker`)."""
    if not options.distributed:
        return JobRunner(
            store,
            registry_transcriber(registry, TranscribeOptions.from_record),
            workers=options.workers,
            on_finished=lambda job: metrics.track_job_finished(job.state.value),
            webhooks=webhook_sender(store, options),
            # A PostgreSQL store may be shared by several servers: lease, never requeue all.
            lease_s=None if options.store == SQLITE_STORE else options.lease_s,
        )
    from asrserve.jobs.celery_queue import CeleryJobQueue, make_celery

    return CeleryJobQueue(make_celery(options), options)
