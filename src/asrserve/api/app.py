"""`create_app(options, metrics, start)`: the FastAPI application around services made elsewhere.

The API does not build what it serves: the composition root (`asrserve.runtime.server`) passes
`start`, an async context manager that builds the `Services` (models, jobs, streams) when the
server starts and closes them when it stops. So the API imports neither the job machinery nor
the WebSocket server, only the protocols it calls (`asrserve.api.deps`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import Depends, FastAPI, WebSocket
from fastapi.middleware.cors import CORSMiddleware

from asrserve import __version__
from asrserve.api import errors
from asrserve.api.deps import Services, require_api_key
from asrserve.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from asrserve.api.options import ServerOptions
from asrserve.api.routes import demo, health, jobs, legacy, models, transcriptions
from asrserve.observability.metrics import Metrics

log = logging.getLogger(__name__)

ServicesFactory = Callable[[], AbstractAsyncContextManager[Services]]


def create_app(options: ServerOptions, metrics: Metrics, start: ServicesFactory) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with start() as services:
            app.state.services = services
            log.info(
                "service ready", extra={"model": options.default_model, "version": __version__}
            )
            yield
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
        await websocket.app.state.services.streams.handle(websocket)

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
