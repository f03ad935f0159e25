"""Entry point: `asrserve transcribe | serve | worker | stream | models`; nothing runs at import."""

from __future__ import annotations

import typer

from asrserve import __version__
from asrserve.cli import models as models_cmd
from asrserve.cli import serve as serve_cmd
from asrserve.cli import stream as stream_cmd
from asrserve.cli import transcribe as transcribe_cmd
from asrserve.cli import worker as worker_cmd

app = typer.Typer(
    name="asrserve",
    help="Speech recognition: transcribe files, serve an API, stream live audio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("transcribe", no_args_is_help=True)(transcribe_cmd.transcribe)
app.command("serve")(serve_cmd.serve)
app.command("stream", no_args_is_help=True)(stream_cmd.stream)
app.command("worker")(worker_cmd.worker)
app.add_typer(models_cmd.app, name="models")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """asrserve."""
