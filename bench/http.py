"""Short clips through the HTTP API and the CLI against bare faster-whisper, in one run.

Issues #3 and #8: the throughput of `POST /v1/audio/transcriptions` under 1, 4 and 16
concurrent clients and of the `asrserve transcribe` command, set against faster-whisper called
directly on the same files in the same run, then written into docs/benchmarks-http.md.

- Workload: by default the development set's ordinary-speech English clips of at most 10 s
  (short clips: each costs bare faster-whisper a whole 30 s window), in one language.
- Baselines, each in a fresh process (bench/offline.py's workers): (a) faster-whisper's
  `WhisperModel.transcribe` one file after another, (b) its `BatchedInferencePipeline`.
- CLI: `asrserve transcribe FILES --jobs 64` (its default) as a subprocess, decoding only
  (from the "loaded model" log line to its exit, as bench/offline.py times it) and end to end.
- Server: one real `asrserve serve` process (asrserve.evaluation.processes), admitting as many
  requests as the highest concurrency so none is refused, warmed with one request.
- Each level: N client threads, one httpx client each, take clips from one shared queue and
  send them back to back, so N requests are in flight until the queue runs dry; every clip is
  sent once per level and run.

Timings mean something only on a quiet machine:

    .venv/bin/python -m bench.http                          # -> docs/benchmarks-http.md
    .venv/bin/python -m bench.http --repeat 3               # medians of 3 interleaved runs
    .venv/bin/python -m bench.http --subset en,en_long --max-clip-s 60 --output /tmp/all.md
    .venv/bin/python -m bench.http --limit 6 --concurrency 1,2 --output /tmp/bench-http.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, SimpleQueue

import httpx

from asrserve.evaluation.devset import Clip
from asrserve.evaluation.processes import ServerProcess, start_server
from asrserve.evaluation.wer import word_errors
from bench import offline
from bench.common import (
    BASELINE_DECODE_WORKERS,
    BEAM_SIZE,
    COMPUTE_TYPE,
    DEVICE,
    ENDPOINT,
    MODEL,
    REPO,
    REQUEST_TIMEOUT_S,
    RSS_POLL_S,
    PeakRss,
    available_cpus,
    cli_environment,
    cli_transcribe_command,
    durations,
    git_revision,
    load_event,
    machine_description,
    num,
    percentile,
    ratio,
    read_cli_texts,
    require_positive,
    send,
    table,
    version,
    warm_file_cache,
    warm_up,
)

DEFAULT_OUTPUT = REPO / "docs" / "benchmarks-http.md"


@dataclass(frozen=True, slots=True)
class BenchSettings:
    workload: offline.BenchSettings
    """The files (and the baselines' settings), as bench/offline.py selects them."""
    concurrency: tuple[int, ...]
    repeat: int
    baselines: tuple[str, ...]
    """bench/offline.py systems run on the same files in the same run."""

    @property
    def cpu_threads(self) -> int:
        return self.workload.cpu_threads

    @property
    def jobs(self) -> int:
        return self.workload.jobs


def select_clips(settings: BenchSettings) -> list[Clip]:
    """The workload, longest first.

    Longest first for the server and the CLI alike: the last long file then does not run
    alone while the other clients sit idle, so the wall time is mostly spent with N requests
    in flight, which is what a level is meant to measure.
    """
    clips = offline.select_clips(settings.workload)
    if not clips:
        raise SystemExit(f"no clips in {settings.workload.workload()}")
    languages = {clip.lang for clip in clips}
    if len(languages) != 1:
        # The CLI takes one --language for all files; the comparison needs the same on both.
        raise SystemExit(f"the workload mixes languages {sorted(languages)}: choose one")
    stems = [clip.audio.stem for clip in clips]
    if len(set(stems)) != len(stems):
        # The CLI names outputs by stem and numbers clashes in whatever order files finish.
        raise SystemExit("audio file names repeat in the workload")
    return sorted(clips, key=lambda clip: clip.duration, reverse=True)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One configuration's one run."""

    wall_s: float | None
    texts: dict[str, str]
    """Clip id -> transcript, for the requests that succeeded."""
    latencies_s: tuple[float, ...] = ()
    errors: tuple[str, ...] = ()
    peak_rss_mb: float = 0.0
    load_s: float | None = None
    """The CLI's model load, from its log."""
    end_to_end_s: float | None = None
    """The CLI's whole command, from launch to exit."""


# --- the HTTP clients -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    clip: Clip
    started: float
    finished: float
    text: str | None
    error: str | None


def _client(
    url: str, work: SimpleQueue[Clip], language: str, start: threading.Barrier
) -> list[_Reply]:
    """One client: requests back to back until the shared queue is empty."""
    replies: list[_Reply] = []
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        start.wait()  # every client set up before the first request leaves
        while True:
            try:
                clip = work.get_nowait()
            except Empty:
                return replies
            started = time.monotonic()
            text, error = send(client, clip, language)
            replies.append(_Reply(clip, started, time.monotonic(), text, error))


def run_level(server: ServerProcess, clips: Sequence[Clip], clients: int) -> Measurement:
    work: SimpleQueue[Clip] = SimpleQueue()
    for clip in clips:
        work.put(clip)
    start = threading.Barrier(clients)
    language = clips[0].lang
    with (
        PeakRss(server.proc.pid) as rss,
        ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool,
    ):
        futures = [pool.submit(_client, server.url, work, language, start) for _ in range(clients)]
        replies = [reply for future in futures for reply in future.result()]
    return Measurement(
        # From the first request sent to the last answer received.
        wall_s=max(r.finished for r in replies) - min(r.started for r in replies),
        texts={r.clip.id: r.text for r in replies if r.text is not None},
        latencies_s=tuple(r.finished - r.started for r in replies),
        errors=tuple(r.error for r in replies if r.error is not None),
        peak_rss_mb=rss.peak_mb,
    )


def serve(scratch: Path, settings: BenchSettings) -> ServerProcess:
    most = max(settings.concurrency)
    return start_server(
        scratch,
        name="bench",
        model=MODEL,
        device=DEVICE,
        compute_type=COMPUTE_TYPE,
        cpu_threads=str(settings.cpu_threads),
        decode_workers=str(BASELINE_DECODE_WORKERS),
        # Every request of the busiest level decodes at once and none waits or is refused:
        # the levels measure the server's batching, not its admission control.
        max_concurrent_requests=str(most),
        max_waiting_requests=str(most),
        request_timeout_s=str(REQUEST_TIMEOUT_S),
    )


# --- the CLI baseline -------------------------------------------------------------------------


def run_cli(clips: Sequence[Clip], settings: BenchSettings) -> Measurement:
    """`asrserve transcribe` over all files at once; `wall_s` is its decoding only."""
    env = cli_environment(settings.cpu_threads)
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-") as out_dir:
        command = cli_transcribe_command(
            clips, Path(out_dir), language=clips[0].lang, jobs=settings.jobs
        )
        started = time.time()
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with PeakRss(proc.pid) as rss:
            _, stderr = proc.communicate()
        finished = time.time()
        if proc.returncode != 0:
            raise SystemExit(
                f"asrserve transcribe exited with {proc.returncode}:\n{stderr[-4000:]}"
            )
        texts = read_cli_texts(clips, Path(out_dir))
    event = load_event(stderr)
    if event is None:
        raise SystemExit("asrserve transcribe logged no 'loaded model' line to time decoding by")
    loaded_at, load_s = event
    return Measurement(
        wall_s=finished - loaded_at,
        texts=texts,
        peak_rss_mb=rss.peak_mb,
        load_s=load_s,
        end_to_end_s=finished - started,
    )


# --- summary and report -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One configuration over all runs: median wall time, pooled latencies, errors and WER."""

    label: str
    in_flight: str
    audio_s: float
    """Audio seconds one run sends."""
    walls_s: tuple[float, ...]
    latencies_s: tuple[float, ...]
    errors: tuple[str, ...]
    peak_rss_mb: float
    wer: float | None
    load_s: float | None = None

    @property
    def wall_s(self) -> float | None:
        return statistics.median(self.walls_s) if self.walls_s else None

    @property
    def wall_range(self) -> tuple[float, float] | None:
        return (min(self.walls_s), max(self.walls_s)) if len(self.walls_s) > 1 else None

    @property
    def speed(self) -> float | None:
        """Audio seconds per wall second."""
        return self.audio_s / self.wall_s if self.wall_s else None

    @property
    def rtf(self) -> float | None:
        return self.wall_s / self.audio_s if self.wall_s is not None else None

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies_s, q)


def _wer(clips: Sequence[Clip], runs: Iterable[Measurement]) -> float | None:
    # Pooled over every run's answered clips; failed requests are counted under errors.
    pairs = [
        (clip.text, run.texts[clip.id]) for run in runs for clip in clips if clip.id in run.texts
    ]
    if not pairs:
        return None
    refs, hyps = zip(*pairs, strict=True)
    return word_errors(refs, hyps, language=clips[0].lang).rate


def run_baseline(system: str, settings: BenchSettings, scratch: Path, run: int) -> Measurement:
    """One of bench/offline.py's systems on the same files, in a fresh process."""
    result = offline.launch(system, settings.workload, scratch, run)
    return Measurement(
        wall_s=result.decode_s,
        texts=result.texts,
        peak_rss_mb=result.peak_rss_mb,
        load_s=result.load_s,
        end_to_end_s=result.end_to_end_s,
    )


BASELINE_ROWS = {
    "a": ("(a) faster-whisper `WhisperModel.transcribe`", "1 file"),
    "b": ("(b) faster-whisper `BatchedInferencePipeline`", "1 file"),
}


def _baseline_rows(clips: Sequence[Clip], baseline_runs: dict[str, list[Measurement]]) -> list[Row]:
    audio_s = sum(clip.duration for clip in clips)
    return [
        Row(
            BASELINE_ROWS[system][0],
            BASELINE_ROWS[system][1],
            audio_s,
            walls_s=tuple(run.wall_s for run in runs if run.wall_s is not None),
            latencies_s=(),
            errors=(),
            peak_rss_mb=max(run.peak_rss_mb for run in runs),
            wer=_wer(clips, runs),
            load_s=statistics.median(run.load_s for run in runs if run.load_s is not None),
        )
        for system, runs in baseline_runs.items()
    ]


def _cli_rows(
    clips: Sequence[Clip], settings: BenchSettings, cli_runs: Sequence[Measurement]
) -> list[Row]:
    audio_s = sum(clip.duration for clip in clips)
    cli_wer = _wer(clips, cli_runs)
    cli_peak = max(run.peak_rss_mb for run in cli_runs)
    jobs = f"{settings.jobs} files"
    return [
        Row(
            "CLI, decoding only",
            jobs,
            audio_s,
            walls_s=tuple(run.wall_s for run in cli_runs if run.wall_s is not None),
            latencies_s=(),
            errors=(),
            peak_rss_mb=cli_peak,
            wer=cli_wer,
            load_s=statistics.median(run.load_s for run in cli_runs if run.load_s is not None),
        ),
        Row(
            "CLI, end to end",
            jobs,
            audio_s,
            walls_s=tuple(run.end_to_end_s for run in cli_runs if run.end_to_end_s is not None),
            latencies_s=(),
            errors=(),
            peak_rss_mb=cli_peak,
            wer=cli_wer,
        ),
    ]


def _http_rows(clips: Sequence[Clip], level_runs: dict[int, list[Measurement]]) -> list[Row]:
    audio_s = sum(clip.duration for clip in clips)
    return [
        Row(
            f"HTTP, {clients} client{'s' if clients > 1 else ''}",
            f"{clients} request{'s' if clients > 1 else ''}",
            audio_s,
            walls_s=tuple(run.wall_s for run in runs if run.wall_s is not None),
            latencies_s=tuple(lat for run in runs for lat in run.latencies_s),
            errors=tuple(err for run in runs for err in run.errors),
            peak_rss_mb=max(run.peak_rss_mb for run in runs),
            wer=_wer(clips, runs),
        )
        for clients, runs in level_runs.items()
    ]


def summarise(
    clips: Sequence[Clip],
    settings: BenchSettings,
    baseline_runs: dict[str, list[Measurement]],
    cli_runs: Sequence[Measurement],
    level_runs: dict[int, list[Measurement]],
) -> list[Row]:
    return (
        _baseline_rows(clips, baseline_runs)
        + _cli_rows(clips, settings, cli_runs)
        + _http_rows(clips, level_runs)
    )


def results_table(rows: Sequence[Row]) -> str:
    base = rows[0]  # (a) when it ran, else the CLI decoding only
    header = [
        "configuration",
        "in flight",
        "audio s",
        "wall s",
        "audio s / s",
        "RTF",
        f"× {base.label.split()[0]}",
        "p50 latency s",
        "p95 latency s",
        "WER",
        f"WER − {base.label.split()[0]}",
        "errors",
        "peak RSS MB",
    ]
    body = []
    for row in rows:
        wall = num(row.wall_s, 2)
        if row.wall_range is not None:
            wall += f" ({row.wall_range[0]:.2f}–{row.wall_range[1]:.2f})"
        body.append(
            [
                row.label,
                row.in_flight,
                num(row.audio_s, 1),
                wall,
                num(row.speed, 2),
                num(row.rtf, 3),
                ratio(row.speed, base.speed),
                num(row.latency(0.50), 2),
                num(row.latency(0.95), 2),
                "–" if row.wer is None else f"{row.wer:.2%}",
                "–"
                if row.wer is None or base.wer is None
                else f"{(row.wer - base.wer) * 100:+.2f} pt",
                str(len(row.errors)),
                num(row.peak_rss_mb, 0),
            ]
        )
    return table(header, body)


def _setup_lines(
    rows: Sequence[Row], clips: Sequence[Clip], settings: BenchSettings, machine: str
) -> str:
    audio_s = sum(clip.duration for clip in clips)
    versions = ", ".join(
        f"{p} {version(p)}"
        for p in ("asrserve", "faster-whisper", "ctranslate2", "onnxruntime", "uvicorn", "httpx")
    )
    runs = "once" if settings.repeat == 1 else f"{settings.repeat} times, interleaved"
    most = max(settings.concurrency)
    cli_load = next(row.load_s for row in rows if row.label.startswith("CLI"))
    baselines = [
        f"{BASELINE_ROWS[key][0]}: bench/offline.py's system ({key}) in a fresh process, "
        f"the same files one after another, `word_timestamps=True`, language given"
        + (f", batch size {settings.workload.batch_size}" if key == "b" else "")
        + "; timed from the first file to the last transcript."
        for key in settings.baselines
    ]
    return "\n".join(
        f"- {line}"
        for line in (
            f"Data: {settings.workload.workload()}; {len(clips)} files, {audio_s:.1f} s of "
            f"audio ({durations(clips)}), sent longest first.",
            f"Model: catalogue `{MODEL}` (CTranslate2), device {DEVICE}, compute type "
            f"{COMPUTE_TYPE}, cpu_threads {settings.cpu_threads}, beam size {BEAM_SIZE}, "
            f"language `{clips[0].lang}` given, other options the defaults (VAD and word "
            "timestamps on, default batching: short chunks share 30 s windows) for the "
            "server and the CLI alike.",
            *baselines,
            f"Server: one `asrserve serve` process for all levels, `max_concurrent_requests` "
            f"and `max_waiting_requests` {most} (nothing waits or is refused), warmed with "
            "one request before the first level.",
            f"Clients: N threads with an httpx client each, posting `{ENDPOINT}` (multipart "
            "file from disk, `response_format=json`) back to back from one shared queue, so N "
            "requests are in flight until it runs dry; every file is sent once per level.",
            f"CLI: `asrserve transcribe FILES --jobs {settings.jobs} --format verbose_json -q`, "
            f"the same files in the same order; model load {num(cli_load, 2)} s (median).",
            f"Each configuration ran {runs}; wall times are medians.",
            f"Machine: {machine}.",
            f"Versions: {versions}.",
        )
    )


def render_report(
    rows: Sequence[Row],
    clips: Sequence[Clip],
    settings: BenchSettings,
    started: datetime,
    machine: str,
) -> str:
    setup = _setup_lines(rows, clips, settings, machine)
    base = rows[0].label.split()[0]
    errors = [err for row in rows for err in row.errors]
    error_note = (
        "\n\nFirst errors:\n\n" + "\n".join(f"- `{err}`" for err in errors[:5]) if errors else ""
    )
    return f"""# Short clips: the HTTP API and the CLI against faster-whisper

Generated by `bench/http.py` on {started:%Y-%m-%d %H:%M} UTC (asrserve {git_revision()}).
Regenerate with `.venv/bin/python -m bench.http` on a quiet machine.

## Setup

{setup}

## Results

{results_table(rows)}

- *wall s*: for the HTTP levels, from the first request sent to the last answer received; for
  the CLI decoding only, from its "loaded model" log line to its exit (audio decoding, VAD,
  the model, writing outputs, and first-call costs such as loading the VAD model, which the
  warmed server has already paid); end to end, the whole command including interpreter start
  and model load.
- *audio s / s* = audio seconds / wall seconds; RTF = wall seconds / audio seconds.
- *× {base}*, *WER − {base}*: against {rows[0].label} in this same run.
- *p50/p95 latency s*: per request, as the client sees it (upload, queueing, decoding, answer).
- *WER*: over all words of the answered files after the development set's normalisation
  (`asrserve.evaluation.wer`); failed requests are counted under *errors* instead.
- *peak RSS MB*: resident memory of the server process (or the CLI), children included,
  polled every {RSS_POLL_S * 1000:.0f} ms during the configuration; the server is the same
  process throughout, so a level also carries what earlier ones left allocated.{error_note}
"""


def _print_progress(name: str, run: int, repeat: int, measurement: Measurement) -> None:
    extra = f", {len(measurement.errors)} errors" if measurement.errors else ""
    print(
        f"run {run + 1}/{repeat} {name}: wall {num(measurement.wall_s, 2)} s, "
        f"peak {measurement.peak_rss_mb:.0f} MB{extra}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Short clips through the HTTP API and the CLI against bare faster-whisper.",
    )
    parser.add_argument(
        "--subset", default="en", help="Comma list of development set subsets, one language."
    )
    parser.add_argument(
        "--max-clip-s", type=float, default=10.0, help="Files up to this long (default 10)."
    )
    parser.add_argument("--min-clip-s", type=float, default=None, help="Files longer than this.")
    parser.add_argument(
        "--baselines",
        default="a,b",
        help="bench/offline.py systems to run alongside (default a,b; empty for none).",
    )
    parser.add_argument(
        "--concurrency", default="1,4,16", help="Comma list of client counts (default 1,4,16)."
    )
    parser.add_argument("--repeat", type=int, default=1, help="Runs per configuration.")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N files.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown report.")
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=available_cpus(),
        help="CTranslate2 threads for the server and the CLI (default: the CPUs usable).",
    )
    parser.add_argument("--jobs", type=int, default=64, help="The CLI's --jobs (its default).")
    parser.add_argument("--batch-size", type=int, default=8, help="Batch size for (b).")
    args = parser.parse_args(argv)
    require_positive(parser, args, ("repeat", "limit", "cpu_threads", "jobs", "batch_size"))
    args.baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    if set(args.baselines) - set(BASELINE_ROWS):
        parser.error(f"--baselines takes a comma list of {', '.join(BASELINE_ROWS)}")
    try:
        args.concurrency = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
    except ValueError:
        parser.error("--concurrency takes a comma list of whole numbers")
    if not args.subset.strip() or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--subset and --concurrency need at least one item, client counts >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = BenchSettings(
        workload=offline.BenchSettings(
            subset=args.subset,
            limit=args.limit,
            cpu_threads=args.cpu_threads,
            jobs=args.jobs,
            batch_size=args.batch_size,
            clean=True,
            min_clip_s=args.min_clip_s,
            max_clip_s=args.max_clip_s,
        ),
        concurrency=tuple(dict.fromkeys(args.concurrency)),
        repeat=args.repeat,
        baselines=args.baselines,
    )
    started = datetime.now(UTC)
    machine = machine_description()  # before any work, so the load average is the machine's own
    clips = select_clips(settings)
    audio_s = sum(clip.duration for clip in clips)
    print(
        f"{len(clips)} files, {audio_s:.1f} s of audio; "
        f"clients {', '.join(map(str, settings.concurrency))}"
    )
    if {clip.lang for clip in clips} != {offline.LANGUAGE}:
        raise SystemExit(f"the baselines decode in {offline.LANGUAGE!r}: choose such subsets")
    warm_file_cache(clips)
    baseline_runs: dict[str, list[Measurement]] = {key: [] for key in settings.baselines}
    cli_runs: list[Measurement] = []
    level_runs: dict[int, list[Measurement]] = {n: [] for n in settings.concurrency}
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-http-") as scratch:
        server = serve(Path(scratch), settings)
        try:
            warm_up(server, min(clips, key=lambda clip: clip.duration))
            # Interleaved, so a slow spell of the machine does not land on one configuration
            # only. The server sits idle (holding its memory) while the CLI runs.
            for run in range(settings.repeat):
                for key in settings.baselines:
                    baseline_runs[key].append(run_baseline(key, settings, Path(scratch), run))
                    _print_progress(BASELINE_ROWS[key][0], run, settings.repeat,
                                    baseline_runs[key][-1])  # fmt: skip
                cli_runs.append(run_cli(clips, settings))
                _print_progress("CLI (decoding only)", run, settings.repeat, cli_runs[-1])
                for clients in settings.concurrency:
                    level_runs[clients].append(run_level(server, clips, clients))
                    name = f"HTTP {clients} clients"
                    _print_progress(name, run, settings.repeat, level_runs[clients][-1])
        finally:
            server.stop()
    rows = summarise(clips, settings, baseline_runs, cli_runs, level_runs)
    print()
    print(results_table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render_report(rows, clips, settings, started, machine), "utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
