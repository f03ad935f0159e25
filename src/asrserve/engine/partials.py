"""Cheap decoders for live partial text, behind `streaming.PartialDecoder`.

- `WhisperPartials`: re-decodes the utterance so far with a small Whisper (tiny.en) through that
  model's own shared batcher, so the partials of many streams share batches; greedy, no
  fallback, no word alignment. Accurate partials for a handful of streams.
- `IncrementalPartials`: PocketSphinx or Vosk decoding frame by frame: cost independent of the
  utterance length, partials after every chunk, much lower accuracy. For many streams.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from asrserve.engine.batching import DynamicBatcher
from asrserve.engine.options import DecodeOptions
from asrserve.engine.types import Segment


class WhisperPartials:
    def __init__(self, batcher: DynamicBatcher, decode: DecodeOptions) -> None:
        self.batcher = batcher
        # Partials are replaced within half a second: greedy and unaligned is what they need.
        self.decode = replace(
            decode, beam_size=1, temperatures=(0.0,), word_timestamps=False,
            split_segments=False, language=decode.language or "en",
        )  # fmt: skip
        self._last = ""

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        segments = self.batcher.submit(utterance, self.decode).result()
        self._last = " ".join(s.text.strip() for s in segments if s.text.strip())
        return self._last

    def finish_utterance(self) -> str:
        last, self._last = self._last, ""
        return last

    def close(self) -> None:
        pass


class _IncrementalStream(Protocol):
    def accept(self, audio: np.ndarray) -> str: ...
    def finish(self) -> list[Segment]: ...
    def close(self) -> None: ...


class IncrementalPartials:
    """Wraps an engine stream (`PocketSphinxEngine.open_stream`, `VoskEngine.open_stream`)."""

    def __init__(self, stream: _IncrementalStream) -> None:
        self.stream = stream

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        return self.stream.accept(new_audio)

    def finish_utterance(self) -> str:
        # The engine's end-of-utterance pass (PocketSphinx decodes the utterance again with
        # whole-utterance normalisation) is far better than its last live hypothesis.
        return " ".join(s.text.strip() for s in self.stream.finish() if s.text.strip())

    def close(self) -> None:
        self.stream.close()
