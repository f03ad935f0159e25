"""Shared helpers for the jobs tests: a store on tmp_path, transcripts, a polling wait."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asrserve.engine.types import Segment, Transcript, TranscriptInfo, Word
from asrserve.jobs.sqlite import SQLiteJobStore


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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteJobStore]:
    s = SQLiteJobStore(tmp_path / "jobs")
    yield s
    s.close()


AUDIO = b"RIFF\x00\x00\x00\x00WAVEfake audio bytes" * 10
