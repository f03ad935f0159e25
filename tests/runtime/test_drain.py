"""The drain's state and deadlines (`asrserve.runtime.drain`), on a fake clock.

The end-to-end behaviour (SIGTERM to a real server, streams finishing) is tests/e2e/test_drain.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

import pytest

from asrserve.runtime import drain as drain_module
from asrserve.runtime.drain import Drain


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_before_the_signal_nothing_drains_and_the_whole_grace_is_left() -> None:
    drain = Drain(30, clock=Clock())
    assert not drain.draining
    assert drain.time_left() == 30
    assert drain.utterance_time_left() == 15  # half kept for the last finals


def test_the_deadlines_count_from_the_signal_and_a_second_one_moves_nothing() -> None:
    clock = Clock()
    drain = Drain(30, clock=clock)
    drain.begin()
    assert drain.draining
    clock.now += 5
    assert (drain.time_left(), drain.utterance_time_left()) == (25, 10)
    drain.begin()  # a second SIGTERM
    clock.now += 16
    assert (drain.time_left(), drain.utterance_time_left()) == (9, 0)
    clock.now += 20
    assert (drain.time_left(), drain.utterance_time_left()) == (0, 0)


@pytest.mark.parametrize(("grace", "cut_after"), [(6, 3), (0, 0), (90, 45)])
def test_utterances_are_cut_halfway_through_the_grace(grace: float, cut_after: float) -> None:
    drain = Drain(grace, clock=Clock())
    drain.begin()
    assert drain.time_left() == grace
    assert drain.utterance_time_left() == pytest.approx(cut_after)


def test_waiters_wake_when_a_signal_handler_begins_the_drain() -> None:
    drain = Drain(30)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        drain.begin()

    async def main() -> None:
        waiter = asyncio.ensure_future(drain.wait_begun())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(waiter, 10)
        await asyncio.wait_for(drain.wait_begun(), 10)  # later waiters return at once

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert drain.draining


def test_finish_waits_for_every_drainer() -> None:
    drain = Drain(30)
    done: list[str] = []

    async def streams() -> None:
        await asyncio.sleep(0.05)
        done.append("streams")

    async def main() -> None:
        drain.add(streams)
        await asyncio.wait_for(drain.finish(), 10)

    asyncio.run(main())
    assert drain.draining and done == ["streams"]


def test_finish_gives_up_on_a_drainer_when_the_grace_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drain_module, "CLOSE_MARGIN_S", 0.05)
    clock = Clock()
    drain = Drain(30, clock=clock)
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    async def main() -> None:
        drain.add(stuck)
        drain.begin()
        clock.now += 31  # the grace is over
        await asyncio.wait_for(drain.finish(), 10)
        await asyncio.wait_for(cancelled.wait(), 10)

    asyncio.run(main())
