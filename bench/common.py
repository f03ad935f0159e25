"""What the benchmarks share: the model settings, the CLI and HTTP runs, and the reports' parts.

Every benchmark runs the same model the same way, describes the machine, the versions and the
revision the same way, and renders its figures into the same Markdown tables, so its report
reads like the others and compares with them.

Only light imports at module level: bench/offline.py's workers import this module, and a
worker's imports count towards its end-to-end time and peak memory. httpx and psutil are
imported where they are used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from asrserve.engine.engines.whisper import default_compute_type
from asrserve.engine.engines.whisper import usable_cpus as available_cpus
from asrserve.evaluation.devset import Clip

if TYPE_CHECKING:
    import httpx

    from asrserve.evaluation.processes import ServerProcess

__all__ = [
    "BEAM_SIZE",
    "COMPUTE_TYPE",
    "DEVICE",
    "ENDPOINT",
    "MODEL",
    "REPO",
    "REQUEST_TIMEOUT_S",
    "RSS_POLL_S",
    "PeakRss",
    "available_cpus",
    "cli_environment",
    "cli_transcribe_command",
    "durations",
    "git_revision",
    "load_event",
    "machine_description",
    "num",
    "percentile",
    "ratio",
    "read_cli_outputs",
    "read_cli_texts",
    "require_positive",
    "send",
    "table",
    "version",
    "warm_file_cache",
    "warm_up",
]

REPO = Path(__file__).resolve().parents[1]

MODEL = "whisper-base"
# BENCH_DEVICE=cuda measures a GPU, at the compute type the engine picks there by default.
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")
COMPUTE_TYPE = default_compute_type(DEVICE)
BEAM_SIZE = 5

ENDPOINT = "/v1/audio/transcriptions"
# Long enough that a 53 s file queued behind 15 others on two cores still finishes: a timeout
# would count as an error and hide the figure we are after.
REQUEST_TIMEOUT_S = 3600.0
RSS_POLL_S = 0.05


# --- options ----------------------------------------------------------------------------------


def require_positive(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: Sequence[str]
) -> None:
    """Exit with the parser's usage error when any of these whole-number options is below 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")


# --- the asrserve transcribe command ----------------------------------------------------------


def _asrserve_command() -> list[str]:
    # The console script installed beside this interpreter is what `make`/users run.
    script = Path(sys.executable).with_name("asrserve")
    if script.is_file():
        return [str(script)]
    found = shutil.which("asrserve")
    if found is None:
        raise RuntimeError("the asrserve command is not installed: run `make install` first.")
    return [found]


def load_event(stderr: str) -> tuple[float, float] | None:
    """(wall-clock time the model finished loading, load seconds) from the CLI's JSON logs."""
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("message") == "loaded model":
            loaded_at = datetime.fromisoformat(entry["time"]).timestamp()
            return loaded_at, float(entry["seconds"])
    return None


BASELINE_DECODE_WORKERS = 1
"""asrserve's CTranslate2 workers where a benchmark pins cpu_threads beside faster-whisper,
which decodes on one worker of cpu_threads: the rows then differ in the pipeline, not in how
many threads decode (the server's own `decode_workers` default gives each of its workers
cpu_threads)."""


def cli_environment(
    cpu_threads: int, decode_workers: int = BASELINE_DECODE_WORKERS
) -> dict[str, str]:
    """The environment for an `asrserve transcribe` run: only our settings, since ASRSERVE_*
    variables in the caller's shell would make the CLI run differently from the other rows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASRSERVE_")}
    env |= {
        "ASRSERVE_CPU_THREADS": str(cpu_threads),
        "ASRSERVE_DECODE_WORKERS": str(decode_workers),
        # Info-level JSON logs carry the "loaded model" line that splits load from decoding.
        "ASRSERVE_LOG_LEVEL": "info",
        "ASRSERVE_LOG_FORMAT": "json",
    }
    return env


def cli_transcribe_command(
    clips: Sequence[Clip], out_dir: Path, *, language: str, jobs: int, languages: str = ""
) -> list[str]:
    """`asrserve transcribe` over all clips at once, with the benchmark's model settings."""
    expected = ["--languages", languages] if languages else []
    return [
        *_asrserve_command(),
        "transcribe",
        *(str(clip.audio) for clip in clips),
        "--model", MODEL,
        "--device", DEVICE,
        "--compute-type", COMPUTE_TYPE,
        "--language", language,
        *expected,
        "--beam-size", str(BEAM_SIZE),
        "--jobs", str(jobs),
        "--format", "verbose_json",
        "--output-dir", str(out_dir),
        "--quiet",
    ]  # fmt: skip


def read_cli_outputs(clips: Sequence[Clip], out_dir: Path) -> dict[str, dict]:
    """Each clip's `verbose_json` output from the CLI's `<stem>.json` files."""
    return {
        clip.id: json.loads((out_dir / f"{clip.audio.stem}.json").read_text("utf-8"))
        for clip in clips
    }


def read_cli_texts(clips: Sequence[Clip], out_dir: Path) -> dict[str, str]:
    """Each clip's transcript from the CLI's `<stem>.json` outputs."""
    return {clip_id: out["text"] for clip_id, out in read_cli_outputs(clips, out_dir).items()}


def warm_file_cache(clips: Sequence[Clip]) -> None:
    """Assemble and checksum the model and read the audio once, so the first system does not
    pay disk reads the later ones skip."""
    from asrserve.engine.models import resolve

    resolve(MODEL)
    for clip in clips:
        clip.audio.read_bytes()


# --- the HTTP API -----------------------------------------------------------------------------


def send(client: httpx.Client, clip: Clip, language: str) -> tuple[str | None, str | None]:
    """(transcript, None) or (None, what went wrong) for one clip, read from disk."""
    import httpx

    try:
        with clip.audio.open("rb") as audio:
            response = client.post(
                ENDPOINT,
                files={"file": (clip.audio.name, audio, "audio/wav")},
                data={"language": language, "response_format": "json"},
            )
    except httpx.HTTPError as exc:
        return None, f"{clip.id}: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return None, f"{clip.id}: HTTP {response.status_code}: {response.text[:300]}"
    return response.json()["text"], None


def warm_up(server: ServerProcess, clip: Clip) -> None:
    """One request first, so the first level does not pay for what only the first request
    does (the VAD model's load, thread pools, lazy imports)."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
        _, error = send(client, clip, clip.lang)
    if error is not None:
        raise SystemExit(f"the warm-up request failed: {error}\n{server.log[-4000:]}")


# --- measuring --------------------------------------------------------------------------------


class PeakRss:
    """Polls a process's resident memory (with its children's) in a thread; keeps the peak.

    Polling, not `ru_maxrss`: the server lives through every level and the CLI is not this
    process, so the kernel's lifetime peak would not say which level used what.
    """

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="rss", daemon=True)
        self.peak_bytes = 0

    def __enter__(self) -> PeakRss:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    def _poll(self) -> None:
        while not self._stop.wait(RSS_POLL_S):
            self._sample()

    def _sample(self) -> None:
        import psutil

        try:
            processes = [self._process, *self._process.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in processes)
        except psutil.Error:
            return  # the process (or a child) just exited: its last sample stands
        self.peak_bytes = max(self.peak_bytes, rss)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the nearest ranks (numpy's default), q in [0, 1]."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- reports ----------------------------------------------------------------------------------


def num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    return "–" if value is None or not base else f"{value / base:.2f}×"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def durations(clips: Sequence[Clip]) -> str:
    lengths = [c.duration for c in clips]
    return f"{min(lengths):.1f}–{max(lengths):.1f} s each, mean {statistics.mean(lengths):.1f} s"


def version(package: str) -> str:
    """An installed package's version, or "not installed"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    """The checkout's short commit, "with local changes" when the code differs from it (not
    docs/, where the benchmarks write their reports and plots, often before the report)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":!docs"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" with local changes" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_description() -> str:
    import psutil

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    parts = [
        f"{_cpu_model()}, {available_cpus()} CPUs usable "
        f"({psutil.cpu_count(logical=False)} physical cores)",
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB memory",
        platform.platform(),
        f"Python {platform.python_version()}",
    ]
    if load is not None:
        # A busy machine shows here: the load should be near 0 when the run starts.
        parts.append(f"load average at start {load[0]:.2f}")
    return "; ".join(parts)
