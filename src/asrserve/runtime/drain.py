"""The server's one "shutting down" state, read by the HTTP API and the WebSocket server.

SIGTERM starts it (`begin`, safe to call from a signal handler). From then on `/ready` answers 503
and new streams are refused, while open streams finish the utterance being spoken. Its two
deadlines, both counted from the signal, bound that:

- `utterance_time_left()`: until open utterances are cut, so their finals can still be decoded;
- `time_left()`: until `shutdown_grace_s` is over, when the last streams are closed.

`finish()` waits for everything registered with `add` (the stream server: all streams closed),
at most until the grace ends; the HTTP server stops listening only after that, so clients keep
reaching a server that says it is draining instead of one that refuses connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

FINAL_SHARE = 0.5
"""Of the grace period, the share kept for decoding and sending the last finals: utterances still
open when only this much is left are cut there. Half: the utterance spoken after the signal is
then never longer than the time left to decode it, so a server that keeps up with real time
(when loaded, decoding may take about as long as the speech) sends every final in time."""
CLOSE_MARGIN_S = 2.0
"""After the grace ends, how long `finish` still waits for streams to send their close."""

Drainer = Callable[[], Awaitable[None]]


class Drain:
    def __init__(
        self,
        grace_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_s = max(0.0, grace_s)
        self.final_reserve_s = self.grace_s * FINAL_SHARE
        self._clock = clock
        self._started_at: float | None = None
        self._begun = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drainers: list[Drainer] = []

    reason = "draining: the server is shutting down"

    @property
    def draining(self) -> bool:
        return self._started_at is not None

    def begin(self) -> None:
        """Start draining (again is a no-op: a second signal does not move the deadlines).
        Safe in a signal handler: it only assigns, and wakes waiters through the event loop's
        thread-safe (and signal-safe) `call_soon_threadsafe`."""
        if self._started_at is not None:
            return
        self._started_at = self._clock()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._begun.set)

    def time_left(self) -> float:
        """Seconds until the grace period ends (the full grace before draining began)."""
        if self._started_at is None:
            return self.grace_s
        return max(0.0, self._started_at + self.grace_s - self._clock())

    def utterance_time_left(self) -> float:
        """Seconds until utterances still being spoken are cut."""
        return max(0.0, self.time_left() - self.final_reserve_s)

    async def wait_begun(self) -> None:
        """Returns once draining has begun."""
        self._loop = asyncio.get_running_loop()
        if self.draining:
            return
        await self._begun.wait()

    def add(self, drainer: Drainer) -> None:
        """`drainer()` is awaited by `finish`: it returns when its part has drained."""
        self._drainers.append(drainer)

    async def finish(self) -> None:
        """Begins draining if not yet, then waits for every drainer, until the grace is over."""
        self.begin()
        self._begun.set()
        if not self._drainers:
            return
        pending = [asyncio.ensure_future(drainer()) for drainer in self._drainers]
        _, late = await asyncio.wait(pending, timeout=self.time_left() + CLOSE_MARGIN_S)
        for task in late:
            task.cancel()
        if late:
            log.warning("drain: grace period over", extra={"unfinished": len(late)})
