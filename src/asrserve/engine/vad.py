"""Silero VAD (the ONNX model that ships inside faster-whisper) and chunk planning.

The Silero session is faster-whisper's own, created once per process on first use and shared
by every caller; it keeps no state between calls, so concurrent callers are safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions as SileroOptions
from faster_whisper.vad import get_speech_timestamps

from asrserve.engine.engines.base import SAMPLE_RATE
from asrserve.engine.options import VadOptions
from asrserve.engine.types import SpeechSpan


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous stretch of the input handed to the engine as one decode item."""

    index: int
    start: float
    end: float
    audio: np.ndarray

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_spans(audio: np.ndarray, options: VadOptions) -> list[SpeechSpan]:
    """Regions of speech, padded, each at most `options.max_chunk_s` long."""
    if audio.size == 0:
        return []
    silero = SileroOptions(
        threshold=options.threshold,
        min_speech_duration_ms=options.min_speech_ms,
        max_speech_duration_s=options.max_chunk_s,
        min_silence_duration_ms=options.min_silence_ms,
        speech_pad_ms=options.speech_pad_ms,
    )
    stamps = get_speech_timestamps(audio, silero, sampling_rate=SAMPLE_RATE)
    return [SpeechSpan(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def plan_chunks(
    audio: np.ndarray, spans: list[SpeechSpan] | None, options: VadOptions
) -> list[Chunk]:
    """Merge speech spans into contiguous chunks up to `max_chunk_s`.

    Chunks keep the audio between the spans they merge (so times map back by one offset and
    the model hears natural pauses), but a pause longer than `max_merge_gap_s` starts a new
    chunk. Without spans (VAD off) the input is cut into consecutive `max_chunk_s` windows.
    """
    duration = audio.size / SAMPLE_RATE
    if spans is None:
        bounds = []
        start = 0.0
        while start < duration:
            end = min(start + options.max_chunk_s, duration)
            bounds.append((start, end))
            start = end
    else:
        bounds = []
        for span in spans:
            if bounds:
                start, end = bounds[-1]
                fits = span.end - start <= options.max_chunk_s
                close = span.start - end <= options.max_merge_gap_s
                if fits and close:
                    bounds[-1] = (start, max(end, span.end))
                    continue
            bounds.append((span.start, span.end))
    chunks = []
    for start, end in bounds:
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        if b > a:
            chunks.append(Chunk(len(chunks), a / SAMPLE_RATE, b / SAMPLE_RATE, audio[a:b]))
    return chunks
