"""Locust, headless, against asrserve: the seed's load test, written into docs/benchmarks-load.md.

bench/locustfile.py posts real speech (the development set's ordinary English clips) to
`/api/v1/recognize` and `/v1/audio/transcriptions`. This script runs it at a few user counts
against each target in one run, on one machine, so their figures compare:

- `local`: one `asrserve serve` started here (asrserve.evaluation.processes), warmed with one
  request;
- `compose`: the Compose stack of deploy/compose.yaml (2 API replicas behind nginx, 2 workers,
  Redis, PostgreSQL, Prometheus) on a Docker daemon started here, as tests/deploy runs it;
- any `http://HOST:PORT`: a server or stack already running.

Every level is bounded in time (`--run-time`) and in count (LOCUST_MAX_REQUESTS per user).
Timings mean something only on a quiet machine:

    .venv/bin/python -m bench.load                               # local and compose
    .venv/bin/python -m bench.load --targets local --users 2 --run-time 20 --output /tmp/l.md
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from asrserve.evaluation.processes import start_server

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "bench" / "locustfile.py"
ENDPOINTS = ("/api/v1/recognize", "/v1/audio/transcriptions")


@dataclass(frozen=True)
class Row:
    target: str
    users: int
    endpoint: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@contextmanager
def local_server(scratch: Path, users: int) -> Iterator[str]:
    server = start_server(
        scratch,
        name="load",
        # Every user's request is admitted: the levels measure serving, not refusing.
        max_concurrent_requests=str(max(users, 16)),
        max_waiting_requests=str(max(users, 16)),
    )
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def compose_stack(scratch: Path) -> Iterator[str]:
    """The image built and the stack started as tests/deploy do it, on a daemon of our own."""
    from asrserve.evaluation.compose_stack import NGINX, running_stack
    from asrserve.evaluation.docker import BASE_IMAGE, DockerDaemon, build_context, build_image

    daemon = DockerDaemon().start()
    try:
        daemon.import_rootfs("base", BASE_IMAGE)
        context = scratch / "context"
        context.mkdir()
        build_image(
            daemon, build_context(context), "asrserve:bench", "Dockerfile", BASE_IMAGE=BASE_IMAGE
        )
        with running_stack(daemon, scratch, "asrserve:bench"):
            yield NGINX
    finally:
        daemon.stop()


def warm(url: str) -> None:
    sample = REPO / "samples" / "jfk.wav"
    with sample.open("rb") as fh:
        response = httpx.post(f"{url}/api/v1/recognize", files={"audio": fh}, timeout=600)
    response.raise_for_status()


def run_locust(url: str, users: int, run_time_s: int, scratch: Path) -> list[dict[str, str]]:
    prefix = scratch / f"locust-{users}"
    env = {**os.environ, "LOCUST_MAX_REQUESTS": os.environ.get("LOCUST_MAX_REQUESTS", "40")}
    subprocess.run(
        [
            str(Path(sys.executable).with_name("locust")),
            f"--locustfile={LOCUSTFILE}",
            "--headless",
            f"--host={url}",
            f"--users={users}",
            f"--spawn-rate={users}",
            f"--run-time={run_time_s}s",
            "--stop-timeout=120",
            f"--csv={prefix}",
            "--only-summary",
            "--loglevel=WARNING",
        ],
        env=env,
        check=False,  # Locust exits 1 when any request failed; the table says so
        timeout=run_time_s + 300,
    )
    with Path(f"{prefix}_stats.csv").open() as fh:
        return list(csv.DictReader(fh))


def rows_of(target: str, users: int, stats: list[dict[str, str]]) -> list[Row]:
    rows = []
    for entry in stats:
        name = entry["Name"]
        if name not in (*ENDPOINTS, "Aggregated"):
            continue
        rows.append(
            Row(
                target=target,
                users=users,
                endpoint="all" if name == "Aggregated" else name,
                requests=int(entry["Request Count"]),
                failures=int(entry["Failure Count"]),
                rps=float(entry["Requests/s"]),
                p50_ms=float(entry["50%"] or 0),
                p95_ms=float(entry["95%"] or 0),
                p99_ms=float(entry["99%"] or 0),
                max_ms=float(entry["Max Response Time"] or 0),
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    base = {r.users: r.rps for r in rows if r.target == rows[0].target and r.endpoint == "all"}
    lines = [
        "| target | users | endpoint | requests | failures | requests/s | × first target "
        "| p50 s | p95 s | p99 s | max s |",
        "|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r.rps / base[r.users]:.2f}×" if r.endpoint == "all" and base.get(r.users) else ""
        lines.append(
            f"| {r.target} | {r.users} | `{r.endpoint}` | {r.requests} | {r.failures} "
            f"| {r.rps:.2f} | {ratio} | {r.p50_ms / 1000:.2f} | {r.p95_ms / 1000:.2f} "
            f"| {r.p99_ms / 1000:.2f} | {r.max_ms / 1000:.2f} |"
        )
    return "\n".join(lines)


def report(rows: list[Row], args: argparse.Namespace, started: datetime) -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return f"""# Load test (Locust)

Generated by `bench/load.py` on {started:%Y-%m-%d %H:%M} UTC (asrserve {commit or "?"}).
Regenerate with `.venv/bin/python -m bench.load` on a quiet machine.

## Setup

- Workload: `bench/locustfile.py`; each user posts the development set's ordinary English clips
  (at most 15 s, {os.environ.get("LOCUST_CLIPS", "40")} clips, shuffled per user), alternating
  `POST /api/v1/recognize` (the seed's endpoint, no language given, as its clients send it:
  the language is detected) and `POST /v1/audio/transcriptions` (language `en`), 50–200 ms
  apart; a request fails unless it answers 200 with text.
- Levels: {", ".join(map(str, args.users))} users, each for {args.run_time} s, at most
  {os.environ.get("LOCUST_MAX_REQUESTS", "40")} requests per user; Locust on the same machine.
- Targets: {", ".join(args.targets)}. `local` is one `asrserve serve` (whisper-base, int8,
  defaults; admission raised so no request is refused); `compose` is deploy/compose.yaml
  through nginx (2 API replicas, each with the same defaults, sharing the same 2 cores, plus
  2 idle workers, Redis, PostgreSQL, Prometheus). Each target warmed with one request.
- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs;
  {platform.platform()}; Python {platform.python_version()}.

## Results

{table(rows)}

- Latency is Locust's: from the request sent to the whole answer received, upload included;
  its percentiles are rounded to two significant figures, so p99 may print above max.
- *× first target*: requests per second against the first target at the same user count.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="local,compose", type=lambda s: s.split(","))
    parser.add_argument("--users", default="4,16", type=lambda s: [int(u) for u in s.split(",")])
    parser.add_argument("--run-time", type=int, default=60)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks-load.md")
    args = parser.parse_args()
    started = datetime.now(UTC)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="asrserve-load-") as tmp:
        scratch = Path(tmp)
        for target in args.targets:
            if target == "local":
                context = local_server(scratch, max(args.users))
            elif target == "compose":
                context = compose_stack(scratch)
            else:
                context = _existing(target)
            with context as url:
                warm(url)
                for users in args.users:
                    began = time.monotonic()
                    stats = run_locust(
                        url, users, args.run_time, scratch / target.replace("/", "_")
                    )
                    rows += rows_of(target, users, stats)
                    print(f"{target}, {users} users: {time.monotonic() - began:.0f} s")
    args.output.write_text(report(rows, args, started))
    print(table(rows))
    print(f"wrote {args.output}")


@contextmanager
def _existing(url: str) -> Iterator[str]:
    yield url.rstrip("/")


if __name__ == "__main__":
    main()
