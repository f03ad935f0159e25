"""JobRunner orchestration with a fake transcribe: progress, outcomes, cancel, stop, wake."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrserve.engine import AudioDecodeError, Transcript
from asrserve.engine.pipeline import ProgressCallback
from asrserve.jobmodel.records import Job, JobState
from asrserve.jobs.runner import JobRunner
from asrserve.jobs.sqlstore import SqlJobStore
from tests.jobs.conftest import AUDIO, StoreFactory, make_transcript, wait_until


class FakeTranscriber:
    """Decodes `duration` seconds in `steps` steps of `step_s` wall time each, reporting
    progress after every step, as the pipeline does after every chunk."""

    def __init__(
        self,
        *,
        duration: float = 40.0,
        steps: int = 4,
        step_s: float = 0.01,
        error: Exception | None = None,
    ) -> None:
        self.duration = duration
        self.steps = steps
        self.step_s = step_s
        self.error = error
        self.calls: list[tuple[str, Path]] = []
        self.steps_done = 0
        self.uploads: list[bytes] = []

    def __call__(self, job: Job, path: Path, progress: ProgressCallback) -> Transcript:
        self.calls.append((job.id, path))
        self.uploads.append(path.read_bytes())
        for i in range(1, self.steps + 1):
            time.sleep(self.step_s)
            self.steps_done += 1
            progress(self.duration * i / self.steps, self.duration)
            if self.error is not None and i == self.steps // 2:
                raise self.error
        return make_transcript(duration=self.duration)


@pytest.fixture
def runners() -> Iterator[list[JobRunner]]:
    """Runners a test starts; all are stopped at the end, even when the test fails."""
    started: list[JobRunner] = []
    yield started
    for runner in started:
        runner.stop(0)


def start(runners: list[JobRunner], runner: JobRunner) -> JobRunner:
    runners.append(runner)
    runner.start()
    return runner


def submit(store: SqlJobStore, runner: JobRunner | None = None) -> str:
    job = store.create(AUDIO, filename="a.wav", model="fake", options={"language": "en"})
    if runner is not None:
        runner.submit(job)
    return job.id


def finished(store: SqlJobStore, job_id: str) -> Job | None:
    job = store.get(job_id)
    return job if job is not None and job.state.finished else None


def test_job_runs_to_success_with_progress(store: SqlJobStore, runners: list[JobRunner]) -> None:
    fake = FakeTranscriber(duration=40.0, steps=20, step_s=0.05)
    seen: list[float] = []
    done_jobs: list[Job] = []
    runner = start(
        runners,
        JobRunner(
            store, fake, poll_interval_s=0.05, progress_interval_s=0.1, on_finished=done_jobs.append
        ),
    )
    job_id = submit(store, runner)

    def record() -> Job | None:
        job = store.get(job_id)
        assert job is not None
        if job.state is JobState.RUNNING and job.progress_total_s:
            seen.append(job.progress_done_s)
        return job if job.state.finished else None

    wait_until(record, timeout_s=10)
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.SUCCEEDED, job
    assert job.result == make_transcript(duration=40.0)
    assert job.progress_done_s == job.progress_total_s == 40.0
    assert job.progress == 1.0
    assert job.attempts == 1
    # Progress was visible while running, rising, and throttled below one write per step.
    assert seen, "no progress was recorded while the job ran"
    assert 0 < min(seen) < 40.0
    assert seen == sorted(seen)
    assert len(set(seen)) < fake.steps
    assert fake.uploads == [AUDIO]
    # Removed just after the commit that finished the job, so it may lag the state a little.
    wait_until(lambda: not store.upload_path(job_id).exists(), timeout_s=2)
    wait_until(lambda: done_jobs)
    assert [j.id for j in done_jobs] == [job_id]


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            AudioDecodeError("The file is not audio: convert it."),
            "audio_decode_error",
            "The file is not audio: convert it.",
        ),
        (RuntimeError("secret internal detail"), "internal_error", "internal error in the server"),
    ],
)
def test_failures_keep_engine_codes_and_hide_internal_ones(
    store: SqlJobStore,
    runners: list[JobRunner],
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    code: str,
    message: str,
) -> None:
    runner = start(runners, JobRunner(store, FakeTranscriber(error=error), poll_interval_s=0.05))
    job_id = submit(store, runner)
    wait_until(lambda: finished(store, job_id))
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.FAILED
    assert job.error_code == code
    assert message in (job.error_message or "")
    assert "secret" not in (job.error_message or "")
    assert job.result is None
    logged = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert any(r.levelname in ("WARNING", "ERROR") for r in logged)


def test_missing_upload_fails_the_job(store: SqlJobStore, runners: list[JobRunner]) -> None:
    job_id = submit(store)
    store.upload_path(job_id).unlink()
    fake = FakeTranscriber()
    start(runners, JobRunner(store, fake, poll_interval_s=0.05))
    wait_until(lambda: finished(store, job_id))
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.error_code) == (JobState.FAILED, "upload_missing")
    assert fake.calls == []


def test_cancel_mid_run_stops_the_decode_promptly(
    store: SqlJobStore, runners: list[JobRunner]
) -> None:
    fake = FakeTranscriber(duration=600.0, steps=400, step_s=0.025)  # 10 s if not stopped
    runner = start(runners, JobRunner(store, fake, poll_interval_s=0.05, progress_interval_s=0.1))
    job_id = submit(store, runner)
    wait_until(lambda: (j := store.get(job_id)) and j.progress_done_s > 0)
    assert store.request_cancel(job_id) is not None
    waited = wait_until(lambda: finished(store, job_id), timeout_s=5)
    assert waited < 1.0  # within a progress interval or so, not the 10 s decode
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.CANCELLED
    steps = fake.steps_done
    time.sleep(0.2)
    assert fake.steps_done == steps < fake.steps  # the decode really stopped


def test_stop_hands_a_long_job_back_and_a_new_runner_finishes_it(
    make_store: StoreFactory, runners: list[JobRunner]
) -> None:
    store = make_store()
    slow = FakeTranscriber(duration=600.0, steps=400, step_s=0.025)
    first = start(runners, JobRunner(store, slow, poll_interval_s=0.05, progress_interval_s=0.1))
    job_id = submit(store, first)
    wait_until(lambda: (j := store.get(job_id)) and j.progress_done_s > 0)
    began = time.monotonic()
    first.stop(deadline_s=0.2)
    assert time.monotonic() - began < 2.0
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.QUEUED
    assert job.attempts == 0  # a graceful hand-back is not a crashed attempt
    assert store.upload_path(job_id).read_bytes() == AUDIO
    steps = slow.steps_done
    time.sleep(0.1)
    assert slow.steps_done == steps  # the old worker is no longer decoding

    # The next start (a new process, here a new store and runner) resumes it.
    store2 = make_store()
    fast = FakeTranscriber(duration=600.0)
    start(runners, JobRunner(store2, fast, poll_interval_s=0.05))
    wait_until(lambda: finished(store2, job_id))
    job = store2.get(job_id)
    assert job is not None
    assert job.state is JobState.SUCCEEDED
    assert job.attempts == 1
    assert fast.uploads == [AUDIO]


def test_stop_lets_a_job_finish_within_the_deadline(
    store: SqlJobStore, runners: list[JobRunner]
) -> None:
    fake = FakeTranscriber(steps=10, step_s=0.05)
    runner = start(runners, JobRunner(store, fake, poll_interval_s=0.05))
    job_id = submit(store, runner)
    wait_until(lambda: fake.calls)
    runner.stop(deadline_s=10)
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.SUCCEEDED


def test_stop_hands_back_a_job_whose_worker_is_stuck_and_ignores_its_late_result(
    store: SqlJobStore, runners: list[JobRunner]
) -> None:
    release = threading.Event()

    def stuck(job: Job, path: Path, progress: ProgressCallback) -> Transcript:
        release.wait(10)  # a long chunk: no progress call to notice the stop
        return make_transcript()

    runner = start(runners, JobRunner(store, stuck, poll_interval_s=0.05, progress_interval_s=0.1))
    job_id = submit(store, runner)
    wait_until(lambda: runner.active_jobs)
    runner.stop(deadline_s=0.1)
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.QUEUED
    release.set()
    time.sleep(0.3)  # the stuck worker returns its result now; it must not count
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.QUEUED
    assert job.result is None


def test_wake_starts_a_job_without_waiting_for_the_poll(
    store: SqlJobStore, runners: list[JobRunner]
) -> None:
    fake = FakeTranscriber(steps=1)
    runner = start(runners, JobRunner(store, fake, poll_interval_s=60.0))
    time.sleep(0.1)  # the worker is now idle in its 60 s poll wait
    job_id = submit(store, runner)
    waited = wait_until(lambda: finished(store, job_id), timeout_s=5)
    assert waited < 2.0


def test_without_wake_a_job_waits_for_the_poll(
    store: SqlJobStore, runners: list[JobRunner]
) -> None:
    # The control for the test above: it is the wake, not luck, that starts the job early.
    fake = FakeTranscriber(steps=1)
    start(runners, JobRunner(store, fake, poll_interval_s=60.0))
    time.sleep(0.1)
    job_id = submit(store)
    time.sleep(0.5)
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.QUEUED


def test_several_workers_run_jobs_in_parallel(store: SqlJobStore, runners: list[JobRunner]) -> None:
    fake = FakeTranscriber(steps=5, step_s=0.1)  # 0.5 s a job
    runner = start(runners, JobRunner(store, fake, workers=4, poll_interval_s=0.05))
    ids = [submit(store, runner) for _ in range(4)]
    waited = wait_until(lambda: all(finished(store, i) for i in ids), timeout_s=10)
    assert waited < 1.5  # four 0.5 s jobs one after another would take 2 s
    assert sorted(i for i, _ in fake.calls) == sorted(ids)


def test_start_requeues_jobs_left_running_and_purges_expired(make_store: StoreFactory) -> None:
    crashed = make_store(retention_s=0.0)
    left_running = submit(crashed)
    crashed.claim_next("dead")
    expired = submit(crashed)
    crashed.request_cancel(expired)  # finished with zero retention: expired at once
    store = make_store(retention_s=0.0)
    done: list[Job] = []
    runner = JobRunner(
        store,
        FakeTranscriber(),
        poll_interval_s=0.05,
        purge_interval_s=0.05,
        on_finished=done.append,
    )
    runner.start()
    try:
        # Zero retention purges it as soon as it succeeds, so wait for the row to go.
        wait_until(lambda: store.get(left_running) is None and store.get(expired) is None)
    finally:
        runner.stop(1)
    assert store.list().jobs == []
    assert [(j.id, j.state) for j in done] == [(left_running, JobState.SUCCEEDED)]


def test_runners_of_two_servers_sharing_a_store_lease_jobs_and_recover_a_dead_ones(
    make_store: StoreFactory, runners: list[JobRunner]
) -> None:
    # PostgreSQL with the local queue: a second server starting must not take the first one's
    # running jobs, and a server that died mid-job has its job run again by the other.
    store = make_store()
    job_id = submit(store)
    assert store.claim_next("dead-server/0", lease_s=0.6) is not None  # then it died
    live_id = submit(store)
    slow = FakeTranscriber(steps=20, step_s=0.1)
    start(runners, JobRunner(store, slow, poll_interval_s=0.05, lease_s=3.0))
    done = wait_until(lambda: finished(store, job_id) and finished(store, live_id), timeout_s=30)
    assert done >= 0
    recovered = store.get(job_id)
    assert recovered is not None and recovered.state is JobState.SUCCEEDED
    assert recovered.attempts == 2
    # The jobs ran past several lease periods while their runner renewed them: one start each.
    assert store.get(live_id).attempts == 1  # type: ignore[union-attr]
    assert len(slow.calls) == 2
