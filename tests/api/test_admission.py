"""HTTP admission: a few requests decode, a few wait, the rest get 429 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from asrserve.api.admission import Admission
from asrserve.api.errors import ApiError


def test_requests_past_the_waiting_room_are_refused_and_slots_come_back() -> None:
    async def scenario() -> None:
        admission = Admission(max_active=1, max_waiting=1, retry_after_s=7)
        await admission.acquire()
        waiter = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0)
        assert (admission.active, admission.waiting, admission.saturated) == (1, 1, True)

        with pytest.raises(ApiError) as refused:
            await admission.acquire()
        assert refused.value.status == 429
        assert refused.value.code == "server_busy"
        assert refused.value.headers == {"Retry-After": "7"}
        assert "1 requests decoding, 1 waiting" in str(refused.value)

        admission.release()
        await waiter
        assert (admission.active, admission.waiting) == (1, 0)
        admission.release()
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
