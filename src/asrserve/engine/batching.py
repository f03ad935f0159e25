"""One dynamic batcher per loaded engine, shared by every request, job and stream.

Callers submit chunks and get futures. A single worker thread forms batches from the queue:
chunks whose decode options are equal, oldest first, up to `max_batch_seconds` of audio and
`max_batch_size` items, waiting at most `max_wait_ms` for a partly filled batch to grow. One
worker per model keeps the model's threads busy on one batch at a time, which is what makes
batching pay on a CPU: a 30 s Whisper window costs the same encoder work however short the
speech inside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from asrserve.engine.engines.base import SAMPLE_RATE, Engine
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
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"batcher-{engine.info.model}", daemon=True
        )
        self._thread.start()

    def submit(self, audio: np.ndarray, options: DecodeOptions) -> Future[list[Segment]]:
        return self.submit_many([audio], options)[0]

    def submit_many(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[Future[list[Segment]]]:
        """Enqueue chunks together so that one input's chunks can share a batch."""
        items = [_Item(chunk, options, Future()) for chunk in chunks]
        with self._cond:
            if self._closed:
                raise BatcherClosedError("The model is shutting down; retry on another replica.")
            self._queue.extend(items)
            self._cond.notify()
        return [item.future for item in items]

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking work, fail what was not started, wait for the running batch."""
        with self._cond:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in dropped:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(BatcherClosedError("The model was shut down."))
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._decode(batch)

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
                full = (
                    len(ready) >= opts.max_batch_size
                    or sum(i.seconds for i in ready) >= opts.max_batch_seconds
                )
                remaining = head.enqueued + opts.max_wait_ms / 1000 - time.monotonic()
                if full or remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Item] = []
            seconds = 0.0
            for item in ready:
                if batch and (
                    len(batch) >= opts.max_batch_size
                    or seconds + item.seconds > opts.max_batch_seconds
                ):
                    break
                batch.append(item)
                seconds += item.seconds
            taken = {id(i) for i in batch}
            self._queue = deque(i for i in self._queue if id(i) not in taken)
        # A caller may have cancelled while its chunk waited: skip those.
        return [i for i in batch if i.future.set_running_or_notify_cancel()]

    def _decode(self, batch: list[_Item]) -> None:
        if not batch:
            return
        started = time.monotonic()
        try:
            results = self.engine.transcribe_chunks([i.audio for i in batch], batch[0].options)
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
                )
            )
