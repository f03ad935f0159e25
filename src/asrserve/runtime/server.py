"""`asrserve serve`: the HTTP API, the job queue's API side and the FunASR WebSocket, wired."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from asrserve.api.admission import Admission
from asrserve.api.app import create_app as create_api
from asrserve.api.auth import ApiKeys
from asrserve.api.deps import Services
from asrserve.api.service import TranscriptionService
from asrserve.config import Settings
from asrserve.jobs import JobService
from asrserve.jobs.options import SQLITE_STORE
from asrserve.observability.metrics import Metrics
from asrserve.runtime.components import (
    build_job_queue,
    build_job_store,
    build_registry,
    watch_jobs,
)
from asrserve.runtime.locks import DataDirLock
from asrserve.ws.server import StreamServer, StreamServerOptions

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """The server's application; its services are built when it starts and closed on stop.
    Raises ValueError for settings that cannot work together, DataDirLockedError when another
    server runs the embedded job runner on the same data directory."""
    options = settings.server_options()
    job_options = settings.job_options()
    job_options.validate()
    metrics = Metrics()
    # Only one process may run the embedded runner on a data directory: it treats every job
    # left running as its own to resume. Taken here, before the server starts, so a second
    # server is refused with the lock's sentence (DataDirLockedError), not a failed start.
    embedded = job_options.store == SQLITE_STORE
    lock = DataDirLock(job_options.data_dir).acquire() if embedded else None

    @asynccontextmanager
    async def start() -> AsyncIterator[Services]:
        registry = build_registry(settings, metrics)
        store = build_job_store(job_options)
        queue = build_job_queue(job_options, store, registry, metrics)
        jobs = JobService(
            store,
            queue,
            max_upload_bytes=options.max_upload_bytes,
            webhook_allow_private=job_options.webhook_allow_private,
        )
        admission = Admission(options.max_concurrent_requests, options.max_waiting_requests)
        watch_jobs(metrics, registry, store)
        streams = StreamServer(
            registry,
            StreamServerOptions(
                final_model=options.default_model,
                partial_model=options.partial_model,
                max_streams=options.max_streams,
                idle_timeout_s=options.stream_idle_timeout_s,
                limits=options.limits,
            ),
            metrics,
        )
        services = Services(
            options=options,
            registry=registry,
            metrics=metrics,
            admission=admission,
            transcription=TranscriptionService(registry, options, metrics, admission),
            api_keys=ApiKeys(list(options.api_keys)),
            jobs=jobs,
            streams=streams,
        )
        try:
            if options.preload:
                # Loaded before the server reports ready, so no request pays for it.
                await anyio.to_thread.run_sync(
                    lambda: registry.release(registry.acquire(options.default_model))
                )
            # Started after the model is in: jobs a crash left running resume now.
            queue.start()
            log.info("job backends", extra=job_options.describe())
            yield services
        finally:
            # In-flight jobs get the grace period; those still running go back to the queue.
            await anyio.to_thread.run_sync(queue.stop, options.shutdown_grace_s)
            await anyio.to_thread.run_sync(store.close)
            await anyio.to_thread.run_sync(registry.close)
            if lock is not None:
                lock.release()

    return create_api(options, metrics, start)
