"""HTTP admission: a few requests decode, a few wait, the rest get 429 with Retry-After; the
waiting room is bounded by count and by the wait that recent requests' slot times predict."""

from __future__ import annotations

import asyncio

import pytest

from asrserve.api.admission import FULL, WAIT, Admission
from asrserve.api.errors import ApiError


def test_requests_past_the_waiting_room_are_refused_and_slots_come_back() -> None:
    async def scenario() -> None:
        admission = Admission(max_active=1, max_waiting=1, retry_after_s=7)
        first = await admission.acquire()
        waiter = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0)
        assert (admission.active, admission.waiting, admission.saturated) == (1, 1, True)

        with pytest.raises(ApiError) as refused:
            await admission.acquire()
        assert refused.value.status == 429
        assert refused.value.code == "server_busy"
        assert refused.value.headers == {"Retry-After": "7"}
        assert "1 requests decoding, 1 waiting" in str(refused.value)

        admission.release(first)
        second = await waiter
        assert (admission.active, admission.waiting) == (1, 0)
        admission.release(second)
        assert (admission.active, admission.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_waiter_that_is_cancelled_leaves_the_counts_as_they_were() -> None:
    async def scenario() -> None:
        admission = Admission(max_active=1, max_waiting=2)
        async with admission.slot():
            waiter = asyncio.create_task(admission.acquire())
            await asyncio.sleep(0)
            assert admission.waiting == 1
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert (admission.active, admission.waiting) == (1, 0)
        assert (admission.active, admission.waiting, admission.saturated) == (0, 0, False)

    asyncio.run(scenario())


def test_a_slot_is_given_back_when_the_request_fails() -> None:
    async def scenario() -> None:
        admission = Admission(max_active=1, max_waiting=0)
        with pytest.raises(RuntimeError):
            async with admission.slot():
                raise RuntimeError("decode failed")
        async with admission.slot():
            assert admission.active == 1

    asyncio.run(scenario())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _hold(admission: Admission, clock: FakeClock, seconds: float) -> None:
    taken_at = await admission.acquire()
    clock.now += seconds
    admission.release(taken_at)


def test_the_wait_is_estimated_from_how_long_recent_requests_held_their_slot() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        admission = Admission(max_active=2, max_waiting=8, clock=clock)
        assert admission.wait_estimate_s() == 0.0  # a slot is free
        held = [await admission.acquire(), await admission.acquire()]
        assert admission.wait_estimate_s() is None  # all taken, none finished: unknown
        clock.now += 4.0
        for taken_at in held:
            admission.release(taken_at)
        await _hold(admission, clock, 10.0)
        assert admission.mean_hold_s() == 6.0  # (4 + 4 + 10) / 3

        held = [await admission.acquire(), await admission.acquire()]
        waiters = [asyncio.create_task(admission.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        # Two slots free up per 6 s: the 4th in line waits about 4 × 6 / 2 s.
        assert admission.wait_estimate_s() == 12.0
        for taken_at in held:
            admission.release(taken_at)
        for waiter in waiters:
            waiter.cancel()

    asyncio.run(scenario())


def test_only_the_last_requests_hold_times_count() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        admission = Admission(max_active=1, max_waiting=1, clock=clock)
        await _hold(admission, clock, 600.0)  # one long file, long ago
        for _ in range(Admission.HOLDS_KEPT):
            await _hold(admission, clock, 2.0)
        assert admission.mean_hold_s() == 2.0

    asyncio.run(scenario())


def test_a_request_that_would_wait_past_the_bound_is_refused_at_once() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        reasons: list[str] = []
        admission = Admission(
            max_active=1, max_waiting=10, max_wait_s=25.0, refused=reasons.append, clock=clock
        )
        await _hold(admission, clock, 10.0)
        first = await admission.acquire()
        waiters = [asyncio.create_task(admission.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        # Two ahead of it and one decoding: about 3 × 10 s, past the 25 s bound.
        assert admission.wait_estimate_s() == 30.0
        assert admission.saturated
        with pytest.raises(ApiError) as refused:
            await admission.acquire()
        assert refused.value.status == 429
        assert refused.value.code == "server_busy"
        # In 5 s the line ahead has moved on enough for a 25 s wait.
        assert refused.value.headers == {"Retry-After": "5"}
        assert "about 30 s of waiting" in str(refused.value)
        assert reasons == [WAIT]

        waiters[0].cancel()
        await asyncio.sleep(0)
        assert admission.wait_estimate_s() == 20.0 and not admission.saturated
        admission.release(first)
        waiters[1].cancel()

    asyncio.run(scenario())


def test_without_a_wait_bound_only_the_count_refuses() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        reasons: list[str] = []
        admission = Admission(max_active=1, max_waiting=2, refused=reasons.append, clock=clock)
        await _hold(admission, clock, 300.0)
        first = await admission.acquire()
        waiters = [asyncio.create_task(admission.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        assert admission.wait_estimate_s() == 900.0
        with pytest.raises(ApiError) as refused:
            await admission.acquire()
        # Full by count: retry once the next in line has likely started.
        assert refused.value.headers == {"Retry-After": "300"}
        assert reasons == [FULL]
        admission.release(first)
        for waiter in waiters:
            waiter.cancel()

    asyncio.run(scenario())


def test_a_bound_does_not_refuse_before_any_request_has_been_timed() -> None:
    async def scenario() -> None:
        admission = Admission(max_active=1, max_waiting=1, max_wait_s=0.001, clock=FakeClock())
        first = await admission.acquire()
        waiter = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0)
        assert admission.waiting == 1  # waits: nothing yet says how long it would
        admission.release(first)
        admission.release(await waiter)

    asyncio.run(scenario())
