"""Start-up refusals: one embedded runner per data directory, backends that cannot work together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asrserve.evaluation.processes import free_port, server_env
from asrserve.jobs.options import JobOptions
from asrserve.runtime.locks import DataDirLock, DataDirLockedError


def test_a_second_lock_on_one_directory_is_refused_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    first = DataDirLock(tmp_path).acquire()
    with pytest.raises(DataDirLockedError, match=r"in use by pid \d+.*ASRSERVE_DATA_DIR"):
        DataDirLock(tmp_path).acquire()
    first.release()
    DataDirLock(tmp_path).acquire().release()


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from asrserve.runtime.locks import DataDirLock;"
            f"DataDirLock(__import__('pathlib').Path({str(tmp_path)!r})).acquire();"
            "print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(DataDirLockedError):
        DataDirLock(tmp_path).acquire()
    holder.kill()
    holder.wait(30)
    DataDirLock(tmp_path).acquire().release()  # the kernel dropped it with the process


def test_a_second_server_on_the_same_data_directory_exits_with_a_sentence(
    tmp_path: Path,
) -> None:
    lock = DataDirLock(tmp_path / "data").acquire()  # as a running server holds it
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "asrserve.cli", "serve"],
            env=server_env(free_port(), tmp_path / "data", {}),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        lock.release()
    assert proc.returncode == 2
    assert "one asrserve server runs the embedded job runner per data directory" in (
        proc.stdout + proc.stderr
    )


@pytest.mark.parametrize(
    ("store", "queue", "says"),
    [
        ("sqlite", "redis://127.0.0.1:6379/0", "cannot share an SQLite file"),
        ("mysql://db/asr", "local", "must be 'sqlite' or a postgresql:// URL"),
        ("sqlite", "amqp://broker", "must be 'local' or a redis:// URL"),
    ],
)
def test_combinations_that_cannot_work_are_refused_with_a_sentence(
    store: str, queue: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        JobOptions(store=store, queue=queue).validate()


def test_passwords_never_reach_the_logs_or_the_refusals() -> None:
    options = JobOptions(store="postgresql://asr:s3cret@db/asr", queue="redis://:pw@r:6379/0")
    options.validate()
    assert "s3cret" not in str(options.describe()) and "pw@" not in str(options.describe())
    with pytest.raises(ValueError) as refused:
        JobOptions(store="mysql://asr:s3cret@db/asr").validate()
    assert "s3cret" not in str(refused.value)


def test_a_worker_without_a_redis_queue_says_what_to_set(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "asrserve.cli", "worker"],
        env=server_env(None, tmp_path / "data", {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "set ASRSERVE_JOB_QUEUE to a redis:// URL" in proc.stderr
