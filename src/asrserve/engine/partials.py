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
from typing import Protocol

import numpy as np

from asrserve.engine.audio import SAMPLE_RATE
from asrserve.engine.engines.base import IncrementalStream
from asrserve.engine.options import DecodeOptions
from asrserve.engine.streaming import StreamingOptions
from asrserve.engine.types import Segment, join_text


class ChunkSubmitter(Protocol):
    """Where partial decodes go: the partial model's `DynamicBatcher` (or a test's own)."""

    def submit(self, audio: np.ndarray, options: DecodeOptions) -> Future[list[Segment]]: ...


class PartialPace(Protocol):
    """The server's load, as re-decoding partial decoders see it (`ws.load.LiveLoad`)."""

    def partial_interval(self, normal_s: float, *, first: bool = False) -> float | None:
        """The audio to wait for between re-decodes now (before the utterance's `first`
        partial: since it began); None: no partials for now."""
        ...

    def skipped_partial(self) -> None: ...


class WhisperPartials:
    """Never blocks the stream: at most one re-decode in flight; its text is picked up by a
    later `update`. Under load a stream gets fewer partials (`pace`), or none, never falls
    behind real time."""

    def __init__(
        self,
        batcher: ChunkSubmitter,
        decode: DecodeOptions,
        options: StreamingOptions | None = None,
        *,
        pace: PartialPace | None = None,
    ) -> None:
        options = options or StreamingOptions()
        self.batcher = batcher
        self.pace = pace
        # Partials are replaced within half a second: greedy and unaligned is what they need.
        # A greedy decode of a word or two that has only begun often looks failed; the final
        # pass judges non-speech, a partial shows its tentative text.
        self.decode = replace(
            decode, beam_size=1, temperatures=(0.0,), word_timestamps=False,
            split_segments=False, language=decode.language or "en",
            failed_no_speech_threshold=None, fitted_window_pad_s=options.partial_fitted_pad_s,
        )  # fmt: skip
        # Online mode's final is this decoder's too, once per utterance: beam search in a
        # 2pass final's window, where tiny.en loops far less (`online_final_beam_size`).
        self.final_decode = replace(
            self.decode,
            beam_size=options.online_final_beam_size,
            fitted_window_pad_s=options.final_fitted_pad_s,
            fitted_window_min_s=options.final_fitted_min_s,
        )
        self.interval_s = options.partial_interval_s
        self.interval = int(self.interval_s * SAMPLE_RATE)
        self._pending: Future[list[Segment]] | None = None
        self._submitted = 0  # utterance samples the last re-decode covered
        self._skipped = 0  # utterance samples at the last partial counted as skipped
        self._last = ""
        self._heard = 0  # utterance samples `_last` was decoded from

    @property
    def heard_samples(self) -> int:
        return self._heard

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        if self._pending is not None and self._pending.done():
            if not self._pending.cancelled() and self._pending.exception() is None:
                self._last = join_text(self._pending.result())
                self._heard = self._submitted
            self._pending = None
        waited = utterance.size - self._submitted
        if waited < self.interval:
            return self._last  # load only ever makes partials rarer
        interval_s = (
            self.pace.partial_interval(self.interval_s, first=self._submitted == 0)
            if self.pace
            else self.interval_s
        )
        if (
            self._pending is None
            and interval_s is not None
            and waited >= int(interval_s * SAMPLE_RATE)
        ):
            self._pending = self.batcher.submit(utterance.copy(), self.decode)
            self._submitted = utterance.size
        elif utterance.size - max(self._submitted, self._skipped) >= self.interval:
            # A partial was due at the normal pace, and load (or the last one, still
            # decoding) held it back: counted once per interval of audio.
            self._skipped = utterance.size
            if self.pace is not None:
                self.pace.skipped_partial()
        return self._last

    def finish_utterance(self, utterance: np.ndarray) -> str:
        """Online mode's final: the whole utterance, decoded now (this one call waits)."""
        self.reset()
        return join_text(self.batcher.submit(utterance.copy(), self.final_decode).result())

    def reset(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending, self._submitted, self._skipped, self._last = None, 0, 0, ""
        self._heard = 0

    def close(self) -> None:
        self.reset()


class IncrementalPartials:
    """Wraps an engine stream (`PocketSphinxEngine.open_stream`, `VoskEngine.open_stream`)."""

    def __init__(self, stream: IncrementalStream) -> None:
        self.stream = stream

    @property
    def heard_samples(self) -> int:
        # Their live text has no punctuation to end a sentence with: nothing to claim.
        return 0

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        return self.stream.accept(new_audio)

    def finish_utterance(self, utterance: np.ndarray) -> str:
        # The engine's end-of-utterance pass (PocketSphinx decodes the utterance again with
        # whole-utterance normalisation) is far better than its last live hypothesis.
        return join_text(self.stream.finish())

    def reset(self) -> None:
        self.stream.finish()

    def close(self) -> None:
        self.stream.close()
