"""Throughput against clip length: faster-whisper and asrserve on clips of growing length.

Issue #8: Whisper pads every input to a 30 s window, so bare faster-whisper pays a whole
window for a 2 s clip, and its throughput grows with the clip length; asrserve packs short
chunks into shared windows. This runs bench/offline.py's systems (a) `WhisperModel.transcribe`,
(b) `BatchedInferencePipeline` and (c) asrserve's pipeline, each in a fresh process, on the
development set's English clips grouped by length, in one run, and writes a table and a plot:

    .venv/bin/python bench/clip_length.py            # -> docs/benchmarks-clip-length.{md,png}
    .venv/bin/python bench/clip_length.py --repeat 3 --output /tmp/clip-length.md
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)  # `bench.offline` importable when run as a script

import argparse  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from bench import offline  # noqa: E402

DEFAULT_OUTPUT = REPO / "docs" / "benchmarks-clip-length.md"


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str
    settings: offline.BenchSettings


def buckets(base: offline.BenchSettings) -> list[Bucket]:
    """Ordinary English speech by length: the short clips in four groups, then the long files."""
    short = replace(base, subset="en", clean=True)
    return [
        Bucket("≤ 3 s", replace(short, max_clip_s=3.0)),
        Bucket("3–5 s", replace(short, min_clip_s=3.0, max_clip_s=5.0)),
        Bucket("5–10 s", replace(short, min_clip_s=5.0, max_clip_s=10.0)),
        Bucket("10–30 s", replace(short, min_clip_s=10.0, max_clip_s=30.0)),
        Bucket("30–53 s", replace(base, subset="en_long")),
    ]


@dataclass(frozen=True, slots=True)
class Point:
    bucket: Bucket
    files: int
    mean_s: float
    summaries: dict[str, offline.Summary]


def measure(bucket: Bucket, systems: Sequence[str], repeat: int, scratch: Path) -> Point:
    clips = offline.select_clips(bucket.settings)
    offline.warm_file_cache(clips)
    runs: dict[str, list[offline.RunResult]] = {key: [] for key in systems}
    for run in range(repeat):
        for key in systems:
            result = offline.launch(key, bucket.settings, scratch, run)
            runs[key].append(result)
            print(f"{bucket.label} run {run + 1}/{repeat} {offline.SYSTEMS[key].label}: "
                  f"decode {offline._num(result.decode_s, 2)} s")  # fmt: skip
    return Point(
        bucket=bucket,
        files=len(clips),
        mean_s=sum(c.duration for c in clips) / len(clips),
        summaries={k: offline.summarise(offline.SYSTEMS[k], runs[k], clips) for k in systems},
    )


def table(points: Sequence[Point], systems: Sequence[str]) -> str:
    base = systems[0]
    header = ["clip length", "files", "mean s"]
    for key in systems:
        header += [f"({key}) audio s / s", f"({key}) WER"]
    header += [f"({key}) × ({base})" for key in systems[1:]]
    rows = []
    for p in points:
        row = [p.bucket.label, str(p.files), offline._num(p.mean_s, 1)]
        for key in systems:
            row += [offline._num(p.summaries[key].speed, 2), f"{p.summaries[key].wer:.2%}"]
        row += [offline._ratio(p.summaries[k].speed, p.summaries[base].speed) for k in systems[1:]]
        rows.append(row)
    return offline._table(header, rows)


def plot(points: Sequence[Point], systems: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    xs = [p.mean_s for p in points]
    for i, key in enumerate(systems):
        ys = [p.summaries[key].speed or 0.0 for p in points]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=offline.SYSTEMS[key].label)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{p.bucket.label}\n(mean {p.mean_s:.1f} s)" for p in points])
    ax.minorticks_off()
    ax.set_xlabel("clip length")
    ax.set_ylabel("audio seconds per wall second")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Throughput against clip length (higher is better), whisper-base int8")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render(
    points: Sequence[Point],
    systems: Sequence[str],
    base: offline.BenchSettings,
    repeat: int,
    started: datetime,
    machine: str,
    image: str,
) -> str:
    described = "\n".join(
        f"- **{offline.SYSTEMS[k].label}**: {offline.SYSTEMS[k].description}" for k in systems
    )
    runs = "once" if repeat == 1 else f"{repeat} times, interleaved; times are medians"
    return f"""# Throughput against clip length

Generated by `bench/clip_length.py` on {started:%Y-%m-%d %H:%M} UTC (asrserve
{offline._git_revision()}). Regenerate with `make bench` on a quiet machine.

![throughput against clip length]({image})

{table(points, systems)}

- Data: the development set's ordinary-speech English clips (`en`, `clean_read`) grouped by
  length, and the long English files (`en_long`).
- Model: catalogue `{offline.MODEL}`, device {offline.DEVICE}, compute type
  {offline.COMPUTE_TYPE}, cpu_threads {base.cpu_threads}, beam size {offline.BEAM_SIZE},
  language `{offline.LANGUAGE}` given, word timestamps on for every system; (b) batch size
  {base.batch_size}; (c) {base.jobs} files at a time.
- *audio s / s*: audio seconds per wall second of decoding (from the first file handed over
  to the last transcript); ratios against ({systems[0]}) in this same run. Each system ran
  {runs}, each run in a fresh process.
- Machine: {machine}.

## Systems

{described}
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Throughput against clip length.")
    parser.add_argument("--systems", default="a,b,c", help="bench/offline.py systems.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per system and bucket.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown report.")
    parser.add_argument("--cpu-threads", type=int, default=offline.available_cpus())
    parser.add_argument("--jobs", type=int, default=64, help="Files at once for (c).")
    parser.add_argument("--batch-size", type=int, default=8, help="Batch size for (b).")
    args = parser.parse_args(argv)
    offline.require_positive(parser, args, ("repeat", "cpu_threads", "jobs", "batch_size"))
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not args.systems or set(args.systems) - set(offline.SYSTEMS):
        parser.error(f"--systems takes a comma list of {', '.join(offline.SYSTEMS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = offline.BenchSettings(
        subset="en",
        limit=None,
        cpu_threads=args.cpu_threads,
        jobs=args.jobs,
        batch_size=args.batch_size,
    )
    started = datetime.now(UTC)
    machine = offline.machine_description()
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-length-") as scratch:
        points = [measure(b, args.systems, args.repeat, Path(scratch)) for b in buckets(base)]
    print()
    print(table(points, args.systems))
    image = args.output.with_suffix(".png")
    plot(points, args.systems, image)
    report = render(points, args.systems, base, args.repeat, started, machine, image.name)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"\nwrote {args.output} and {image}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
