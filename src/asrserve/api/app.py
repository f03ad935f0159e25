"""`create_app(options)`: the FastAPI application, its services built in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI, WebSocket
from fastapi.middleware.cors import CORSMiddleware

from asrserve import __version__
from asrserve.api import errors
from asrserve.api.admission import Admission
from asrserve.api.auth import ApiKeys
from asrserve.api.deps import Services, require_api_key
from asrserve.api.forms import options_from_record
from asrserve.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from asrserve.api.options import ServerOptions
from asrserve.api.routes import demo, health, jobs, legacy, models, transcriptions
from asrserve.api.service import TranscriptionService
from asrserve.engine.registry import ModelRegistry
from asrserve.jobs import JobRunner, JobService, SQLiteJobStore, WebhookSender, registry_transcriber
from asrserve.observability.metrics import Metrics
from asrserve.ws.server import StreamServer, StreamServerOptions

log = logging.getLogger(__name__)


def build_services(options: ServerOptions, metrics: Metrics) -> Services:
    registry = ModelRegistry(
        cache_dir=options.model_dir,
        engine_settings=options.engine,
        batching=options.batching,
        limits=options.limits,
        languages=options.languages,
        on_batch=lambda model, stats: metrics.track_batch(
            model, stats.items, stats.windows, stats.redecoded
        ),
        on_load=metrics.track_model_load,
    )
    admission = Admission(options.max_concurrent_requests, options.max_waiting_requests)
    store = SQLiteJobStore(options.data_dir, retention_s=options.job_retention_s)
    runner = JobRunner(
        store,
        registry_transcriber(registry, options_from_record),
        workers=options.job_workers,
        on_finished=lambda job: metrics.track_job_finished(job.state.value),
        webhooks=WebhookSender(store, max_attempts=options.webhook_max_attempts),
    )
    job_service = JobService(store, runner, max_upload_bytes=options.max_upload_bytes)
    metrics.watch(
        queue_depth=lambda: {m.name: m.batcher.pending for m in registry.loaded()},
        jobs_by_state=lambda: {s.value: n for s, n in job_service.count_by_state().items()},
    )
    return Services(
        options=options,
        registry=registry,
        metrics=metrics,
        admission=admission,
        transcription=TranscriptionService(registry, options, metrics, admission),
        api_keys=ApiKeys(list(options.api_keys)),
        jobs=job_service,
        runner=runner,
    )


def create_app(options: ServerOptions | None = None) -> FastAPI:
    options = options or ServerOptions()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(options, metrics)
        app.state.services = services
        if options.preload:
            # Loaded before the server reports ready, so no request pays for it.
            await anyio.to_thread.run_sync(
                lambda: services.registry.release(services.registry.acquire(options.default_model))
            )
        app.state.streams = StreamServer(
            services.registry,
            StreamServerOptions(
                final_model=options.default_model,
                partial_model=options.partial_model,
                max_streams=options.max_streams,
                idle_timeout_s=options.stream_idle_timeout_s,
                limits=options.limits,
            ),
            metrics,
        )
        # Started after the model is in: jobs a crash left running resume now.
        services.runner.start()
        log.info("service ready", extra={"model": options.default_model, "version": __version__})
        try:
            yield
        finally:
            # In-flight jobs get the grace period; those still running go back to the queue.
            await anyio.to_thread.run_sync(services.runner.stop, options.shutdown_grace_s)
            await anyio.to_thread.run_sync(services.jobs.store.close)
            await anyio.to_thread.run_sync(services.registry.close)
            log.info("service stopped")

    app = FastAPI(
        title="asrserve",
        version=__version__,
        summary="Speech recognition: OpenAI-compatible transcription, jobs, FunASR compatibility.",
        lifespan=lifespan,
        dependencies=[Depends(require_api_key)],
    )
    errors.install(app)

    @app.websocket("/")
    async def funasr_stream(websocket: WebSocket) -> None:
        """FunASR's real-time protocol (offline, online, 2pass) on the HTTP port."""
        await websocket.app.state.streams.handle(websocket)

    for router in (
        transcriptions.router,
        jobs.router,
        models.router,
        legacy.router,
        health.router,
        demo.router,
    ):
        app.include_router(router)
    if options.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=options.max_upload_bytes, metrics=metrics)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
