"""How far behind the live path is, and what it sheds first.

Every live stream's work ends up in the models' shared batchers, so the age of the oldest chunk
still queued there (`DynamicBatcher.lag_s`) says how far the server is behind. As it grows, the
streams give up, in order: some partials (each stream re-decodes less often), then all partials
(finals only), then new streams (refused with `server_busy`). A level, once reached, holds for
`hold_s`, so the streams do not flap between two levels on every batch. Finals start early, in a
pause before its endpoint, only at the normal level and with room to spare by live RTF
(`StreamCapacity`): one that speech makes useless costs a decode.

When the streams still fall behind together, the newest is closed, one at a time, until the
others catch up (`StreamShedder`); a stream that still falls behind its own real-time schedule
(`StreamLag`) is closed too. Both get a clear `server_overloaded` error (ws.server), never a
keepalive timeout.

How many streams the server has room for (`StreamCapacity`) is estimated from live RTF: the final
model's busy share per second of stream audio over the last minute. It is shown, not enforced: the
lag reacts within seconds to what the streams actually cost, and an estimate made under other load
(HTTP requests, another process on the machine) would refuse streams the server could take.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from asrserve.engine.streaming import EarlyFinalOutcome


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
    shed_lag_s: float = 5.0
    """Before that: while at least two streams are this far behind and the worst is not
    catching up, the newest stream with work pending is closed with `server_overloaded`..."""
    shed_every_s: float = 1.0
    """...one at most this often, so each shed's freed share shows in the lags before the next."""
    capacity_busy_share: float = 0.45
    """The final model's busy share at which streams still get their finals in time: on the
    streaming benchmark (2 cores, whisper-base, 2026-12-04) every level at up to 38 % busy was
    real time; at 54 % N = 8 continuous was (p95 2.53 s) and N = 16 half silent was not (p95
    4.00 s); N = 16 continuous at 86 % was not."""
    capacity_window_s: float = 60.0
    """The estimate reads the last this-many seconds..."""
    capacity_min_audio_s: float = 30.0
    """...once the streams sent at least this much audio in them (seconds, all streams)."""

    def __post_init__(self) -> None:
        steps = (self.fewer_partials_lag_s, self.finals_only_lag_s, self.refuse_lag_s)
        if not 0 < steps[0] <= steps[1] <= steps[2]:
            raise ValueError("load thresholds must be positive and in increasing order")
        if self.partial_interval_factor < 1 or self.hold_s < 0 or self.overloaded_lag_s <= 0:
            raise ValueError("partial_interval_factor >= 1, hold_s >= 0, overloaded_lag_s > 0")
        if self.shed_lag_s <= 0 or self.shed_every_s <= 0:
            raise ValueError("shed_lag_s > 0, shed_every_s > 0")
        if not 0 < self.capacity_busy_share <= 1 or self.capacity_window_s <= 0:
            raise ValueError("capacity_busy_share in (0, 1], capacity_window_s > 0")


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
        self.early_finals: Counter[EarlyFinalOutcome] = Counter()
        """How the finals started in a pause ended (`StreamingOptions.early_final_ms`)."""

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

    def partial_interval(self, normal_s: float, *, first: bool = False) -> float | None:
        """How much new audio a re-decoding partial decoder waits for now; None: no partials.
        An utterance's `first` partial keeps the normal pace until partials pause: it decodes
        the shortest window of the utterance's partials, and it is what tells the speaker they
        are heard. 8 continuous streams on 2 cores (streaming benchmark, runs in ABBA order,
        2026-12-06): first partial p50 0.55 and 0.88 s against 1.57 and 1.38 s spaced like the
        rest, p95 3.02 and 2.93 s against 4.03 and 4.37 s, final p95 3.97 and 5.05 s against
        5.76 and 5.62 s."""
        level = self.level()
        if level >= LoadLevel.FINALS_ONLY:
            return None
        if level is LoadLevel.FEWER_PARTIALS and not first:
            return normal_s * self.options.partial_interval_factor
        return normal_s

    def skipped_partial(self) -> None:
        self.partials_skipped += 1

    def may_start_early_final(self) -> bool:
        """Only while nothing is behind (`ws.server.StreamServer.may_start_early_final` also
        wants room to spare by live RTF)."""
        return self.level() is LoadLevel.NORMAL

    def early_final_ended(self, outcome: EarlyFinalOutcome) -> None:
        self.early_finals[outcome] += 1

    @property
    def accepts_streams(self) -> bool:
        return self.level() < LoadLevel.FULL


class StreamLag:
    """How far one stream's processing is behind its real-time schedule.

    Audio is due when it arrived, or when a real-time client would have sent it (the stream's
    start plus its position), whichever is later: a client sending a file faster than real time
    is not behind while the server keeps real time for it. The lag is the age of the oldest
    thing due and not done: audio not yet fed to the session, or a final not yet sent.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: float | None = None
        self._waiting: dict[int, float] = {}

    def begin(self) -> None:
        """The stream starts now (its configuration arrived): its audio is due from here.
        Anchored at the first audio instead, the frames that queue while the stream's models
        load arrive in a burst and put the schedule ahead of real time by the load's length,
        so a stream could then fall that far behind unseen (under a CPU hog: every final of a
        stream, and the `server_overloaded` it was owed)."""
        self._first = self._clock()

    def due(self, stream_s: float) -> float:
        """When the audio ending at `stream_s` (seconds into the stream) is due: now, or its
        real-time place, whichever is later."""
        if self._first is None:
            raise RuntimeError("StreamLag.begin() first: the schedule starts at the stream's start")
        return max(self._clock(), self._first + stream_s)

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


class StreamShedder:
    """Which stream to close when the server as a whole falls behind, one at a time.

    The streams share the models, so past capacity they all fall behind together; closing each
    at `overloaded_lag_s` would close them all at once (8 of 8 at N = 8 on the 2026-12-03
    streaming benchmark). Instead, while at least two streams are `shed_lag_s` behind and the
    worst of them has not gained on its lag since the last look, the newest stream with work
    pending is closed: its share of the models goes to the others, which have been open longer.
    A look comes at most every `shed_every_s`, so the freed share shows in the lags before the
    next shed, and a server that is catching up sheds no more.
    """

    def __init__(
        self, options: LoadOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options or LoadOptions()
        self._clock = clock
        self._next_look = 0.0
        self._last_worst: float | None = None
        self.shed = 0

    def pick(self, lags: Callable[[], list[float]]) -> int | None:
        """`lags` gives each open stream's lag, in the order they were admitted. Returns the
        index of the stream to close now, or None."""
        now = self._clock()
        if now < self._next_look:
            return None
        self._next_look = now + self.options.shed_every_s
        current = lags()
        worst = max(current, default=0.0)
        catching_up = self._last_worst is not None and worst < self._last_worst
        self._last_worst = worst
        behind = sum(1 for lag in current if lag >= self.options.shed_lag_s)
        if behind < 2 or catching_up:
            return None
        for i in reversed(range(len(current))):
            if current[i] > 0:
                self.shed += 1
                return i
        return None


class StreamCapacity:
    """How many streams like the ones served lately the final model keeps real time for.

    `busy` gives the model's worker-seconds spent decoding so far (`DynamicBatcher.busy_seconds`)
    and its number of workers, or None while it is not loaded. Over the last `capacity_window_s`,
    the streams' audio per second (about the number of real-time streams) and the model's busy
    share give the busy share one stream costs; the estimate is how many such streams fit under
    `capacity_busy_share`. Silence costs no final, so half-silent streams fit more.
    """

    SAMPLE_EVERY_S = 1.0

    def __init__(
        self,
        busy: Callable[[], tuple[float, int] | None],
        options: LoadOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._busy = busy
        self.options = options or LoadOptions()
        self._clock = clock
        self._heard_s = 0.0
        self._samples: deque[tuple[float, float, float]] = deque()
        """(time, audio heard so far, model busy so far per worker), oldest first."""
        self.last_estimate: int | None = None
        """`estimate()` as of the last sample: what any thread may read."""

    def heard(self, audio_s: float) -> None:
        """A stream's audio, `audio_s` seconds of it, was fed to its session."""
        self._heard_s += audio_s
        if not self._samples or self._clock() - self._samples[-1][0] >= self.SAMPLE_EVERY_S:
            self._sample()
            self.last_estimate = self._estimate()

    def estimate(self) -> int | None:
        """Streams the server has room for in all (the open ones included); None until the
        window holds enough stream audio to tell."""
        self._sample()
        self.last_estimate = self._estimate()
        return self.last_estimate

    def _estimate(self) -> int | None:
        if len(self._samples) < 2:
            return None
        (t0, heard0, busy0), (t1, heard1, busy1) = self._samples[0], self._samples[-1]
        heard, busy = heard1 - heard0, busy1 - busy0
        if heard < self.options.capacity_min_audio_s or t1 <= t0:
            return None
        streams, share = heard / (t1 - t0), busy / (t1 - t0)
        if share <= 0:
            return None
        return math.floor(self.options.capacity_busy_share * streams / share)

    def _sample(self) -> None:
        busy = self._busy()
        if busy is None:
            return
        seconds, workers = busy
        now = self._clock()
        sample = (now, self._heard_s, seconds / max(1, workers))
        if len(self._samples) > 1 and now - self._samples[-2][0] < self.SAMPLE_EVERY_S:
            self._samples[-1] = sample  # at most one sample a second, however often asked
        else:
            self._samples.append(sample)
        # Keep one sample at or before the window's start, so the window spans all of it.
        while (
            len(self._samples) > 2 and self._samples[1][0] <= now - self.options.capacity_window_s
        ):
            self._samples.popleft()
