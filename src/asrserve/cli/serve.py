"""`asrserve serve`: the HTTP service and the FunASR WebSocket on uvicorn.

One uvicorn server listens on the HTTP port and, optionally, on a second port for FunASR's
clients (their default is 10095): one application, one lifespan, one signal handling.
"""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path
from types import FrameType

import typer

from asrserve.cli.leave import leave
from asrserve.cli.tls import ensure_self_signed
from asrserve.config import Settings, load_settings
from asrserve.observability.logging import configure_logging

log = logging.getLogger(__name__)


def serve(
    host: str | None = typer.Option(None, help="Interface (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    stream_port: int | None = typer.Option(None, help="A second port, e.g. FunASR's 10095."),
    model: str | None = typer.Option(None, "--model", "-m", help="Default model."),
    device: str | None = typer.Option(None, help="auto, cpu or cuda."),
    tls_self_signed: bool | None = typer.Option(
        None, help="https/wss with a generated certificate."
    ),
    config: Path | None = typer.Option(None, help="A TOML settings file."),
) -> None:
    """Serve the OpenAI-compatible API, jobs, the FunASR WebSocket, health and metrics."""
    # Imported here, so that `asrserve worker` (same entry point) never loads the web stack.
    import uvicorn

    from asrserve.runtime.drain import Drain
    from asrserve.runtime.locks import DataDirLockedError
    from asrserve.runtime.server import DrainingServer, create_app

    settings = load_settings(
        config, host=host, port=port, stream_port=stream_port, model=model, device=device,
        tls_self_signed=tls_self_signed,
    )  # fmt: skip
    configure_logging(settings.log_level, settings.log_format)
    certfile, keyfile = _tls_files(settings)
    drain = Drain(settings.shutdown_grace_s)
    try:
        app = create_app(settings, drain)
    except (ValueError, DataDirLockedError) as exc:
        typer.echo(f"asrserve serve: {exc}", err=True)
        raise typer.Exit(2) from None
    uv_config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # our middleware logs each request as JSON with its id
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
        proxy_headers=True,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    sockets = [uv_config.bind_socket()]
    if settings.stream_port:
        sockets.append(_bind(settings.host, settings.stream_port))
    # On SIGTERM the server drains streams, then in-flight requests (asrserve.runtime.server),
    # then restores the previous handler and raises the signal again; this handler makes that
    # a clean exit (status 0), not a kill.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    DrainingServer(uv_config, drain).run(sockets=sockets)


def _tls_files(settings: Settings) -> tuple[Path | None, Path | None]:
    if settings.tls_certfile or settings.tls_keyfile:
        if not (settings.tls_certfile and settings.tls_keyfile):
            raise typer.BadParameter(
                "TLS needs both ASRSERVE_TLS_CERTFILE and ASRSERVE_TLS_KEYFILE."
            )
        return settings.tls_certfile, settings.tls_keyfile
    if settings.tls_self_signed:
        hosts = tuple(dict.fromkeys(("localhost", "127.0.0.1", settings.host)))
        return ensure_self_signed(settings.data_dir / "tls", hosts)
    return None, None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # uvicorn raises the signal again once the lifespan has run (jobs handed back, the store
    # closed, models released): that is a clean exit.
    leave(0)
