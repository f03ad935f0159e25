"""Orchestration of the dynamic batcher, with a recording fake engine (no model needed).

The real engine's batched decoding is exercised on real speech in test_pipeline.py.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import replace

import numpy as np
import pytest

from asrserve.engine import BatchingOptions, DecodeOptions, Segment, Word
from asrserve.engine.batching import BatcherClosedError, DynamicBatcher
from asrserve.engine.engines.base import EngineInfo
from asrserve.engine.types import LanguageGuess

SR = 16000


class RecordingEngine:
    """Returns one segment per chunk whose text is the chunk length; records batch shapes."""

    def __init__(self, fail_on: int | None = None, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate = gate

    @property
    def info(self) -> EngineInfo:
        return EngineInfo("fake", "fake", None, 30.0)

    def detect_language(
        self, audio: Sequence[np.ndarray], candidates: Collection[str] = ()
    ) -> LanguageGuess:
        return LanguageGuess("en", 1.0)

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        if self.gate is not None:
            self.gate.wait(5)
        sizes = [c.size for c in chunks]
        self.batches.append(sizes)
        if self.fail_on is not None and self.fail_on in sizes:
            raise ValueError("bad chunk")
        return [[Segment(0, 0.0, s / SR, str(s))] for s in sizes]


def seconds(s: float) -> np.ndarray:
    return np.zeros(int(s * SR), dtype=np.float32)


def test_one_inputs_chunks_share_a_batch_and_results_keep_order() -> None:
    engine = RecordingEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(max_batch_seconds=1000, max_batch_size=8))
    futures = batcher.submit_many([seconds(1), seconds(2), seconds(3)], DecodeOptions())
    texts = [f.result(5)[0].text for f in futures]
    batcher.close()
    assert texts == [str(SR), str(2 * SR), str(3 * SR)]
    assert engine.batches == [[SR, 2 * SR, 3 * SR]]


def test_batches_are_capped_by_total_seconds_and_by_count() -> None:
    engine = RecordingEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(max_batch_seconds=60, max_batch_size=3))
    futures = batcher.submit_many([seconds(25)] * 4 + [seconds(1)] * 4, DecodeOptions())
    for f in futures:
        f.result(5)
    batcher.close()
    for batch in engine.batches:
        assert len(batch) <= 3
        assert sum(batch) / SR <= 60
    assert sum(len(b) for b in engine.batches) == 8


def test_a_chunk_longer_than_the_budget_still_runs_alone() -> None:
    engine = RecordingEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(max_batch_seconds=10))
    assert batcher.submit(seconds(30), DecodeOptions()).result(5)[0].text == str(30 * SR)
    batcher.close()


def test_callers_with_equal_options_are_batched_together_others_apart() -> None:
    gate = threading.Event()
    engine = RecordingEngine(gate=gate)
    batcher = DynamicBatcher(engine, BatchingOptions(max_wait_ms=0))
    # The first batch blocks in the engine while the others queue up behind it.
    first = batcher.submit(seconds(1), DecodeOptions(language="en"))
    time.sleep(0.1)
    en = [batcher.submit(seconds(2), DecodeOptions(language="en")) for _ in range(3)]
    de = [batcher.submit(seconds(3), DecodeOptions(language="de")) for _ in range(2)]
    gate.set()
    for f in [first, *en, *de]:
        f.result(5)
    batcher.close()
    assert engine.batches[0] == [SR]
    assert sorted(map(sorted, engine.batches[1:])) == [[2 * SR] * 3, [3 * SR] * 2]


def test_a_failing_chunk_fails_only_its_own_future() -> None:
    engine = RecordingEngine(fail_on=2 * SR)
    batcher = DynamicBatcher(engine)
    good1, bad, good2 = batcher.submit_many([seconds(1), seconds(2), seconds(3)], DecodeOptions())
    assert good1.result(5)[0].text == str(SR)
    assert good2.result(5)[0].text == str(3 * SR)
    with pytest.raises(ValueError, match="bad chunk"):
        bad.result(5)
    batcher.close()


def test_cancelled_chunks_are_not_decoded() -> None:
    gate = threading.Event()
    engine = RecordingEngine(gate=gate)
    batcher = DynamicBatcher(engine, BatchingOptions(max_wait_ms=0))
    blocker = batcher.submit(seconds(1), DecodeOptions())
    time.sleep(0.1)
    doomed = batcher.submit(seconds(7), DecodeOptions())
    time.sleep(0.05)
    assert batcher.lag_s() > 0
    assert doomed.cancel()
    # Cancelled work does not keep the model "behind" (the live load reads this).
    assert batcher.lag_s() == 0.0 and batcher.pending == 1
    gate.set()
    blocker.result(5)
    batcher.submit(seconds(1), DecodeOptions()).result(5)
    batcher.close()
    assert all(7 * SR not in b for b in engine.batches)
    with pytest.raises(CancelledError):
        doomed.result(0)


def test_close_fails_queued_work_and_refuses_new_work() -> None:
    gate = threading.Event()
    engine = RecordingEngine(gate=gate)
    batcher = DynamicBatcher(engine, BatchingOptions(max_wait_ms=0))
    running = batcher.submit(seconds(1), DecodeOptions())
    time.sleep(0.1)
    queued = batcher.submit(seconds(2), DecodeOptions())
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.1)
    gate.set()
    closer.join(5)
    assert running.result(5)[0].text == str(SR)
    with pytest.raises(BatcherClosedError):
        queued.result(5)
    with pytest.raises(BatcherClosedError):
        batcher.submit(seconds(1), DecodeOptions())


# --- packing short chunks into shared windows -------------------------------------------------


class MarkEngine:
    """A fixed-window engine that 'hears' every run of equal non-zero samples as one word
    named after the value, so the test can tell where each packed chunk's words went."""

    def __init__(
        self,
        *,
        fixed_window: bool = True,
        deaf_to: int | None = None,
        barely_hears: int | None = None,
    ) -> None:
        self.windows: list[float] = []
        self.calls: list[DecodeOptions] = []
        self.fixed_window = fixed_window
        self.deaf_to = deaf_to
        """A mark this engine does not hear when it shares a window with others..."""
        self.barely_hears = barely_hears
        """...and one it hears only the first 0.1 s of there."""

    @property
    def info(self) -> EngineInfo:
        return EngineInfo("fake", "fake", None, 30.0, fixed_window=self.fixed_window)

    def detect_language(
        self, audio: Sequence[np.ndarray], candidates: Collection[str] = ()
    ) -> LanguageGuess:
        return LanguageGuess("en", 1.0)

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        self.calls.append(options)
        out = []
        for chunk in chunks:
            self.windows.append(chunk.size / SR)
            marks = np.round(chunk * 100).astype(int)
            edges = np.flatnonzero(np.diff(marks, prepend=0, append=0))
            words = [
                Word(a / SR, b / SR, f" w{marks[a]}", 1.0)
                for a, b in itertools.pairwise(edges)
                if marks[a] != 0
            ]
            if len(words) > 1:
                words = [
                    replace(w, end=w.start + 0.1) if w.word == f" w{self.barely_hears}" else w
                    for w in words
                    if w.word != f" w{self.deaf_to}"
                ]
            text = "".join(w.word for w in words)
            out.append([Segment(0, 0.0, chunk.size / SR, text, tuple(words))] if words else [])
        return out


def marked(mark: int, s: float, *, pad_s: float = 0.0) -> np.ndarray:
    """`s` seconds of the mark, with `pad_s` of silence on each side (as the VAD pads)."""
    pad = np.zeros(int(pad_s * SR), np.float32)
    return np.concatenate([pad, np.full(int(s * SR), mark / 100, np.float32), pad])


def test_short_chunks_share_one_window_and_get_their_own_words_back() -> None:
    engine = MarkEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    chunks = [marked(1, 3, pad_s=0.3), marked(2, 5, pad_s=0.3), marked(3, 2, pad_s=0.3)]
    results = [f.result(5) for f in batcher.submit_many(chunks, DecodeOptions())]
    batcher.close()
    assert engine.windows == [pytest.approx(3.6 + 1 + 5.6 + 1 + 2.6)]
    for mark, (chunk, segments) in enumerate(zip(chunks, results, strict=True), start=1):
        assert [s.text for s in segments] == [f" w{mark}"]
        (word,) = segments[0].words
        # Back on the chunk's own timeline, where its speech is.
        assert word.start == pytest.approx(0.3, abs=1e-3)
        assert word.end == pytest.approx(chunk.size / SR - 0.3, abs=1e-3)
        assert segments[0].start == word.start and segments[0].end == word.end


def test_windows_hold_what_fits_and_the_batch_is_capped_in_windows() -> None:
    engine = MarkEngine()
    batcher = DynamicBatcher(
        engine, BatchingOptions(pack_gap_s=1.0, max_batch_size=2, max_batch_seconds=1000)
    )
    # Seven 9 s chunks: three fit a 30 s window (9 + 1 + 9 + 1 + 9), so two windows per batch.
    futures = batcher.submit_many([marked(k, 9) for k in range(1, 8)], DecodeOptions())
    texts = [f.result(5)[0].text for f in futures]
    batcher.close()
    assert texts == [f" w{k}" for k in range(1, 8)]
    assert engine.windows == [29.0, 29.0, 9.0]


def test_a_chunk_a_shared_window_left_without_words_is_decoded_again_alone() -> None:
    engine = MarkEngine(deaf_to=2)
    batcher = DynamicBatcher(engine, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    futures = batcher.submit_many([marked(k, 2) for k in (1, 2, 3)], DecodeOptions())
    texts = [f.result(5)[0].text for f in futures]
    batcher.close()
    assert texts == [" w1", " w2", " w3"]
    assert engine.windows == [8.0, 2.0]


def test_a_chunk_a_shared_window_barely_heard_is_decoded_again_alone() -> None:
    engine = MarkEngine(barely_hears=2)
    batcher = DynamicBatcher(engine, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    futures = batcher.submit_many([marked(k, 3) for k in (1, 2, 3)], DecodeOptions())
    words = [f.result(5)[0].words for f in futures]
    batcher.close()
    assert [(w[0].start, w[0].end) for w in words] == [(0.0, 3.0)] * 3
    assert engine.windows == [11.0, 3.0]


def test_chunks_kept_apart_and_engines_without_a_fixed_window_are_not_packed() -> None:
    engine = MarkEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    futures = batcher.submit_many([marked(1, 2), marked(2, 2)], DecodeOptions(), packable=False)
    assert [f.result(5)[0].text for f in futures] == [" w1", " w2"]
    batcher.close()
    assert engine.windows == [2.0, 2.0]

    streaming = MarkEngine(fixed_window=False)
    batcher = DynamicBatcher(streaming, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    for f in batcher.submit_many([marked(1, 2), marked(2, 2)], DecodeOptions()):
        f.result(5)
    batcher.close()
    assert streaming.windows == [2.0, 2.0]

    unpacked = MarkEngine()
    batcher = DynamicBatcher(unpacked, BatchingOptions(pack_gap_s=None, max_wait_ms=0))
    for f in batcher.submit_many([marked(1, 2), marked(2, 2)], DecodeOptions()):
        f.result(5)
    batcher.close()
    assert unpacked.windows == [2.0, 2.0]


def test_callers_without_word_timestamps_get_none_from_a_shared_window() -> None:
    engine = MarkEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    options = DecodeOptions(word_timestamps=False)
    results = [f.result(5) for f in batcher.submit_many([marked(1, 2), marked(2, 3)], options)]
    batcher.close()
    assert [[s.text for s in r] for r in results] == [[" w1"], [" w2"]]
    assert all(not s.words for r in results for s in r)
    assert results[1][0].end == pytest.approx(3.0)
    # The window was aligned all the same: its words are what it was split by.
    assert [o.word_timestamps for o in engine.calls] == [True]


def test_chunks_queued_while_a_batch_decodes_go_into_the_next_batch_together() -> None:
    gate = threading.Event()
    engine = RecordingEngine(gate=gate)
    batcher = DynamicBatcher(engine, BatchingOptions(max_wait_ms=0, pack_gap_s=None))
    first = batcher.submit(seconds(1), DecodeOptions())
    time.sleep(0.1)
    later = [batcher.submit(seconds(2), DecodeOptions()) for _ in range(5)]
    gate.set()
    for f in [first, *later]:
        f.result(5)
    batcher.close()
    assert engine.batches == [[SR], [2 * SR] * 5]


class TwoWorkerEngine(RecordingEngine):
    """Admits two calls at once; each waits until both are inside (or until `gate` is set)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Barrier(2)
        self.concurrent = False

    @property
    def info(self) -> EngineInfo:
        return EngineInfo("fake", "fake", None, 30.0, workers=2)

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        try:
            self.inside.wait(5)
            self.concurrent = True
        except threading.BrokenBarrierError:
            pass
        return super().transcribe_chunks(chunks, options)


def test_an_engine_with_two_workers_decodes_two_batches_side_by_side() -> None:
    engine = TwoWorkerEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(max_batch_size=1, max_wait_ms=0))
    futures = batcher.submit_many([seconds(1), seconds(2)], DecodeOptions())
    texts = sorted(f.result(10)[0].text for f in futures)
    batcher.close()
    # With one worker thread the first call would wait at the barrier alone until it broke.
    assert engine.concurrent
    assert texts == sorted([str(SR), str(2 * SR)])
    assert sorted(map(tuple, engine.batches)) == [(SR,), (2 * SR,)]


def test_close_stops_every_worker_thread() -> None:
    engine = TwoWorkerEngine()
    batcher = DynamicBatcher(engine, BatchingOptions())
    batcher.close()
    assert not any(t.is_alive() for t in batcher._threads)


class TwoWorkerMarkEngine(MarkEngine):
    """Two workers; the first call blocks until `gate` is set, keeping one worker busy."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self._first = threading.Lock()

    @property
    def info(self) -> EngineInfo:
        return EngineInfo("fake", "fake", None, 30.0, fixed_window=True, workers=2)

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        if self._first.acquire(blocking=False):
            self.gate.wait(5)
        return super().transcribe_chunks(chunks, options)


def one_worker_held() -> tuple[TwoWorkerMarkEngine, DynamicBatcher, Future[list[Segment]]]:
    """A two-worker batcher whose first chunk holds one worker until `engine.gate` is set."""
    engine = TwoWorkerMarkEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(pack_gap_s=1.0, max_wait_ms=0))
    first = batcher.submit(marked(1, 2), DecodeOptions())
    while batcher.pending:  # taken, so that worker counts as busy
        time.sleep(0.01)
    return engine, batcher, first


def test_idle_workers_share_chunks_queued_together() -> None:
    engine = TwoWorkerEngine()
    batcher = DynamicBatcher(engine, BatchingOptions(max_wait_ms=0))
    futures = batcher.submit_many([seconds(1), seconds(2)], DecodeOptions())
    assert sorted(f.result(10)[0].text for f in futures) == sorted([str(SR), str(2 * SR)])
    batcher.close()
    # One worker taking both would wait at the barrier alone until it broke.
    assert engine.concurrent
    assert sorted(map(tuple, engine.batches)) == [(SR,), (2 * SR,)]


def test_beside_a_busy_worker_short_chunks_wait_to_fill_a_window_together() -> None:
    engine, batcher, first = one_worker_held()
    # The idle worker would decode each of these in a window of its own if it took them.
    later = [batcher.submit(marked(k, 2), DecodeOptions()) for k in (2, 3)]
    time.sleep(0.2)
    engine.gate.set()
    assert [f.result(5)[0].text for f in [first, *later]] == [" w1", " w2", " w3"]
    batcher.close()
    assert engine.windows == [2.0, 5.0]


def test_beside_a_busy_worker_a_chunk_of_its_own_window_goes_at_once() -> None:
    engine, batcher, first = one_worker_held()
    alone = batcher.submit(marked(2, 2), DecodeOptions(), packable=False)
    # Decoded while the other worker is still held: nothing could share its window.
    assert alone.result(5)[0].text == " w2"
    engine.gate.set()
    assert first.result(5)[0].text == " w1"
    batcher.close()
