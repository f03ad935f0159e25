"""A job worker process for the crash test: `python -m tests.jobs.crash_worker DATA_DIR`.

It runs the embedded setup (SQLite store, JobRunner, real whisper-base) on DATA_DIR until it is
killed. Chunks are decoded one at a time so that progress moves in several steps and the test
can kill it in the middle of a job.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asrserve.engine import BatchingOptions, DecodeOptions, ModelRegistry, TranscribeOptions
from asrserve.jobs.runner import JobRunner, registry_transcriber
from asrserve.jobs.sqlite import SQLiteJobStore


def english(options: Mapping[str, Any]) -> TranscribeOptions:
    return TranscribeOptions(decode=DecodeOptions(language=options.get("language")))


def main(data_dir: Path) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    registry = ModelRegistry(batching=BatchingOptions(max_batch_size=1))
    registry.acquire("whisper-base")  # load before claiming: the test waits for progress
    store = SQLiteJobStore(data_dir)
    runner = JobRunner(
        store, registry_transcriber(registry, english), poll_interval_s=0.05, progress_interval_s=0
    )
    runner.start()
    threading.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    main(Path(sys.argv[1]))
