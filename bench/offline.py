"""Offline transcription benchmark: faster-whisper called directly, batched, and asrserve.

Issue #2: on the development set's long files, in one run, measure throughput (audio seconds
per wall second), RTF, WER and peak memory of

- (a)  faster-whisper's `WhisperModel.transcribe`, one file after another, no VAD;
- (a') the same with `vad_filter=True`, as MODELS.md recommends for long audio;
- (b)  faster-whisper's `BatchedInferencePipeline`;
- (c)  asrserve's `Pipeline` in process, files `--jobs` at a time through one shared batcher;
- (c') the `asrserve transcribe` command over all files at once, timed end to end;

with the same model, compute type, beam, language and CPU threads, and write the figures, as
ratios against (a) from the same run, into docs/benchmarks.md.

Each system runs in a fresh process of this script (`--worker`), so the peak RSS is that
system's own and none decodes with caches another one warmed. Timings mean something only on
a quiet machine:

    .venv/bin/python -m bench.offline                       # all systems -> docs/benchmarks.md
    .venv/bin/python -m bench.offline --repeat 3            # medians of 3 interleaved runs
    .venv/bin/python -m bench.offline --limit 1 --systems a,c --output /tmp/bench.md
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

# Only light imports at module level: a worker's imports count towards its end-to-end time and
# peak memory, so each worker imports the engine it measures and nothing else (WER's jiwer and
# the normaliser are imported by the parent only).
from asrserve.evaluation.compose import COMPOSED, composed_set
from asrserve.evaluation.devset import Clip, clean_read, load_subset
from bench.common import (
    BASELINE_DECODE_WORKERS,
    BEAM_SIZE,
    COMPUTE_TYPE,
    DEVICE,
    MODEL,
    REPO,
    available_cpus,
    cli_environment,
    cli_transcribe_command,
    durations,
    git_revision,
    load_event,
    machine_description,
    num,
    ratio,
    read_cli_outputs,
    require_positive,
    table,
    version,
    warm_file_cache,
)

DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"

# Given to every system unless --language auto, so language detection is not part of the
# comparison.
LANGUAGE = "en"
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class System:
    key: str
    label: str
    description: str


SYSTEMS: dict[str, System] = {
    s.key: s
    for s in (
        System(
            "a",
            "(a) WhisperModel.transcribe",
            "faster-whisper's `WhisperModel.transcribe(path, language, beam_size, "
            "word_timestamps=True, vad_filter=False)`, one file after another, the segment "
            "generator consumed to the end. The plain baseline.",
        ),
        System(
            "a_vad",
            "(a') WhisperModel.transcribe + VAD",
            "As (a) with `vad_filter=True` (faster-whisper's Silero VAD), which MODELS.md "
            "recommends for long audio.",
        ),
        System(
            "b",
            "(b) BatchedInferencePipeline",
            "faster-whisper's `BatchedInferencePipeline(model).transcribe(path, language, "
            "beam_size, word_timestamps=True, batch_size)`, one file after another; its VAD is "
            "on by default and is what cuts a file into the chunks it batches.",
        ),
        System(
            "c",
            "(c) asrserve Pipeline (in process)",
            "asrserve's `Pipeline.transcribe` with default options and the language given, "
            "files `--jobs` at a time, their VAD chunks meeting in the model's shared batcher "
            "(default batching: up to 240 s of audio in 16 windows, short chunks packed into "
            "shared 30 s windows 1 s apart). Loaded and timed like (a) and (b): the "
            "like-for-like row.",
        ),
        System(
            "c_cli",
            "(c') asrserve transcribe (CLI)",
            "The `asrserve transcribe FILES --format json --jobs N -q` command a user runs, as "
            "a subprocess over all files at once. Its load time is the one it logs; its decode "
            "time runs from that log line to the process exit, so it also includes writing the "
            "outputs and shutting down.",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What every worker needs to run its system the same way as the others."""

    subset: str
    """One subset, a comma list of them, or `composed`."""
    limit: int | None
    cpu_threads: int
    jobs: int
    batch_size: int
    decode_workers: int = BASELINE_DECODE_WORKERS
    """asrserve's CTranslate2 workers ((c) and (c')); faster-whisper's rows decode on one."""
    language: str = LANGUAGE
    """A language code given to every system, or `auto` to have each detect it."""
    languages: str = ""
    """Expected languages for asrserve's detection (`en,es`); faster-whisper has no such
    setting, so its rows detect among all languages."""
    clean: bool = False
    """Ordinary speech only (none of the development set's deliberately hard conditions)."""
    min_clip_s: float | None = None
    max_clip_s: float | None = None

    def argv(self) -> list[str]:
        args = [
            "--subset", self.subset,
            "--cpu-threads", str(self.cpu_threads),
            "--jobs", str(self.jobs),
            "--batch-size", str(self.batch_size),
            "--decode-workers", str(self.decode_workers),
            "--language", self.language,
            "--languages", self.languages,
        ]  # fmt: skip
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        if self.clean:
            args.append("--clean")
        if self.min_clip_s is not None:
            args += ["--min-clip-s", str(self.min_clip_s)]
        if self.max_clip_s is not None:
            args += ["--max-clip-s", str(self.max_clip_s)]
        return args

    @property
    def language_code(self) -> str | None:
        return None if self.language == AUTO else self.language

    def workload(self) -> str:
        """The data, in words, for the reports."""
        parts = [f"development set subset `{self.subset}`"]
        if self.clean:
            parts.append("ordinary speech only (`clean_read`)")
        if self.min_clip_s is not None:
            parts.append(f"files longer than {self.min_clip_s:g} s")
        if self.max_clip_s is not None:
            parts.append(f"files of at most {self.max_clip_s:g} s")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One system's one run, as a worker reports it to the parent."""

    texts: dict[str, str]
    """Clip id -> transcript text."""
    languages: dict[str, str]
    """Clip id -> the language the transcript is in (detected, or the one given)."""
    load_s: float | None
    """Finding, checksumming and constructing the model."""
    decode_s: float | None
    """Wall time from the first file handed over to the last transcript out."""
    end_to_end_s: float
    """From the process launch to the last transcript: interpreter, imports, load, decoding."""
    peak_rss_mb: float


def select_clips(settings: BenchSettings) -> list[Clip]:
    if settings.subset == COMPOSED:
        clips = composed_set()
    else:
        clips = [c for name in settings.subset.split(",") for c in load_subset(name.strip())]
    if settings.clean:
        clips = clean_read(clips)
    if settings.min_clip_s is not None:
        clips = [c for c in clips if c.duration > settings.min_clip_s]
    if settings.max_clip_s is not None:
        clips = [c for c in clips if c.duration <= settings.max_clip_s]
    return clips[: settings.limit] if settings.limit is not None else clips


def _peak_rss_mb(who: int) -> float:
    peak = resource.getrusage(who).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _join(texts: Iterable[str]) -> str:
    # The same joining as asrserve's Transcript.text, so WER sees no difference from it.
    return " ".join(t.strip() for t in texts if t.strip())


# --- workers: each runs in its own fresh process ----------------------------------------------


def _run_faster_whisper(
    clips: Sequence[Clip],
    settings: BenchSettings,
    launched_at: float,
    *,
    vad_filter: bool,
    batched: bool,
) -> RunResult:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from asrserve.engine.models import resolve

    started = time.monotonic()
    model = WhisperModel(
        str(resolve(MODEL).path),
        device=DEVICE,
        compute_type=COMPUTE_TYPE,
        cpu_threads=settings.cpu_threads,
        local_files_only=True,
    )
    load_s = time.monotonic() - started
    batched_pipeline = BatchedInferencePipeline(model) if batched else None

    texts: dict[str, str] = {}
    languages: dict[str, str] = {}
    started = time.monotonic()
    for clip in clips:
        if batched_pipeline is not None:
            segments, info = batched_pipeline.transcribe(
                str(clip.audio),
                language=settings.language_code,
                beam_size=BEAM_SIZE,
                word_timestamps=True,
                batch_size=settings.batch_size,
            )
        else:
            segments, info = model.transcribe(
                str(clip.audio),
                language=settings.language_code,
                beam_size=BEAM_SIZE,
                word_timestamps=True,
                vad_filter=vad_filter,
            )
        # The segments are a lazy generator: decoding happens while it is consumed.
        texts[clip.id] = _join(s.text for s in segments)
        languages[clip.id] = info.language
    decode_s = time.monotonic() - started
    return RunResult(
        texts=texts,
        languages=languages,
        load_s=load_s,
        decode_s=decode_s,
        end_to_end_s=time.time() - launched_at,
        peak_rss_mb=_peak_rss_mb(resource.RUSAGE_SELF),
    )


def _run_pipeline(clips: Sequence[Clip], settings: BenchSettings, launched_at: float) -> RunResult:
    from asrserve.engine import (
        DecodeOptions,
        EngineSettings,
        ModelRegistry,
        TranscribeOptions,
        parse_languages,
    )

    registry = ModelRegistry(
        engine_settings=EngineSettings(
            device=DEVICE,
            compute_type=COMPUTE_TYPE,
            cpu_threads=settings.cpu_threads,
            decode_workers=settings.decode_workers,
        )
    )
    try:
        started = time.monotonic()
        loaded = registry.acquire(MODEL)
        load_s = time.monotonic() - started
        options = TranscribeOptions(
            decode=DecodeOptions(language=settings.language_code, beam_size=BEAM_SIZE),
            expected_languages=parse_languages(settings.languages) or None,
        )
        started = time.monotonic()
        # Several files at once, as `asrserve transcribe --jobs` runs them.
        with ThreadPoolExecutor(max_workers=settings.jobs) as pool:
            transcripts = list(
                pool.map(lambda clip: loaded.pipeline.transcribe(clip.audio, options), clips)
            )
        decode_s = time.monotonic() - started
        end_to_end_s = time.time() - launched_at
        peak_rss_mb = _peak_rss_mb(resource.RUSAGE_SELF)
        registry.release(loaded)
    finally:
        registry.close()
    return RunResult(
        texts={clip.id: t.text for clip, t in zip(clips, transcripts, strict=True)},
        languages={clip.id: t.language for clip, t in zip(clips, transcripts, strict=True)},
        load_s=load_s,
        decode_s=decode_s,
        end_to_end_s=end_to_end_s,
        peak_rss_mb=peak_rss_mb,
    )


def _run_cli(clips: Sequence[Clip], settings: BenchSettings, launched_at: float) -> RunResult:
    del launched_at  # the CLI is its own process: timed from its own launch below
    stems = [clip.audio.stem for clip in clips]
    if len(set(stems)) != len(stems):
        # The CLI names outputs by stem and numbers clashes in whatever order files finish.
        raise RuntimeError(f"audio file names repeat in subset {settings.subset}: {stems}")
    env = cli_environment(settings.cpu_threads, settings.decode_workers)
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-") as out_dir:
        command = cli_transcribe_command(
            clips,
            Path(out_dir),
            language=settings.language,
            jobs=settings.jobs,
            languages=settings.languages,
        )
        started = time.time()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        finished = time.time()
        if proc.returncode != 0:
            raise RuntimeError(
                f"asrserve transcribe exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
        outputs = read_cli_outputs(clips, Path(out_dir))
    event = load_event(proc.stderr)
    return RunResult(
        texts={clip_id: out["text"] for clip_id, out in outputs.items()},
        languages={clip_id: out["language_code"] for clip_id, out in outputs.items()},
        load_s=event[1] if event else None,
        decode_s=finished - event[0] if event else None,
        end_to_end_s=finished - started,
        # This worker's only child is the CLI, so the children's peak is the CLI's own.
        peak_rss_mb=_peak_rss_mb(resource.RUSAGE_CHILDREN),
    )


Runner = Callable[[Sequence[Clip], BenchSettings, float], RunResult]

RUNNERS: dict[str, Runner] = {
    "a": lambda c, s, t: _run_faster_whisper(c, s, t, vad_filter=False, batched=False),
    "a_vad": lambda c, s, t: _run_faster_whisper(c, s, t, vad_filter=True, batched=False),
    "b": lambda c, s, t: _run_faster_whisper(c, s, t, vad_filter=True, batched=True),
    "c": _run_pipeline,
    "c_cli": _run_cli,
}


def run_worker(system: str, settings: BenchSettings, launched_at: float, result: Path) -> None:
    outcome = RUNNERS[system](select_clips(settings), settings, launched_at)
    result.write_text(json.dumps(asdict(outcome)), encoding="utf-8")


# --- parent: runs the workers and reports -----------------------------------------------------


def launch(system: str, settings: BenchSettings, scratch: Path, run: int) -> RunResult:
    result = scratch / f"{system}-{run}.json"
    launched_at = time.time()
    # This module in a fresh interpreter, found as the parent found it (`python -m bench.offline`
    # from the repository root: the child inherits the working directory and environment).
    command = [
        sys.executable,
        "-m",
        "bench.offline",
        "--worker",
        system,
        *settings.argv(),
        "--launched-at",
        repr(launched_at),
        "--result",
        str(result),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"{SYSTEMS[system].label} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return RunResult(**json.loads(result.read_text(encoding="utf-8")))


@dataclass(frozen=True, slots=True)
class Summary:
    """One system over all its runs: medians of times, the highest peak, WER over all outputs."""

    system: System
    runs: tuple[RunResult, ...]
    audio_s: float
    wer: float
    file_wer: dict[str, float]
    language_accuracy: float
    """Share of the files whose transcript is in the file's own language."""

    @property
    def load_s(self) -> float | None:
        return _median(r.load_s for r in self.runs)

    @property
    def decode_s(self) -> float | None:
        return _median(r.decode_s for r in self.runs)

    @property
    def decode_range(self) -> tuple[float, float] | None:
        values = [r.decode_s for r in self.runs if r.decode_s is not None]
        return (min(values), max(values)) if len(values) > 1 else None

    @property
    def end_to_end_s(self) -> float:
        return statistics.median(r.end_to_end_s for r in self.runs)

    @property
    def peak_rss_mb(self) -> float:
        return max(r.peak_rss_mb for r in self.runs)

    @property
    def speed(self) -> float | None:
        """Audio seconds per wall second of decoding."""
        return self.audio_s / self.decode_s if self.decode_s else None

    @property
    def rtf(self) -> float | None:
        return self.decode_s / self.audio_s if self.decode_s is not None else None

    @property
    def end_to_end_speed(self) -> float:
        return self.audio_s / self.end_to_end_s


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(system: System, runs: Sequence[RunResult], clips: Sequence[Clip]) -> Summary:
    from asrserve.evaluation.wer import word_errors

    # Pooled over every run's output: the same as the mean when runs agree, as they should.
    refs = [clip.text for _ in runs for clip in clips]
    hyps = [run.texts[clip.id] for run in runs for clip in clips]
    file_wer = {
        clip.id: word_errors([clip.text] * len(runs), [run.texts[clip.id] for run in runs]).rate
        for clip in clips
    }
    right = sum(run.languages[clip.id] == clip.lang for run in runs for clip in clips)
    languages = {clip.lang for clip in clips}
    return Summary(
        system=system,
        runs=tuple(runs),
        audio_s=sum(clip.duration for clip in clips),
        # One language in the workload: its normaliser (numbers, spelling) is the right one.
        wer=word_errors(refs, hyps, language=languages.pop() if len(languages) == 1 else "en").rate,
        file_wer=file_wer,
        language_accuracy=right / (len(runs) * len(clips)),
    )


def results_table(summaries: Sequence[Summary], base: Summary, *, detected: bool = False) -> str:
    """The systems against `base`; with `detected`, also how often each chose the language."""
    short = base.system.label.split()[0]
    header = [
        "system",
        "audio s",
        "load s",
        "decode s",
        "audio s / s",
        "RTF",
        f"× {short}",
        "end-to-end s",
        "audio s / s e2e",
        f"× {short} e2e",
        "WER",
        f"WER − {short}",
        "peak RSS MB",
    ]
    if detected:
        header.insert(-1, "language right")
    rows = []
    for s in summaries:
        decode = num(s.decode_s, 2)
        if s.decode_range is not None:
            decode += f" ({s.decode_range[0]:.2f}–{s.decode_range[1]:.2f})"
        rows.append(
            [
                s.system.label,
                num(s.audio_s, 1),
                num(s.load_s, 2),
                decode,
                num(s.speed, 2),
                num(s.rtf, 3),
                ratio(s.speed, base.speed),
                num(s.end_to_end_s, 2),
                num(s.end_to_end_speed, 2),
                ratio(s.end_to_end_speed, base.end_to_end_speed),
                f"{s.wer:.2%}",
                f"{(s.wer - base.wer) * 100:+.2f} pt",
                *([f"{s.language_accuracy:.1%}"] if detected else []),
                num(s.peak_rss_mb, 0),
            ]
        )
    return table(header, rows)


def file_wer_table(summaries: Sequence[Summary], clips: Sequence[Clip]) -> str:
    header = ["file", "audio s", *(s.system.label.split()[0] for s in summaries)]
    rows = [
        [clip.id, num(clip.duration, 1), *(f"{s.file_wer[clip.id]:.2%}" for s in summaries)]
        for clip in clips
    ]
    rows.append(
        ["all", num(sum(c.duration for c in clips), 1), *(f"{s.wer:.2%}" for s in summaries)]
    )
    return table(header, rows)


def _language_line(settings: BenchSettings) -> str:
    if settings.language_code is not None:
        return (
            f"Language `{settings.language}` given to every system, so language detection "
            "is not compared."
        )
    expected = (
        f"; asrserve expects `{settings.languages}` (faster-whisper has no such setting "
        "and detects among all languages)"
        if settings.languages
        else ""
    )
    return (
        f"No language given: every system detects it per file{expected}. *language "
        "right* is the share of files transcribed in their own language."
    )


def _setup_lines(clips: Sequence[Clip], settings: BenchSettings, repeat: int, machine: str) -> str:
    audio_s = sum(c.duration for c in clips)
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("faster-whisper", "ctranslate2", "onnxruntime", "asrserve")
    )
    runs = "once" if repeat == 1 else f"{repeat} times, interleaved; times are medians"
    files = "1 file" if len(clips) == 1 else f"{len(clips)} files"
    # One line per bullet: substituted values of any length then never break a line oddly.
    names = ", ".join(c.id for c in clips) if len(clips) <= 12 else "listed by the manifest"
    language = _language_line(settings)
    return "\n".join(
        f"- {line}"
        for line in (
            f"Data: {settings.workload()}; {files}, {audio_s:.1f} s of audio "
            f"({durations(clips)}; {names}).",
            f"Model: catalogue `{MODEL}` (CTranslate2), device {DEVICE}, compute type "
            f"{COMPUTE_TYPE}, cpu_threads {settings.cpu_threads}, beam size {BEAM_SIZE}.",
            f"{language} Word timestamps on for every system, since asrserve always aligns "
            "words (it cuts segments at them). Other decoding options are each library's "
            "defaults.",
            f"(b) batch size {settings.batch_size}; (c) and (c') {settings.jobs} files at a time "
            f"on {settings.decode_workers} decode worker(s) of cpu_threads each.",
            f"Each system ran {runs}, each run in a fresh process. The model and audio files "
            "were read once beforehand, so no system pays for cold disk reads.",
            f"Machine: {machine}.",
            f"Versions: {versions}.",
        )
    )


def render_report(
    summaries: Sequence[Summary],
    clips: Sequence[Clip],
    settings: BenchSettings,
    repeat: int,
    started: datetime,
    machine: str,
) -> str:
    base = next((s for s in summaries if s.system.key == "a"), summaries[0])
    systems = "\n".join(f"- **{s.system.label}**: {s.system.description}" for s in summaries)
    setup = _setup_lines(clips, settings, repeat, machine)
    per_file = (
        f"\n## WER per file\n\n{file_wer_table(summaries, clips)}\n" if len(clips) <= 12 else ""
    )
    return f"""# Offline transcription benchmark

Generated by `bench/offline.py` on {started:%Y-%m-%d %H:%M} UTC (asrserve {git_revision()}).
Regenerate with `make bench` (or `.venv/bin/python -m bench.offline`) on a quiet machine.

## Setup

{setup}

## Systems

{systems}

## Results

{results_table(summaries, base, detected=settings.language_code is None)}

- *load s*: finding, checksumming and constructing the model; not part of throughput.
- *decode s*: wall time from the first file handed over to the last transcript
  (audio decoding, VAD and the model). *audio s / s* = audio seconds / decode seconds;
  RTF = decode seconds / audio seconds.
- *end-to-end s*: from launching the process to the last transcript (interpreter start,
  imports, model load, decoding); for (c') the whole `asrserve transcribe` command.
- *WER*: over all words of all files after the development set's normalisation
  (`asrserve.evaluation.wer`).
- *peak RSS MB*: the process's peak resident memory (`ru_maxrss`).
- Ratios and differences are against {base.system.label} in this same run.
{per_file}"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare faster-whisper (direct, VAD, batched) with asrserve on long files.",
    )
    parser.add_argument(
        "--subset",
        default="en_long",
        help=f"Development set subset, or {COMPOSED} (long recordings of repeated prompts).",
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"Comma list of {', '.join(SYSTEMS)} (default all), run in this order.",
    )
    parser.add_argument("--repeat", type=int, default=1, help="Runs per system (medians).")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N files.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown report.")
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=available_cpus(),
        help="CTranslate2 threads for every system (default: the CPUs usable).",
    )
    parser.add_argument(
        "--jobs", type=int, default=64, help="Files at once for (c) and (c'), as the CLI's default."
    )
    parser.add_argument(
        "--language", default=LANGUAGE, help=f"Given to every system, or {AUTO} to detect it."
    )
    parser.add_argument(
        "--languages", default="", help="asrserve's expected languages (en,es) with auto."
    )
    parser.add_argument("--clean", action="store_true", help="Ordinary speech clips only.")
    parser.add_argument("--min-clip-s", type=float, default=None, help="Files longer than this.")
    parser.add_argument("--max-clip-s", type=float, default=None, help="Files up to this long.")
    parser.add_argument("--batch-size", type=int, default=8, help="Batch size for (b).")
    parser.add_argument(
        "--decode-workers",
        type=int,
        default=BASELINE_DECODE_WORKERS,
        help="asrserve's CTranslate2 workers (c, c'), each of --cpu-threads.",
    )
    # Internal: how the parent starts one system in a fresh process.
    parser.add_argument("--worker", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--launched-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    require_positive(
        parser, args, ("repeat", "limit", "cpu_threads", "jobs", "batch_size", "decode_workers")
    )
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown or not args.systems:
        parser.error(f"--systems takes a comma list of {', '.join(SYSTEMS)}; got {unknown}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = BenchSettings(
        subset=args.subset,
        limit=args.limit,
        cpu_threads=args.cpu_threads,
        jobs=args.jobs,
        batch_size=args.batch_size,
        decode_workers=args.decode_workers,
        language=args.language,
        languages=args.languages,
        clean=args.clean,
        min_clip_s=args.min_clip_s,
        max_clip_s=args.max_clip_s,
    )
    if args.worker is not None:
        run_worker(args.worker, settings, args.launched_at, args.result)
        return 0

    started = datetime.now(UTC)
    machine = machine_description()  # before any work, so the load average is the machine's own
    clips = select_clips(settings)
    audio_s = sum(c.duration for c in clips)
    print(f"{len(clips)} files, {audio_s:.1f} s of audio; systems {', '.join(args.systems)}")
    warm_file_cache(clips)
    runs: dict[str, list[RunResult]] = {key: [] for key in args.systems}
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-") as scratch:
        # Interleaved, so a slow spell of the machine does not land on one system only.
        for run in range(args.repeat):
            for key in args.systems:
                result = launch(key, settings, Path(scratch), run)
                runs[key].append(result)
                print(
                    f"run {run + 1}/{args.repeat} {SYSTEMS[key].label}: "
                    f"load {num(result.load_s, 2)} s, decode {num(result.decode_s, 2)} s, "
                    f"end to end {result.end_to_end_s:.2f} s, peak {result.peak_rss_mb:.0f} MB"
                )
    summaries = [summarise(SYSTEMS[key], runs[key], clips) for key in args.systems]
    report = render_report(summaries, clips, settings, args.repeat, started, machine)
    base = next((s for s in summaries if s.system.key == "a"), summaries[0])
    print()
    print(results_table(summaries, base, detected=settings.language_code is None))
    if len(clips) <= 12:
        print()
        print(file_wer_table(summaries, clips))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
