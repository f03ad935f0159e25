"""`asrserve transcribe FILE|DIR ...`: many files through one shared model and batcher.

Files are prepared and decoded `--jobs` at a time; their chunks meet in the model's batcher,
so short files fill batches and share decode windows together. Files in flight hold their
decoded audio, so together they hold at most `IN_FLIGHT_AUDIO_S` of it (a long file beyond
that waits for the others). A failed file is reported with its reason and the others are still
written; the exit code says whether everything succeeded.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from asrserve.config import Settings, load_settings
from asrserve.engine import (
    DEFAULT_MODEL,
    AsrError,
    DecodeOptions,
    ModelRegistry,
    Pipeline,
    ResponseFormat,
    TranscribeOptions,
    Transcript,
    parse_format,
    parse_hotwords,
    parse_language,
    parse_languages,
    render,
)
from asrserve.engine.audio import probe_duration
from asrserve.engine.formats import file_extension
from asrserve.observability.logging import configure_logging
from asrserve.runtime.components import build_registry

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".webm", ".mp4",
     ".mka", ".wma", ".aiff", ".aif", ".amr", ".3gp", ".mov", ".mkv"}
)  # fmt: skip
STDOUT = "-"
T = TypeVar("T")
V = TypeVar("V")
_DECODE = DecodeOptions()  # the defaults' one home
_TEMPERATURES = ",".join(f"{t:g}" for t in _DECODE.temperatures)
IN_FLIGHT_AUDIO_S = 2 * 3600.0
"""Decoded audio the files in flight may hold together: two hours is 460 MB of samples."""


class AudioBudget:
    """Seconds of decoded audio held at once; a file waits until its share is free. A file
    longer than the whole budget, or of unknown length, runs when nothing else holds any."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._held = 0.0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, seconds: float | None) -> Iterator[None]:
        share = min(seconds if seconds is not None else self.seconds, self.seconds)
        with self._cond:
            self._cond.wait_for(lambda: self._held == 0 or self._held + share <= self.seconds)
            self._held += share
        try:
            yield
        finally:
            with self._cond:
                self._held -= share
                self._cond.notify_all()


class AudioSecondsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = f"{task.total:.1f}" if task.total is not None else "?"
        return Text(f"{task.completed:.1f}/{total} s", style="progress.download")


class RealTimeFactorColumn(ProgressColumn):
    """Speed as audio seconds per wall second: `12.3x` means 12.3 times real time."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0 or task.completed <= 0:
            return Text("  -  x", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:5.1f}x", style="progress.data.speed")


@dataclass(slots=True)
class Outcome:
    path: Path
    outputs: list[Path] = field(default_factory=list)
    transcript: Transcript | None = None
    error: str | None = None
    seconds: float = 0.0


def expand_inputs(inputs: Iterable[Path]) -> tuple[list[Path], list[Outcome]]:
    """Files as given; directories searched recursively for audio files, sorted."""
    files: list[Path] = []
    missing: list[Outcome] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
            )
            if not found:
                missing.append(Outcome(item, error="the directory holds no audio files"))
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            missing.append(Outcome(item, error="no such file or directory"))
    return files, missing


def output_paths(
    source: Path, formats: list[ResponseFormat], output_dir: Path, taken: set[Path]
) -> dict[ResponseFormat, Path]:
    """One file per input per format. `a.mp3` and `a.wav` (or two `a.mp3` in different
    directories) must not overwrite each other, so later ones get a numbered stem."""
    both_json = ResponseFormat.JSON in formats and ResponseFormat.VERBOSE_JSON in formats
    stem = source.stem
    n = 1
    while True:
        paths = {}
        for fmt in formats:
            ext = file_extension(fmt)
            if both_json and fmt is ResponseFormat.VERBOSE_JSON:
                ext = "verbose.json"
            paths[fmt] = output_dir / f"{stem}.{ext}"
        if not taken.intersection(paths.values()):
            taken.update(paths.values())
            return paths
        n += 1
        stem = f"{source.stem}-{n}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _option(hint: str, parse: Callable[[V], T], value: V) -> T:
    """The parsed option; an engine refusal becomes typer's usage error naming the option."""
    try:
        return parse(value)
    except AsrError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def build_options(
    language: str,
    languages: str | None,
    task: str,
    beam_size: int,
    temperature: str,
    hotwords: str | None,
    initial_prompt: str | None,
    word_timestamps: bool,
    vad: bool,
) -> TranscribeOptions:
    try:
        temperatures = tuple(float(t) for t in temperature.split(",") if t.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            "give temperatures as numbers, e.g. 0 or 0,0.2,0.4", param_hint="--temperature"
        ) from exc
    if task not in {"transcribe", "translate"}:
        raise typer.BadParameter("use transcribe or translate", param_hint="--task")
    decode = DecodeOptions(
        language=parse_language(language),
        task=task,
        beam_size=beam_size,
        temperatures=temperatures or (0.0,),
        hotwords=_option("--hotwords", parse_hotwords, hotwords),
        initial_prompt=initial_prompt,
        word_timestamps=word_timestamps,
    )
    expected = _option("--languages", parse_languages, languages) if languages is not None else None
    return TranscribeOptions(decode=decode, vad_filter=vad, expected_languages=expected)


def transcribe(
    inputs: list[Path] = typer.Argument(..., help="Audio or video files, or directories."),
    model: str | None = typer.Option(
        None, "--model", "-m", help=f"Model (default {DEFAULT_MODEL})."
    ),
    language: str = typer.Option("auto", "--language", "-l", help="Language code or auto."),
    languages: str | None = typer.Option(
        None, help="Expected languages, e.g. en,es: auto detection chooses among them only."
    ),
    task: str = typer.Option("transcribe", help="transcribe, or translate to English."),
    formats: str = typer.Option(
        "json", "--format", "-f", help="Comma list of json, verbose_json, text, srt, vtt."
    ),
    output_dir: str = typer.Option(
        ".", "--output-dir", "-o", help="Where outputs go; '-' prints them to stdout."
    ),
    hotwords: str | None = typer.Option(
        None, help='Words to favour: "w1,w2", space-separated, or JSON {"w": 10}.'
    ),
    initial_prompt: str | None = typer.Option(None, help="Text that sets style and vocabulary."),
    beam_size: int = typer.Option(_DECODE.beam_size, min=1, max=20),
    temperature: str = typer.Option(_TEMPERATURES, help="Fallback temperatures."),
    word_timestamps: bool = typer.Option(
        _DECODE.word_timestamps, help="Word-level times (verbose_json)."
    ),
    vad: bool = typer.Option(TranscribeOptions().vad_filter, help="Skip silence with Silero VAD."),
    jobs: int = typer.Option(
        64,
        "--jobs",
        "-j",
        min=1,
        help="Files in flight at once (short ones share decode windows); together they hold "
        "at most two hours of decoded audio.",
    ),
    device: str | None = typer.Option(None, help="auto, cpu or cuda."),
    compute_type: str | None = typer.Option(None, help="int8, float16, float32, ..."),
    config: Path | None = typer.Option(None, help="A TOML settings file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Transcribe files; write one output per input per format."""
    settings = load_settings(config, model=model, device=device, compute_type=compute_type)
    # A progress display and info logs on one terminal fight; info only when asked for.
    level = settings.log_level if "log_level" in settings.model_fields_set else "warning"
    configure_logging(level, settings.log_format)
    wanted = _parse_formats(formats)
    options = build_options(
        language,
        languages,
        task,
        beam_size,
        temperature,
        hotwords,
        initial_prompt,
        word_timestamps,
        vad,
    )
    files, outcomes = expand_inputs(inputs)
    outputs = Outputs(wanted, None if output_dir == STDOUT else Path(output_dir))
    outcomes += _transcribe_all(settings, files, options, outputs, jobs, quiet)
    _report_failures(outcomes)


def _parse_formats(formats: str) -> list[ResponseFormat]:
    return [_option("--format", parse_format, f) for f in formats.split(",") if f.strip()]


def _transcribe_all(
    settings: Settings,
    files: list[Path],
    options: TranscribeOptions,
    outputs: Outputs,
    jobs: int,
    quiet: bool,
) -> list[Outcome]:
    """Every file through one loaded model; an error that stops them all (the model cannot
    load) exits with its sentence."""
    registry = _registry(settings)
    try:
        with registry.use(settings.model) as loaded:
            console = Console(stderr=True, quiet=quiet)
            return _run(loaded.pipeline, files, options, outputs, jobs, console)
    except AsrError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        registry.close()


def _report_failures(outcomes: list[Outcome]) -> None:
    failures = [o for o in outcomes if o.error]
    for outcome in failures:
        Console(stderr=True).print(
            f"[red]failed[/red] {outcome.path}: {outcome.error}", highlight=False
        )
    if failures:
        raise typer.Exit(1)


def _registry(settings: Settings) -> ModelRegistry:
    return build_registry(settings)


class Outputs:
    """Where each file's transcripts go: one file per format in `out_dir` (names never
    collide), or stdout when `out_dir` is None, one file's outputs at a time."""

    def __init__(self, formats: list[ResponseFormat], out_dir: Path | None) -> None:
        self.formats = formats
        self.out_dir = out_dir
        self._taken: set[Path] = set()
        self._lock = threading.Lock()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)

    def write(self, source: Path, transcript: Transcript) -> list[Path]:
        if self.out_dir is None:
            with self._lock:
                for fmt in self.formats:
                    sys.stdout.write(render(transcript, fmt))
                sys.stdout.flush()
            return []
        with self._lock:
            targets = output_paths(source, self.formats, self.out_dir, self._taken)
        for fmt, target in targets.items():
            _write_atomic(target, render(transcript, fmt))
        return list(targets.values())


class OverallProgress:
    """The all-files bar: seconds decoded over the durations of the files started so far."""

    def __init__(self, progress: Progress, files: int) -> None:
        noun = "file" if files == 1 else "files"
        self._progress = progress
        self._task = progress.add_task(f"all {files} {noun}", total=None)
        self._lock = threading.Lock()
        self._done_by_file: dict[Path, float] = {}
        self._total = 0.0

    def update(self, path: Path, done: float, total: float) -> None:
        with self._lock:
            if path not in self._done_by_file:
                self._total += total
            self._done_by_file[path] = done
            completed = sum(self._done_by_file.values())
            self._progress.update(self._task, completed=completed, total=self._total)


def _progress_display(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        AudioSecondsColumn(),
        RealTimeFactorColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _run(
    pipeline: Pipeline,
    files: list[Path],
    options: TranscribeOptions,
    outputs: Outputs,
    jobs: int,
    console: Console,
) -> list[Outcome]:
    progress = _progress_display(console)
    overall = OverallProgress(progress, len(files))
    budget = AudioBudget(IN_FLIGHT_AUDIO_S)

    def run_one(path: Path) -> Outcome:
        with budget.hold(probe_duration(path)):
            return transcribe_one(path)

    def transcribe_one(path: Path) -> Outcome:
        outcome = Outcome(path)
        task_id: TaskID = progress.add_task(path.name, total=None)
        started = time.monotonic()

        def on_progress(done: float, total: float) -> None:
            progress.update(task_id, completed=done, total=total)
            overall.update(path, done, total)

        try:
            prepared = pipeline.prepare(path, options)
            on_progress(0.0, prepared.info.duration)
            segments = tuple(pipeline.decode(prepared, progress=on_progress))
            outcome.transcript = Transcript(info=prepared.info, segments=segments)
            outcome.outputs = outputs.write(path, outcome.transcript)
        except AsrError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # a bug must not cost the user the other files' results
            outcome.error = f"internal error ({type(exc).__name__}: {exc})"
        finally:
            outcome.seconds = time.monotonic() - started
            progress.update(task_id, visible=outcome.error is None)
        return outcome

    with progress, ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="file") as pool:
        return list(pool.map(run_one, files))
