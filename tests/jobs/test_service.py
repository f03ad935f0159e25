"""JobService: the calls the HTTP routes make, with their not-found and conflict errors."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from asrserve.engine import AudioTooLargeError, InvalidOptionError
from asrserve.jobmodel.errors import (
    InvalidWebhookUrlError,
    JobNotFinishedError,
    JobNotFoundError,
    JobResultUnavailableError,
)
from asrserve.jobmodel.records import Job, JobState
from asrserve.jobs.service import JobService
from asrserve.jobs.sqlstore import SqlJobStore
from tests.jobs.conftest import AUDIO, make_transcript


class RecordingQueue:
    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.wakes = 0

    def start(self) -> None:
        """Nothing to start: the test drives the store by hand."""

    def submit(self, job: Job) -> None:
        self.submitted.append(job.id)

    def wake(self) -> None:
        self.wakes += 1

    def stop(self, deadline_s: float) -> None:
        """Nothing to stop."""


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def jobs(store: SqlJobStore, queue: RecordingQueue) -> JobService:
    return JobService(store, queue, max_upload_bytes=10_000, webhook_allow_private=True)


def submit(jobs: JobService, **kwargs: object) -> Job:
    args: dict[str, object] = {"filename": "a.wav", "model": "whisper-base", "options": {"x": 1}}
    args.update(kwargs)
    return jobs.submit(io.BytesIO(AUDIO), **args)  # type: ignore[arg-type]


def test_submit_stores_the_job_then_tells_the_queue(
    jobs: JobService, queue: RecordingQueue, store: SqlJobStore
) -> None:
    job = submit(jobs, webhook_url=" https://example.com/h ")
    assert queue.submitted == [job.id]
    assert job.state is JobState.QUEUED
    assert job.webhook_url == "https://example.com/h"
    assert store.get(job.id) == job
    with pytest.raises(AudioTooLargeError):
        jobs.submit(b"x" * 10_001, filename="big", model="m", options={})
    with pytest.raises(InvalidWebhookUrlError):
        submit(jobs, webhook_url="gopher://x")
    assert queue.submitted == [job.id]  # rejected uploads never reach the queue


def test_get_and_result(jobs: JobService, store: SqlJobStore) -> None:
    job = submit(jobs)
    for missing in ("0" * 32, "../../etc/passwd", "nope"):
        with pytest.raises(JobNotFoundError):
            jobs.get(missing)
    with pytest.raises(JobNotFinishedError, match="queued"):
        jobs.result(job.id)
    store.claim_next("w")
    transcript = make_transcript()
    store.complete(job.id, transcript)
    assert jobs.get(job.id).result == transcript
    assert jobs.result(job.id) == transcript

    failed = submit(jobs)
    store.claim_next("w")
    store.fail(failed.id, "audio_decode_error", "Not audio.")
    with pytest.raises(JobResultUnavailableError, match="audio_decode_error: Not audio"):
        jobs.result(failed.id)


def test_cancel_or_delete(jobs: JobService, store: SqlJobStore, queue: RecordingQueue) -> None:
    queued = submit(jobs)
    running = submit(jobs)
    cancelled = jobs.cancel_or_delete(queued.id)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED
    assert queue.wakes == 1
    store.claim_next("w")  # `queued` is finished, so this claims `running`
    flagged = jobs.cancel_or_delete(running.id)
    assert flagged is not None
    assert (flagged.state, flagged.cancel_requested) == (JobState.RUNNING, True)
    # A second DELETE on a finished job deletes it.
    assert jobs.cancel_or_delete(queued.id) is None
    with pytest.raises(JobNotFoundError):
        jobs.get(queued.id)
    with pytest.raises(JobNotFoundError):
        jobs.cancel_or_delete(queued.id)


def test_list_and_counts(jobs: JobService) -> None:
    made = [submit(jobs).id for _ in range(5)]
    page = jobs.list(limit=3)
    assert len(page.jobs) == 3
    assert page.next_cursor is not None
    rest = jobs.list(limit=3, cursor=page.next_cursor)
    assert rest.next_cursor is None
    assert {j.id for j in page.jobs + rest.jobs} == set(made)
    listed = jobs.list(state="queued", limit=10).jobs
    assert listed == sorted(listed, key=lambda j: (j.created_at, j.id), reverse=True)
    assert {j.id for j in listed} == set(made)
    with pytest.raises(ValueError):
        jobs.list(state="sleeping")
    with pytest.raises(InvalidOptionError):
        jobs.list(limit=5000)
    assert jobs.count_by_state()[JobState.QUEUED] == 5
    assert jobs.queue_depth() == 5


def test_jobs_imports_no_api_cli_or_settings() -> None:
    # The layering rule of DESIGN.md, checked on what importing the package really loads.
    code = (
        "import sys, asrserve.jobs;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn',"
        " 'typer', 'pydantic_settings') or m.startswith(('asrserve.api', 'asrserve.cli',"
        " 'asrserve.config', 'asrserve.ws'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
