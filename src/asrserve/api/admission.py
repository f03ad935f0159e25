"""Bounded admission: a few requests decode at once, a few more wait, the rest are refused.

Refusing early with 429 and Retry-After keeps memory bounded under any load: an accepted request
holds its upload and decoded audio until it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asrserve.api.errors import ApiError


class Admission:
    def __init__(self, max_active: int, max_waiting: int, retry_after_s: int = 5) -> None:
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._active = 0
        self._waiting = 0
        self._semaphore = asyncio.Semaphore(max_active)

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def saturated(self) -> bool:
        return self._active >= self.max_active and self._waiting >= self.max_waiting

    async def acquire(self) -> None:
        if self.saturated:
            raise ApiError(
                429,
                f"The server is busy ({self._active} requests decoding, {self._waiting} waiting); "
                f"retry in {self.retry_after_s} s or submit a job to /v1/jobs.",
                code="server_busy",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._active += 1

    def release(self) -> None:
        self._active -= 1
        self._semaphore.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
