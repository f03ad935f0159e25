"""JobWorker (what a Celery worker runs per message) with a fake transcribe, on both stores:
duplicates, takeover of a dead worker's lease, the reaper, the drain on SIGTERM."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asrserve.engine import Transcript
from asrserve.engine.pipeline import ProgressCallback
from asrserve.jobmodel.records import Job, JobState
from asrserve.jobs.options import JobOptions
from asrserve.jobs.sqlstore import SqlJobStore
from asrserve.jobs.worker import JobWorker
from tests.jobs.conftest import AUDIO, StoreFactory, make_transcript, wait_until

# Leases long against the heartbeat (every lease_s / 3): a loaded machine never loses one here.
OPTIONS = JobOptions(lease_s=3.0, resend_after_s=0.5)


class GatedTranscriber:
    """Reports progress, then waits for `gate` (so a test holds a job mid-decode)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = threading.Event()

    def __call__(self, job: Job, path: Path, progress: ProgressCallback) -> Transcript:
        progress(1.0, 10.0)
        self.running.set()
        while not self.gate.wait(0.02):
            progress(1.0, 10.0)  # a stop or a cancel raises here
        progress(10.0, 10.0)
        return make_transcript(duration=10.0)


class Resent:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, job_id: str) -> bool:
        self.ids.append(job_id)
        return True


@pytest.fixture
def workers() -> Iterator[list[JobWorker]]:
    made: list[JobWorker] = []
    yield made
    for worker in made:
        worker.stop()


def make_worker(
    store: SqlJobStore,
    workers: list[JobWorker],
    transcribe: object,
    resent: Resent,
    on_stalled: Callable[[], None] | None = None,
) -> JobWorker:
    worker = JobWorker(
        store,
        transcribe,  # type: ignore[arg-type]
        OPTIONS,
        resend=resent,
        progress_interval_s=0,
        on_stalled=on_stalled,
    )
    workers.append(worker)
    worker.start()
    return worker


def create(store: SqlJobStore) -> str:
    return store.create(AUDIO, filename="a.wav", model="fake", options={}).id


def test_a_message_runs_its_job_once_and_duplicates_do_nothing(
    store: SqlJobStore, workers: list[JobWorker]
) -> None:
    transcribe = GatedTranscriber()
    first = make_worker(store, workers, transcribe, Resent())
    second = make_worker(store, workers, transcribe, Resent())
    job_id = create(store)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(first.run(job_id)))
    thread.start()
    assert transcribe.running.wait(10)
    assert first.busy == 1
    # A second delivery while the first worker holds a live lease (renewed by its heartbeat,
    # well past one lease period) is acknowledged without work.
    wait_until(lambda: store.get(job_id).attempts == 1, timeout_s=5)  # type: ignore[union-attr]
    threading.Event().wait(OPTIONS.lease_s * 1.5)
    assert second.run(job_id) == "skipped"
    transcribe.gate.set()
    thread.join(10)
    assert outcome == ["succeeded"]
    assert second.run(job_id) == "skipped"  # finished: a late duplicate does nothing either
    job = store.get(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.attempts == 1


def test_the_reaper_resends_a_dead_workers_job_and_a_lost_message(
    make_store: StoreFactory, workers: list[JobWorker]
) -> None:
    store = make_store()
    dead_id, lost_id = create(store), create(store)
    assert store.claim(dead_id, "a-worker-that-died", lease_s=0.3) is not None
    resent = Resent()
    make_worker(store, workers, GatedTranscriber(), resent)
    wait_until(lambda: dead_id in resent.ids and lost_id in resent.ids, timeout_s=10)
    dead = store.get(dead_id)
    assert dead is not None and dead.state is JobState.QUEUED and dead.attempts == 1


def test_sigterm_drain_hands_the_job_back_and_sends_it_again(
    store: SqlJobStore, workers: list[JobWorker]
) -> None:
    transcribe = GatedTranscriber()
    resent = Resent()
    worker = make_worker(store, workers, transcribe, resent)
    job_id = create(store)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run(job_id)))
    thread.start()
    assert transcribe.running.wait(10)
    worker.begin_shutdown(0.0)
    thread.join(10)
    assert outcome == ["handed back"]
    assert resent.ids == [job_id]
    job = store.get(job_id)
    assert job is not None and job.state is JobState.QUEUED and job.attempts == 0
    # While draining, a new message goes straight back to the queue.
    assert worker.run(create(store)) == "handed back"


def test_a_cancel_stops_the_running_job(store: SqlJobStore, workers: list[JobWorker]) -> None:
    transcribe = GatedTranscriber()
    worker = make_worker(store, workers, transcribe, Resent())
    job_id = create(store)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run(job_id)))
    thread.start()
    assert transcribe.running.wait(10)
    store.request_cancel(job_id)
    thread.join(10)
    assert outcome == ["cancelled"]
    assert worker.healthy()


def test_a_free_worker_that_gets_no_messages_while_jobs_wait_reports_itself_stalled(
    store: SqlJobStore, workers: list[JobWorker]
) -> None:
    # The broker takes the messages (resend returns True) but this consumer never runs them:
    # what Celery's Redis consumer does after a broker restart during a job.
    stalled = threading.Event()
    worker = make_worker(store, workers, GatedTranscriber(), Resent(), stalled.set)
    create(store)
    assert stalled.wait(10)
    assert worker.stalled and not worker.healthy()


def test_a_busy_worker_is_not_stalled_while_jobs_wait(
    store: SqlJobStore, workers: list[JobWorker]
) -> None:
    transcribe = GatedTranscriber()
    stalled = threading.Event()
    worker = make_worker(store, workers, transcribe, Resent(), stalled.set)
    job_id = create(store)
    thread = threading.Thread(target=worker.run, args=(job_id,))
    thread.start()
    assert transcribe.running.wait(10)
    create(store)  # waits: the only slot is taken
    assert not stalled.wait(4 * OPTIONS.resend_after_s)
    assert worker.healthy()
    transcribe.gate.set()
    thread.join(10)
