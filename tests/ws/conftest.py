"""Stand-ins the live path's unit tests share: a clock the test moves, a server not draining."""

from __future__ import annotations


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class NotDraining:
    draining = False

    def time_left(self) -> float:
        return 30.0

    def utterance_time_left(self) -> float:
        return 15.0

    async def wait_begun(self) -> None:
        raise AssertionError("not used")
