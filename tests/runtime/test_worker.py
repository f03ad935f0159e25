"""What `asrserve worker` refuses before it loads anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrserve.config import Settings
from asrserve.runtime.worker import distributed_job_options


def test_a_worker_needs_a_shared_queue_and_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ASRSERVE_JOB_QUEUE to a redis:// URL"):
        distributed_job_options(Settings(data_dir=tmp_path), None)


def test_the_concurrency_flag_overrides_the_setting(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        job_queue="redis://127.0.0.1:6379/0",
        job_store="postgresql://asrserve@127.0.0.1:5432/asrserve",
        job_workers=2,
    )
    assert distributed_job_options(settings, None).workers == 2
    assert distributed_job_options(settings, 3).workers == 3
