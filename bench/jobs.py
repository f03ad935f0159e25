"""The same real-speech jobs through the embedded runner and through Celery + Redis + PostgreSQL.

Issue #9: what scaling out costs on one machine, in one run. Each system gets the same jobs,
submitted at once through `POST /v1/jobs`; times come from the jobs' own records
(`created_at`, `started_at`, `finished_at`), so client polling adds nothing.

- (a) embedded: one `asrserve serve` (SQLite store, one job thread), as `make run` starts it;
- (b) distributed, one worker: `asrserve serve` + one `asrserve worker` on PostgreSQL and Redis
  (servers started here on loopback, asrserve.evaluation.services);
- (c) distributed, two workers: as (b) with two worker processes, each given half the cores
  (CTranslate2 threads), so both systems use the same cores.

Reported: throughput (audio seconds per wall second, from the first job created to the last
finished), its ratio to (a), the overhead of the distributed path ((b) against (a): the target
is within 5 %), queue wait (created -> started) and decode time (started -> finished) per job,
and WER. The client waits through the job listing once a second (no results in it), so it
takes next to no CPU from the decoding. Timings mean something only on a quiet machine:

    .venv/bin/python -m bench.jobs                       # -> docs/benchmarks-jobs.md
    .venv/bin/python -m bench.jobs --jobs 6 --output /tmp/jobs.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from asrserve.evaluation.cluster import Cluster, submit, wait_finished
from asrserve.evaluation.devset import Clip, dev_set_dir, load_subset
from asrserve.evaluation.processes import ServerProcess, start_server
from asrserve.evaluation.services import PostgresServer
from asrserve.evaluation.wer import word_errors
from bench.common import BASELINE_DECODE_WORKERS, REPO, available_cpus, machine_description


@dataclass(frozen=True)
class Outcome:
    system: str
    label: str
    wall_s: float
    audio_s: float
    waits: list[float]
    decodes: list[float]
    wer: float
    workers: int

    @property
    def idle_per_job_s(self) -> float:
        """Slot time outside any job (dispatch, claim, queue hand-off), per job."""
        return (self.wall_s * self.workers - sum(self.decodes)) / len(self.decodes)

    @property
    def busy(self) -> float:
        """The share of the wall time the job slots spent inside jobs (1: never idle)."""
        return sum(self.decodes) / (self.wall_s * self.workers)

    @property
    def throughput(self) -> float:
        return self.audio_s / self.wall_s


def pick_clips(count: int) -> list[Clip]:
    """The longest English clips: jobs are for long files, and long ones keep timing noise of
    the queue small against the decode."""
    clips = sorted(load_subset("en", dev_set_dir()), key=lambda c: (-c.duration, c.id))
    return clips[:count]


def run_jobs(
    api: ServerProcess, clips: Sequence[Clip], system: str, label: str, workers: int
) -> Outcome:
    warm = submit(api, clips[-1].audio, language="en")  # the first job loads nothing afterwards
    wait_listed_finished(api, [warm["id"]])
    ids = [submit(api, clip.audio, language="en")["id"] for clip in clips]
    wait_listed_finished(api, ids)
    jobs = wait_finished(api, ids, timeout_s=60)  # one read each, results included
    failed = [j for j in jobs.values() if j["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"{label}: {len(failed)} jobs did not succeed, e.g. {failed[0]}")
    texts = [httpx.get(f"{api.url}/v1/jobs/{i}?format=text", timeout=60).text for i in ids]
    records = [jobs[i] for i in ids]
    return Outcome(
        system=system,
        label=label,
        wall_s=max(j["finished_at"] for j in records) - min(j["created_at"] for j in records),
        audio_s=sum(c.duration for c in clips),
        waits=[j["started_at"] - j["created_at"] for j in records],
        decodes=[j["finished_at"] - j["started_at"] for j in records],
        wer=word_errors([c.text for c in clips], texts).rate,
        workers=workers,
    )


def wait_listed_finished(api: ServerProcess, ids: Sequence[str], timeout_s: float = 3600) -> None:
    """Wait through the listing (no results in it) once a second, so that polling costs the
    machine next to nothing while it decodes."""
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = httpx.get(f"{api.url}/v1/jobs", params={"limit": 1000}, timeout=60).json()
        done = {j["id"] for j in page["data"] if j["status"] in ("succeeded", "failed")}
        if wanted <= done:
            return
        time.sleep(1.0)
    raise SystemExit(f"jobs not finished within {timeout_s} s")


@contextmanager
def embedded(tmp: Path) -> Iterator[ServerProcess]:
    api = start_server(tmp, name="embedded", job_workers="1")
    try:
        yield api
    finally:
        api.stop()


@contextmanager
def distributed(
    tmp: Path, postgres: PostgresServer, workers: int, cpu_threads: int
) -> Iterator[ServerProcess]:
    database = postgres.create_database(f"bench_{tmp.name}")
    cluster = Cluster.start(
        tmp, database, apis=1, workers=0, job_lease_s="60", job_resend_after_s="600"
    )
    try:
        for _ in range(workers):
            cluster.add_worker(
                cpu_threads=str(cpu_threads),
                decode_workers=str(BASELINE_DECODE_WORKERS),
                job_workers="1",
            )
        yield cluster.apis[0]
    finally:
        cluster.stop()


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(
    outcomes: Sequence[Outcome],
    clips: Sequence[Clip],
    started: datetime,
    walls: dict[str, list[float]],
) -> str:
    base = outcomes[0]
    rows = [
        "| system | wall s | audio s / wall s | × (a) | queue wait median / p95 s | "
        "decode median s | slots busy | idle per job ms | WER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        rows.append(
            f"| {o.label} | {o.wall_s:.1f} | {o.throughput:.2f} | "
            f"{o.throughput / base.throughput:.2f}× | "
            f"{statistics.median(o.waits):.1f} / {_p95(o.waits):.1f} | "
            f"{statistics.median(o.decodes):.2f} | {o.busy:.1%} | "
            f"{1000 * o.idle_per_job_s:.0f} | {o.wer:.2%} |"
        )
    single = next((o for o in outcomes if o.system == "b"), None)
    overhead = ""
    if single is not None:
        cost = single.wall_s / base.wall_s - 1
        idle = 1000 * (single.idle_per_job_s - base.idle_per_job_s)
        overhead = (
            f"\nOverhead of the distributed path with one worker against (a): "
            f"**{cost:+.1%}** of wall time (target: within 5 %), of which the job slots spent "
            f"{idle:+.0f} ms per job outside jobs (dispatch, claim, hand-off); the rest is the "
            "decoding itself running faster or slower from run to run on this shared machine. "
            f"Wall seconds of every run: {walls}.\n"
        )
    lengths = [c.duration for c in clips]
    return (
        "# Jobs: embedded runner against Celery + Redis + PostgreSQL\n\n"
        f"Generated by `bench/jobs.py` on {started:%Y-%m-%d %H:%M} UTC. Machine: "
        f"{machine_description()}.\n\n"
        f"Workload: {len(clips)} jobs, the development set's longest English clips "
        f"({min(lengths):.1f}–{max(lengths):.1f} s, {sum(lengths):.0f} s in all), all submitted "
        "at once through `POST /v1/jobs` with `language=en`, after one warm-up job; systems "
        "interleaved, the run with the median wall time shown (of two: the faster). Model "
        "whisper-base, int8, beam 5. Times are the jobs' own records: wall from the first "
        "`created_at` to the last `finished_at`; queue wait `started_at − created_at`; decode "
        "`finished_at − started_at`.\n\n"
        "- (a) embedded: `asrserve serve` alone (SQLite store, one job thread).\n"
        "- (b) `asrserve serve` + one `asrserve worker` (PostgreSQL store, Redis broker).\n"
        "- (c) as (b) with two workers, each one decode worker of half the cores "
        "(`ASRSERVE_CPU_THREADS`, `ASRSERVE_DECODE_WORKERS`).\n\n"
        + "\n".join(rows)
        + "\n"
        + overhead
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--systems", default="a,b,c", help="Comma subset of a, b, c.")
    parser.add_argument(
        "--repeat", type=int, default=1, help="Interleaved runs; the median run is reported."
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks-jobs.md")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    clips = pick_clips(args.jobs)
    cores = available_cpus()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-jobs-") as scratch:
        tmp = Path(scratch)
        postgres = PostgresServer().start()
        try:
            systems: list[
                tuple[str, str, int, Callable[[Path], AbstractContextManager[ServerProcess]]]
            ] = [
                ("a", "(a) embedded", 1, lambda d: embedded(d)),
                ("b", "(b) 1 worker", 1, lambda d: distributed(d, postgres, 1, 0)),
                (
                    "c",
                    "(c) 2 workers",
                    2,
                    lambda d: distributed(d, postgres, 2, max(1, cores // 2)),
                ),
            ]
            runs: dict[str, list[Outcome]] = {}
            plan = [s for s in systems if s[0] in args.systems.split(",")] * args.repeat
            for n, (system, label, workers, make) in enumerate(plan):
                scratch_dir = tmp / f"{system}{n}"  # fresh data, broker and logs for each run
                scratch_dir.mkdir()
                with make(scratch_dir) as api:
                    outcome = run_jobs(api, clips, system, label, workers)
                runs.setdefault(system, []).append(outcome)
                print(
                    f"{label}: {outcome.wall_s:.1f} s, {outcome.throughput:.2f} audio s/s, "
                    f"slots busy {outcome.busy:.0%}, WER {outcome.wer:.2%}",
                    file=sys.stderr,
                )
        finally:
            postgres.remove()
    for system_runs in runs.values():
        by_wall = sorted(system_runs, key=lambda o: o.wall_s)
        outcomes.append(by_wall[(len(by_wall) - 1) // 2])
    walls = {k: [round(o.wall_s, 1) for o in v] for k, v in runs.items()}
    args.output.write_text(report(outcomes, clips, started, walls), encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
