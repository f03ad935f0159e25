"""One dynamic batcher per loaded engine, shared by every request, job and stream.

Callers submit chunks and get futures. Worker threads form batches from the one queue:
chunks whose decode options are equal, oldest first, up to `max_batch_seconds` of audio and
`max_batch_size` decode windows. A partly filled batch waits for more chunks while they keep
arriving less than `max_wait_ms` apart, at most `max_hold_ms` in all. The model decodes
`EngineInfo.workers` batches side by side (CTranslate2's workers), one per worker thread here:
small batches, such as a live stream's final, keep a second core only half busy otherwise.

A 30 s Whisper window costs the same encoder work however short the speech inside it, so for
an engine whose chunks are padded to a fixed window (`EngineInfo.fixed_window`) the batcher
packs short chunks, whoever submitted them, into shared windows (`packing`): short files,
stream finals and partials all get it here, in the one place batches are formed. A chunk a
packed window left (almost) without words is decoded again on its own, so packing never loses
one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import numpy as np

from asrserve.engine import packing
from asrserve.engine.audio import SAMPLE_RATE
from asrserve.engine.coverage import barely_heard
from asrserve.engine.engines.base import Engine
from asrserve.engine.options import BatchingOptions, DecodeOptions
from asrserve.engine.types import Segment

log = logging.getLogger(__name__)


class BatcherClosedError(RuntimeError):
    pass


@dataclass(slots=True)
class _Item:
    audio: np.ndarray
    options: DecodeOptions
    future: Future[list[Segment]]
    packable: bool = True
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class BatchStats:
    """Handed to the observer after every batch (the server turns it into metrics)."""

    items: int
    audio_seconds: float
    decode_seconds: float
    waited_seconds: float
    windows: int = 0
    """Decode windows the items took: fewer than `items` when short ones shared windows."""
    redecoded: int = 0
    """Items a shared window left (almost) without words, decoded again on their own."""


class DynamicBatcher:
    def __init__(
        self,
        engine: Engine,
        options: BatchingOptions | None = None,
        *,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.engine = engine
        self.options = options or BatchingOptions()
        self._on_batch = on_batch
        packs = engine.info.fixed_window and self.options.pack_gap_s is not None
        self._window_s = engine.info.max_chunk_s if packs else None
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._finished = 0.0  # when the last batch was decoded (monotonic)
        self._busy = 0  # worker threads decoding a batch now
        self._busy_s = 0.0  # worker-seconds spent decoding, all batches so far
        self._expected = 0
        """Chunks the next batch may expect: those that waited behind the last batch, plus
        one from each caller it answered (callers answered together send again together)."""
        self._threads = [
            threading.Thread(target=self._run, name=f"batcher-{engine.info.model}-{k}", daemon=True)
            for k in range(max(1, engine.info.workers))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def packs(self) -> bool:
        """Whether short chunks share decode windows."""
        return self._window_s is not None

    def submit(
        self, audio: np.ndarray, options: DecodeOptions, *, packable: bool = True
    ) -> Future[list[Segment]]:
        return self.submit_many([audio], options, packable=packable)[0]

    def submit_many(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions, *, packable: bool = True
    ) -> list[Future[list[Segment]]]:
        """Enqueue chunks together so that one input's chunks can share a batch.

        `packable=False` keeps each chunk in a window of its own: for speech a shared window
        already lost once, or audio whose no-speech verdict must be its own.
        """
        # A fitted window is already as short as its chunk: nothing to share. Stream finals
        # (fitted, at least 15 s) queued together could share that least length, but on the
        # streaming benchmark (2026-12-03, N = 4 and 8) it cost 0.6-1.3 points of final WER
        # for 13-19 % off the p95 latency.
        packable = packable and not options.fitted
        items = [_Item(chunk, options, Future(), packable) for chunk in chunks]
        if not items:
            return []
        with self._cond:
            if self._closed:
                raise BatcherClosedError("The model is shutting down; retry on another replica.")
            self._queue.extend(items)
            self._cond.notify(len(items))
        return [item.future for item in items]

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def lag_s(self) -> float:
        """How long the oldest chunk still queued has waited (0 when none waits): how far
        this model is behind the work given to it. Chunks their callers cancelled are work
        no more."""
        with self._cond:
            waiting = [item.enqueued for item in self._queue if not item.future.cancelled()]
            return max(0.0, time.monotonic() - min(waiting)) if waiting else 0.0

    def busy_seconds(self) -> float:
        """Worker-seconds spent decoding since the start, batches still running aside (with
        `engine.info.workers` workers, `workers` seconds of it per second at most)."""
        with self._cond:
            return self._busy_s

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking work, fail what was not started, wait for the running batches."""
        with self._cond:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in dropped:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(BatcherClosedError("The model was shut down."))
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            try:
                self._decode(batch)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._finished = time.monotonic()
                    self._busy_s += self._finished - started
                    self._expected = len(self._queue) + len(batch)
                    self._cond.notify()  # a worker waiting beside this one may go now

    def _plan(self) -> packing.WindowPlan:
        # Without packing every chunk is a window of its own.
        window_s = self._window_s if self._window_s is not None else 0.0
        return packing.WindowPlan(window_s, self.options.pack_gap_s or 0.0)

    def _next_batch(self) -> list[_Item] | None:
        opts = self.options
        with self._cond:
            while True:
                if self._closed:
                    return None
                if not self._queue:
                    self._cond.wait()
                    continue
                head = self._queue[0]
                ready = [i for i in self._queue if i.options == head.options]
                plan = self._plan()
                for item in ready:
                    plan.add(item.seconds, item.packable)
                full = (
                    len(plan) >= opts.max_batch_size
                    or sum(i.seconds for i in ready) >= opts.max_batch_seconds
                )
                if not full and self._busy and self._one_open_window(plan):
                    # Beside a busy worker, a window more chunks could still fill waits for
                    # them or for that worker: started now, it would cost a whole window of
                    # this worker's core for a few seconds of speech (32 short files, 16 at a
                    # time, on two workers: 7-10 batches this way, 2-4 with the wait).
                    self._cond.wait()
                    continue
                remaining = self._hold_remaining(head, ready)
                if full or remaining <= 0:
                    break
                self._cond.wait(remaining)
            # Idle workers share the windows out: one worker thread decodes a batch of two
            # stream finals in twice the time of one, so two finals queued together would
            # otherwise keep one core busy and leave the other idle.
            idle = len(self._threads) - self._busy  # this thread among them
            most_windows = min(opts.max_batch_size, -(-len(plan) // idle))
            batch: list[_Item] = []
            seconds = 0.0
            plan = self._plan()
            for item in ready:
                more_windows = plan.fits(item.seconds, item.packable) is None
                if batch and (
                    (more_windows and len(plan) >= most_windows)
                    or seconds + item.seconds > opts.max_batch_seconds
                ):
                    break
                plan.add(item.seconds, item.packable)
                batch.append(item)
                seconds += item.seconds
            taken = {id(i) for i in batch}
            self._queue = deque(i for i in self._queue if id(i) not in taken)
            self._busy += 1
            if self._queue:
                self._cond.notify()  # an idle worker may take what this batch left
        # A caller may have cancelled while its chunk waited: skip those.
        return [i for i in batch if i.future.set_running_or_notify_cancel()]

    def _one_open_window(self, plan: packing.WindowPlan) -> bool:
        """Whether every chunk planned shares one window, less than half filled."""
        if self._window_s is None or len(plan) != 1:
            return False
        window = plan.windows[0]
        return window.packable and window.end < self._window_s / 2

    def _hold_remaining(self, head: _Item, ready: list[_Item]) -> float:
        """Seconds a partly filled batch should still wait for more chunks.

        Callers answered by one batch send their next chunks together, but 5-300 ms apart
        (an HTTP client reads its answer and uploads the next file; each file is decoded and
        run through the VAD first). A batch that waited behind the last one waits for them,
        up to `max_hold_ms` after the model became free or until as many chunks as it may
        expect are in: otherwise concurrent callers split into two groups decoded in turn,
        each leaving a window half empty. A chunk that finds the model idle waits
        `max_wait_ms` for the next one, again at most `max_hold_ms`.
        """
        opts = self.options
        now = time.monotonic()
        if head.options.fitted:
            # Windows fitted to their chunks share nothing, so holding for more gains little and
            # costs a live stream its latency: what queued behind the last batch goes at once,
            # a chunk that found the model idle waits `max_wait_ms` for company.
            if head.enqueued <= self._finished:
                return 0.0
            return head.enqueued + opts.max_wait_ms / 1000 - now
        if head.enqueued <= self._finished:
            if len(ready) >= self._expected:
                return 0.0
            return self._finished + opts.max_hold_ms / 1000 - now
        latest = max(i.enqueued for i in ready)
        return min(latest + opts.max_wait_ms / 1000, head.enqueued + opts.max_hold_ms / 1000) - now

    def _decode(self, batch: list[_Item]) -> None:
        if not batch:
            return
        started = time.monotonic()
        plan = self._plan()
        for item in batch:
            plan.add(item.seconds, item.packable)
        try:
            results, redecoded = self._decode_windows(batch, plan.windows)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # Decode one by one so that one bad chunk fails only its own request.
            log.warning("batch failed, retrying items singly", exc_info=exc)
            for item in batch:
                try:
                    result = self.engine.transcribe_chunks([item.audio], item.options)[0]
                except Exception as item_exc:
                    item.future.set_exception(item_exc)
                else:
                    item.future.set_result(result)
            return
        for item, result in zip(batch, results, strict=True):
            item.future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(
                BatchStats(
                    items=len(batch),
                    audio_seconds=sum(i.seconds for i in batch),
                    decode_seconds=time.monotonic() - started,
                    waited_seconds=started - min(i.enqueued for i in batch),
                    windows=len(plan),
                    redecoded=redecoded,
                )
            )

    def _decode_windows(
        self, batch: list[_Item], windows: list[packing.Window]
    ) -> tuple[list[list[Segment]], int]:
        """Every item's segments, and how many items were decoded again on their own."""
        options = batch[0].options
        audio = [item.audio for item in batch]
        results: list[list[Segment] | None] = [None] * len(batch)
        alone = [w.items[0] for w in windows if not w.packed]
        if alone:
            decoded = self.engine.transcribe_chunks([audio[i] for i in alone], options)
            for i, segments in zip(alone, decoded, strict=True):
                results[i] = segments
        shared = [w for w in windows if w.packed]
        if shared:
            # The words are what the window is split back by, whether or not the caller
            # wants them.
            aligned = replace(options, word_timestamps=True)
            joined = [packing.join(audio, w, SAMPLE_RATE) for w in shared]
            decoded = self.engine.transcribe_chunks(joined, aligned)
            for window, segments in zip(shared, decoded, strict=True):
                for i, own in zip(window.items, packing.split(segments, window), strict=True):
                    if not barely_heard(own, batch[i].seconds):
                        results[i] = own if options.word_timestamps else _without_words(own)
        lost = [i for i, result in enumerate(results) if result is None]
        if lost:
            log.info(
                "%d of %d chunks sharing %d windows came back (almost) without words; decoding "
                "them on their own",
                len(lost),
                sum(len(w.placements) for w in shared),
                len(shared),
            )
            # Whisper writes a sentence said twice in one window once, and may pass over a
            # chunk of noise among speech: on its own, each gets its own decode and verdict.
            decoded = self.engine.transcribe_chunks([audio[i] for i in lost], options)
            for i, segments in zip(lost, decoded, strict=True):
                results[i] = segments
        return [r if r is not None else [] for r in results], len(lost)


def _without_words(segments: list[Segment]) -> list[Segment]:
    return [replace(s, words=()) for s in segments]
