"""Shared helpers for the jobs tests: a store on tmp_path, transcripts, a polling wait."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asrserve.engine import Segment, Transcript, TranscriptInfo, Word
from asrserve.jobs.postgres import PostgresJobStore
from asrserve.jobs.sqlite import SQLiteJobStore
from asrserve.jobs.sqlstore import SqlJobStore


def make_transcript(duration: float = 12.5, text: str = "hello world") -> Transcript:
    """A small transcript with every field set away from its default."""
    words = tuple(
        Word(start=0.5 + i, end=1.25 + i, word=f" {w}", probability=0.75 - i / 10)
        for i, w in enumerate(text.split())
    )
    segment = Segment(
        id=0,
        start=0.5,
        end=duration - 0.5,
        text=f" {text}",
        words=words,
        avg_logprob=-0.123456789,
        no_speech_prob=0.01,
        compression_ratio=1.5,
        temperature=0.2,
        tokens=(50364, 2425, 1002),
    )
    info = TranscriptInfo(
        language="en",
        language_probability=0.987654321,
        duration=duration,
        speech_duration=duration - 1.0,
        task="transcribe",
        model="fake",
    )
    return Transcript(info=info, segments=(segment,))


def wait_until(
    predicate: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.01
) -> float:
    """Poll until `predicate()` is truthy; returns the seconds waited, fails on timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)
    return time.monotonic() - started


StoreFactory = Callable[..., SqlJobStore]
"""Makes a store on the test's backend; each call is one more process's view of the same jobs
(`retention_s`, `max_attempts` and `clock` as keywords)."""


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """Every store test runs on SQLite and on a real PostgreSQL (a fresh database each)."""
    made: list[SqlJobStore] = []
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None

    def make(**kwargs: Any) -> SqlJobStore:
        if url is None:
            store: SqlJobStore = SQLiteJobStore(tmp_path / "jobs", **kwargs)
        else:
            store = PostgresJobStore(url, upload_dir=tmp_path / "jobs" / "uploads", **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> SqlJobStore:
    return make_store()


AUDIO = b"RIFF\x00\x00\x00\x00WAVEfake audio bytes" * 10
