"""`asrserve serve`: the HTTP service on uvicorn."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import typer
import uvicorn

from asrserve.api.app import create_app
from asrserve.config import load_settings
from asrserve.observability.logging import configure_logging


def serve(
    host: str | None = typer.Option(None, help="Interface (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Default model."),
    device: str | None = typer.Option(None, help="auto, cpu or cuda."),
    config: Path | None = typer.Option(None, help="A TOML settings file."),
) -> None:
    """Serve the OpenAI-compatible API, jobs, health and metrics."""
    settings = load_settings(config, host=host, port=port, model=model, device=device)
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings.server_options())
    # uvicorn drains in-flight requests on SIGTERM, then restores the previous handler and
    # raises the signal again; this handler makes that a clean exit (status 0), not a kill.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # our middleware logs each request as JSON with its id
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
        proxy_headers=True,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # By now the lifespan has run: jobs handed back, the store closed, models released. A
    # normal interpreter exit would then destroy CTranslate2's native thread pools while a
    # handed-back decode may still be inside one (C++ terminate, SIGABRT); nothing is left to
    # clean up, so leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
