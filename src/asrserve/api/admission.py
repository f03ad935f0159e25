"""Bounded admission: a few requests decode at once, a few more wait, the rest are refused.

Refusing early with 429 and Retry-After keeps memory bounded under any load: an accepted request
holds its upload and decoded audio until it is done.

The waiting room is also sized by time: from how long recent requests held their slot, a request
that would wait longer than `max_wait_s` is refused at once, with a Retry-After that says when
the queue ahead of it will have drained enough. A queue of long files and a queue of short clips
differ a hundredfold in how long a place in them costs; a count alone would either turn short
clips away or let long files wait until their deadline and fail after the wait.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from asrserve.api.errors import ApiError

FULL = "requests_full"
"""Refused: the waiting room holds `max_waiting` requests (the memory bound)."""
WAIT = "requests_wait"
"""Refused: it would wait longer than `max_wait_s` for a slot."""


class Admission:
    HOLDS_KEPT = 32
    """The wait estimate reads the slot hold times of the last this-many requests."""

    def __init__(
        self,
        max_active: int,
        max_waiting: int,
        *,
        max_wait_s: float = 0.0,
        retry_after_s: int = 5,
        refused: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        """0: no bound by time, only by count."""
        self.retry_after_s = retry_after_s
        """Retry-After while no request has finished yet to time the queue by."""
        self._refused = refused
        self._clock = clock
        self._active = 0
        self._waiting = 0
        self._semaphore = asyncio.Semaphore(max_active)
        self._holds: deque[float] = deque(maxlen=self.HOLDS_KEPT)

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return self._waiting

    def mean_hold_s(self) -> float | None:
        """How long recent requests held a slot on average; None before the first is done."""
        return sum(self._holds) / len(self._holds) if self._holds else None

    def wait_estimate_s(self) -> float | None:
        """About how long a request arriving now would wait for a slot: 0 with one free, None
        when all are taken and no request has finished yet to tell. Slots come free at about
        `max_active` per mean hold time (Little's law), so the k-th in line waits k of those."""
        if self._active < self.max_active:
            return 0.0
        mean = self.mean_hold_s()
        return None if mean is None else (self._waiting + 1) * mean / self.max_active

    def _refusal(self) -> str | None:
        if self._active < self.max_active:
            return None
        if self._waiting >= self.max_waiting:
            return FULL
        wait = self.wait_estimate_s()
        if self.max_wait_s > 0 and wait is not None and wait > self.max_wait_s:
            return WAIT
        return None

    @property
    def saturated(self) -> bool:
        """The next request would be refused."""
        return self._refusal() is not None

    def _retry_after(self, reason: str) -> int:
        mean = self.mean_hold_s()
        if mean is None:
            return self.retry_after_s
        per_slot = mean / self.max_active
        if reason == WAIT:
            # When the queue ahead has shrunk enough that its wait would be within the bound.
            wait = (self._waiting + 1) * per_slot
            return max(1, math.ceil(wait - self.max_wait_s))
        return max(1, math.ceil(per_slot))  # when the next waiter is likely to have started

    async def acquire(self) -> float:
        """Waits for a slot and gives the time it was taken, which `release` wants back."""
        reason = self._refusal()
        if reason is not None:
            self._refused(reason)
            wait, retry = self.wait_estimate_s(), self._retry_after(reason)
            why = f", about {wait:.0f} s of waiting" if reason == WAIT and wait is not None else ""
            raise ApiError(
                429,
                f"The server is busy ({self._active} requests decoding, {self._waiting} "
                f"waiting{why}); retry in {retry} s or submit a job to /v1/jobs.",
                code="server_busy",
                headers={"Retry-After": str(retry)},
            )
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._active += 1
        return self._clock()

    def release(self, taken_at: float) -> None:
        self._holds.append(max(0.0, self._clock() - taken_at))
        self._active -= 1
        self._semaphore.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        taken_at = await self.acquire()
        try:
            yield
        finally:
            self.release(taken_at)
