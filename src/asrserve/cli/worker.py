"""`asrserve worker`: run jobs from the Redis queue; `asrserve worker --check` probes one."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import typer

from asrserve.cli.leave import leave
from asrserve.config import load_settings
from asrserve.observability.logging import configure_logging


def worker(
    concurrency: int | None = typer.Option(
        None, min=1, help="Jobs run at once by this process (default ASRSERVE_JOB_WORKERS)."
    ),
    queues: str | None = typer.Option(None, help="Comma list of queues (default asrserve-jobs)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model loaded at start."),
    device: str | None = typer.Option(None, help="auto, cpu or cuda."),
    port: int | None = typer.Option(None, help="/health and /metrics port (0: none)."),
    check: bool = typer.Option(
        False, "--check", help="Exit 0 if the worker on this host is healthy (a liveness probe)."
    ),
    config: Path | None = typer.Option(None, help="A TOML settings file."),
) -> None:
    """Run transcription jobs from the Redis queue (ASRSERVE_JOB_QUEUE) on the shared store."""
    settings = load_settings(config, model=model, device=device, worker_port=port)
    if check:
        raise typer.Exit(_check(settings.host, settings.worker_port))
    configure_logging(settings.log_level, settings.log_format)
    from asrserve.runtime.worker import run_worker  # Celery and the models only when running

    try:
        status = run_worker(
            settings,
            concurrency=concurrency,
            queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        )
    except ValueError as exc:
        typer.echo(f"asrserve worker: {exc}", err=True)
        raise typer.Exit(2) from None
    leave(status)


def _check(host: str, port: int) -> int:
    if not port:
        typer.echo("asrserve worker --check: the health port is off (ASRSERVE_WORKER_PORT=0).")
        return 2
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    url = f"http://{probe_host if ':' not in probe_host else f'[{probe_host}]'}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"asrserve worker --check: {url}: {exc}", err=True)
        return 1
