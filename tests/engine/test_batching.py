"""Orchestration of the dynamic batcher, with a recording fake engine (no model needed).

The real engine's batched decoding is exercised on real speech in test_pipeline.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import CancelledError

import numpy as np
import pytest

from asrserve.engine.batching import BatcherClosedError, DynamicBatcher
from asrserve.engine.engines.base import EngineInfo
from asrserve.engine.options import BatchingOptions, DecodeOptions
from asrserve.engine.types import LanguageGuess, Segment

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
    assert doomed.cancel()
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
