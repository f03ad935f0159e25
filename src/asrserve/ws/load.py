"""How far behind the live path is, and what it sheds first.

Every live stream's work ends up in the models' shared batchers, so the age of the oldest chunk
still queued there (`DynamicBatcher.lag_s`) says how far the server is behind. As it grows, the
streams give up, in order: some partials (each stream re-decodes less often), then all partials
(finals only), then new streams (refused with `server_busy`). A level, once reached, holds for
`hold_s`, so the streams do not flap between two levels on every batch.

A stream that still falls behind its own real-time schedule (`StreamLag`) is closed with a clear
`server_overloaded` error (ws.server), never left to a keepalive timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class LoadLevel(IntEnum):
    NORMAL = 0
    FEWER_PARTIALS = 1
    FINALS_ONLY = 2
    FULL = 3
    """No new streams."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    fewer_partials_lag_s: float = 0.3
    """Batcher lag at which partials come less often..."""
    partial_interval_factor: float = 3.0
    """...this many times the normal interval apart..."""
    finals_only_lag_s: float = 0.8
    """...and the lag at which they stop (each utterance still gets its final)..."""
    refuse_lag_s: float = 2.0
    """...and at which new streams are refused with `server_busy`."""
    hold_s: float = 2.0
    """A level holds this long after the lag that raised it has gone."""
    overloaded_lag_s: float = 15.0
    """A stream this far behind its own real-time schedule is closed with `server_overloaded`:
    its words would arrive too late to be live, and the backlog would only grow."""

    def __post_init__(self) -> None:
        steps = (self.fewer_partials_lag_s, self.finals_only_lag_s, self.refuse_lag_s)
        if not 0 < steps[0] <= steps[1] <= steps[2]:
            raise ValueError("load thresholds must be positive and in increasing order")
        if self.partial_interval_factor < 1 or self.hold_s < 0 or self.overloaded_lag_s <= 0:
            raise ValueError("partial_interval_factor >= 1, hold_s >= 0, overloaded_lag_s > 0")


class LiveLoad:
    """Shared by every stream of a server. `lag` gives the current batcher lag in seconds."""

    def __init__(
        self,
        lag: Callable[[], float],
        options: LoadOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lag = lag
        self.options = options or LoadOptions()
        self._clock = clock
        self._held = LoadLevel.NORMAL
        self._held_until = 0.0
        self.partials_skipped = 0
        """Partials not decoded because of load (at most one per normal interval of audio)."""

    def level(self) -> LoadLevel:
        now = self._clock()
        current = self._level_for(self._lag())
        if current >= self._held or now >= self._held_until:
            if current > LoadLevel.NORMAL:
                self._held, self._held_until = current, now + self.options.hold_s
            else:
                self._held = LoadLevel.NORMAL
            return current
        return self._held

    def _level_for(self, lag: float) -> LoadLevel:
        o = self.options
        if lag >= o.refuse_lag_s:
            return LoadLevel.FULL
        if lag >= o.finals_only_lag_s:
            return LoadLevel.FINALS_ONLY
        if lag >= o.fewer_partials_lag_s:
            return LoadLevel.FEWER_PARTIALS
        return LoadLevel.NORMAL

    def partial_interval(self, normal_s: float) -> float | None:
        """How much new audio a re-decoding partial decoder waits for now; None: no partials."""
        level = self.level()
        if level >= LoadLevel.FINALS_ONLY:
            return None
        if level is LoadLevel.FEWER_PARTIALS:
            return normal_s * self.options.partial_interval_factor
        return normal_s

    def skipped_partial(self) -> None:
        self.partials_skipped += 1

    @property
    def accepts_streams(self) -> bool:
        return self.level() < LoadLevel.FULL


class StreamLag:
    """How far one stream's processing is behind its real-time schedule.

    Audio is due when it arrived, or when a real-time client would have sent it (the stream's
    first audio plus its position), whichever is later: a client sending a file faster than
    real time is not behind while the server keeps real time for it. The lag is the age of the
    oldest thing due and not done: audio not yet fed to the session, or a final not yet sent.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: float | None = None
        self._waiting: dict[int, float] = {}

    def due(self, stream_s: float) -> float:
        """When the audio ending at `stream_s` (seconds into the stream) is due: now, or its
        real-time place, whichever is later."""
        now = self._clock()
        if self._first is None:
            self._first = now - stream_s
        return max(now, self._first + stream_s)

    def waiting(self, key: int, due: float) -> None:
        """`key` (an `id()`) is due at `due` and not done yet."""
        self._waiting[key] = due

    def done(self, key: int) -> None:
        self._waiting.pop(key, None)

    def age_s(self, key: int) -> float:
        """How long past due `key` is now (0 if unknown or not due yet)."""
        due = self._waiting.get(key)
        return 0.0 if due is None else max(0.0, self._clock() - due)

    def lag_s(self) -> float:
        if not self._waiting:
            return 0.0
        return max(0.0, self._clock() - min(self._waiting.values()))
