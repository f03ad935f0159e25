"""Cheap decoders for live partial text, behind `streaming.PartialDecoder`.

- `WhisperPartials`: re-decodes the utterance so far with a small Whisper (tiny.en) through that
  model's own shared batcher, so the partials of many streams share batches; greedy, no
  fallback, no word alignment. Accurate partials for a handful of streams.
- `IncrementalPartials`: PocketSphinx or Vosk decoding frame by frame: cost independent of the
  utterance length, partials after every chunk, much lower accuracy. For many streams.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import numpy as np

from asrserve.engine.batching import DynamicBatcher
from asrserve.engine.engines.base import SAMPLE_RATE, IncrementalStream
from asrserve.engine.options import DecodeOptions
from asrserve.engine.types import Segment


class WhisperPartials:
    """Never blocks the stream: at most one re-decode in flight; its text is picked up by a
    later `update`. Under load a stream gets fewer partials, never falls behind real time."""

    def __init__(
        self, batcher: DynamicBatcher, decode: DecodeOptions, *, interval_s: float = 0.5
    ) -> None:
        self.batcher = batcher
        # Partials are replaced within half a second: greedy and unaligned is what they need.
        # A greedy decode of a word or two that has only begun often looks failed; the final
        # pass judges non-speech, a partial shows its tentative text.
        self.decode = replace(
            decode, beam_size=1, temperatures=(0.0,), word_timestamps=False,
            split_segments=False, language=decode.language or "en",
            failed_no_speech_threshold=None,
        )  # fmt: skip
        self.interval = int(interval_s * SAMPLE_RATE)
        self._pending: Future[list[Segment]] | None = None
        self._submitted = 0  # utterance samples the last re-decode covered
        self._last = ""

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        if self._pending is not None and self._pending.done():
            if not self._pending.cancelled() and self._pending.exception() is None:
                self._last = _text(self._pending.result())
            self._pending = None
        if self._pending is None and utterance.size - self._submitted >= self.interval:
            self._pending = self.batcher.submit(utterance.copy(), self.decode)
            self._submitted = utterance.size
        return self._last

    def finish_utterance(self, utterance: np.ndarray) -> str:
        """Online mode's final: the whole utterance, decoded now (this one call waits)."""
        self.reset()
        return _text(self.batcher.submit(utterance.copy(), self.decode).result())

    def reset(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending, self._submitted, self._last = None, 0, ""

    def close(self) -> None:
        self.reset()


def _text(segments: list[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


class IncrementalPartials:
    """Wraps an engine stream (`PocketSphinxEngine.open_stream`, `VoskEngine.open_stream`)."""

    def __init__(self, stream: IncrementalStream) -> None:
        self.stream = stream

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        return self.stream.accept(new_audio)

    def finish_utterance(self, utterance: np.ndarray) -> str:
        # The engine's end-of-utterance pass (PocketSphinx decodes the utterance again with
        # whole-utterance normalisation) is far better than its last live hypothesis.
        return _text(self.stream.finish())

    def reset(self) -> None:
        self.stream.finish()

    def close(self) -> None:
        self.stream.close()
