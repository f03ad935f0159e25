"""The CLI's bound on decoded audio held by the files in flight (no model needed)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from asrserve.cli.transcribe import AudioBudget
from asrserve.engine.audio import probe_duration
from asrserve.evaluation.devset import Clip


def enters(
    budget: AudioBudget, seconds: float | None
) -> tuple[threading.Event, Callable[[], None]]:
    """Try to hold `seconds` in a thread: (set once it holds them, release it)."""
    inside, leave = threading.Event(), threading.Event()

    def run() -> None:
        with budget.hold(seconds):
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=run)
    thread.start()

    def release() -> None:
        leave.set()
        thread.join(5)

    return inside, release


def test_files_share_the_budget_until_it_is_full() -> None:
    budget = AudioBudget(100)
    first, release_first = enters(budget, 60)
    assert first.wait(5)
    second, release_second = enters(budget, 30)
    assert second.wait(5)
    third, release_third = enters(budget, 30)  # 120 s would be over the budget
    assert not third.wait(0.2)
    release_first()
    assert third.wait(5)
    release_second()
    release_third()


def test_a_file_longer_than_the_budget_or_of_unknown_length_runs_alone() -> None:
    budget = AudioBudget(100)
    small, release_small = enters(budget, 10)
    assert small.wait(5)
    huge, release_huge = enters(budget, 5000)
    assert not huge.wait(0.2)
    release_small()
    assert huge.wait(5)
    unknown, release_unknown = enters(budget, None)
    assert not unknown.wait(0.2)
    release_huge()
    assert unknown.wait(5)
    release_unknown()


def test_durations_come_from_the_header_without_decoding(jfk: Clip) -> None:
    assert abs((probe_duration(jfk.audio) or 0) - jfk.duration) < 0.01
    assert probe_duration("/no/such/file.wav") is None
