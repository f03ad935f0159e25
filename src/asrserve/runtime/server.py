"""`asrserve serve`: the HTTP API, the job queue's API side and the FunASR WebSocket, wired.

Shutdown, in order, on SIGTERM (`DrainingServer`, `asrserve.runtime.drain`):
1. at once, in the signal handler: the drain begins; `/ready` answers 503 (`/health` stays 200)
   and new WebSocket streams are refused with 1013;
2. still listening, so a balancer or client sees the 503 and the refusals: each open stream
   finishes the utterance being spoken, gets its final and is closed with 1012, all within
   `shutdown_grace_s`;
3. uvicorn's own graceful shutdown: it stops listening, closes idle connections and waits for
   requests in flight until the same deadline;
4. the lifespan's end: running jobs get what is left of it (at least a second), then go back
   to the queue.
So everything in flight shares one deadline, `shutdown_grace_s` after the signal.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

import anyio
import uvicorn
from fastapi import FastAPI

from asrserve.api.admission import Admission
from asrserve.api.app import create_app as create_api
from asrserve.api.auth import ApiKeys
from asrserve.api.deps import Services
from asrserve.api.service import TranscriptionService
from asrserve.config import Settings
from asrserve.engine import ModelRegistry
from asrserve.jobs import JobService
from asrserve.jobs.options import SQLITE_STORE, JobOptions
from asrserve.observability.metrics import Metrics, RequestStats
from asrserve.runtime.components import (
    build_job_queue,
    build_job_store,
    build_registry,
    watch_jobs,
)
from asrserve.runtime.drain import Drain
from asrserve.runtime.locks import DataDirLock
from asrserve.ws.server import StreamServer

log = logging.getLogger(__name__)


def create_app(settings: Settings, drain: Drain | None = None) -> FastAPI:
    """The server's application; its services are built when it starts and closed on stop.
    `drain` is the shutting-down state its server begins on SIGTERM (`DrainingServer`).
    Raises ValueError for settings that cannot work together, DataDirLockedError when another
    server runs the embedded job runner on the same data directory."""
    options = settings.server_options()
    drain = drain or Drain(options.shutdown_grace_s)
    job_options = settings.job_options()
    job_options.validate()
    metrics = Metrics()
    lock = embedded_runner_lock(job_options)

    @asynccontextmanager
    async def start() -> AsyncIterator[Services]:
        stream_options = settings.stream_options()
        registry = build_registry(
            settings, metrics, pinned={options.default_model, *stream_options.partial_models}
        )
        store = build_job_store(job_options)
        queue = build_job_queue(job_options, store, registry, metrics)
        jobs = JobService(
            store,
            queue,
            max_upload_bytes=options.max_upload_bytes,
            webhook_allow_private=job_options.webhook_allow_private,
        )
        admission = Admission(
            options.max_concurrent_requests,
            options.max_waiting_requests,
            max_wait_s=options.max_queue_wait_s,
            refused=metrics.track_rejected,
        )
        metrics.watch(requests=lambda: RequestStats(admission.waiting, admission.wait_estimate_s()))
        watch_jobs(metrics, registry, store)
        streams = StreamServer(registry, stream_options, metrics, drain)
        drain.add(streams.closed)
        services = Services(
            options=options,
            registry=registry,
            metrics=metrics,
            admission=admission,
            transcription=TranscriptionService(registry, options, metrics, admission),
            api_keys=ApiKeys(list(options.api_keys)),
            jobs=jobs,
            streams=streams,
            drain=drain,
        )
        try:
            if options.preload:
                await preload(registry, options.default_model)
            # Started after the model is in: jobs a crash left running resume now.
            queue.start()
            log.info("job backends", extra=job_options.describe())
            yield services
        finally:
            # In-flight jobs get what streams and requests left of the grace period (all of it
            # when the app stops without a signal); those still running go back to the queue.
            await anyio.to_thread.run_sync(queue.stop, max(1.0, drain.time_left()))
            await anyio.to_thread.run_sync(store.close)
            await anyio.to_thread.run_sync(registry.close)
            if lock is not None:
                lock.release()

    return create_api(options, metrics, start)


async def preload(registry: ModelRegistry, name: str) -> None:
    """Loads the model before the server reports ready, so no request pays for it."""
    await anyio.to_thread.run_sync(lambda: registry.release(registry.acquire(name)))


def embedded_runner_lock(job_options: JobOptions) -> DataDirLock | None:
    """Only one process may run the embedded runner on a data directory: it treats every job
    left running as its own to resume. Taken before the server starts, so a second server is
    refused with the lock's sentence (DataDirLockedError), not a failed start."""
    if job_options.store != SQLITE_STORE:
        return None
    return DataDirLock(job_options.data_dir).acquire()


class DrainingServer(uvicorn.Server):
    """uvicorn, draining the app's streams before its own graceful shutdown (steps above)."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.begin()  # before uvicorn's loop notices: /ready says 503 from now on
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log.info("draining", extra={"grace_s": self.drain.grace_s})
        drained = asyncio.ensure_future(self.drain.finish())
        while not drained.done() and not self.force_exit:  # a second Ctrl-C stops waiting
            await asyncio.wait((drained,), timeout=0.1)
        drained.cancel()
        if self.config.timeout_graceful_shutdown is not None:
            # One deadline for all in-flight work: requests get what the streams left of it.
            self.config.timeout_graceful_shutdown = math.ceil(max(1.0, self.drain.time_left()))
        await super().shutdown(sockets)
