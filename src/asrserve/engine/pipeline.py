"""The offline pipeline: decode -> VAD -> chunks -> shared batcher -> engine -> Transcript.

The CLI, the HTTP API and the job workers all transcribe through this one code path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np

from asrserve.engine import audio as audio_io
from asrserve.engine.audio import SAMPLE_RATE
from asrserve.engine.batching import DynamicBatcher
from asrserve.engine.coverage import splice, uncovered_spans, unheard_dropped
from asrserve.engine.engines.base import Engine
from asrserve.engine.errors import (
    AudioTooLongError,
    EmptyAudioError,
    InvalidOptionError,
    UnsupportedLanguageError,
)
from asrserve.engine.options import (
    AudioLimits,
    DecodeOptions,
    LanguageOptions,
    TranscribeOptions,
)
from asrserve.engine.types import (
    LanguageGuess,
    Segment,
    SpeechSpan,
    Transcript,
    TranscriptInfo,
    Word,
)
from asrserve.engine.vad import Chunk, plan_chunks, speech_spans

log = logging.getLogger(__name__)

AudioSource = str | os.PathLike[str] | bytes | BinaryIO | np.ndarray
ProgressCallback = Callable[[float, float], None]
"""Called with (audio seconds done, audio seconds in all) on the input's own timeline."""


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """An input decoded, segmented and with its language settled, ready to decode."""

    audio: np.ndarray
    chunks: tuple[Chunk, ...]
    info: TranscriptInfo
    options: TranscribeOptions


class Pipeline:
    """Transcribes whole inputs with one engine through its shared batcher."""

    def __init__(
        self,
        engine: Engine,
        batcher: DynamicBatcher,
        *,
        limits: AudioLimits | None = None,
        languages: LanguageOptions | None = None,
    ) -> None:
        self.engine = engine
        self.batcher = batcher
        self.limits = limits or AudioLimits()
        self.languages = languages or LanguageOptions()

    def prepare(self, source: AudioSource, options: TranscribeOptions) -> PreparedInput:
        audio = self._load(source)
        duration = audio.size / SAMPLE_RATE
        chunk_opts = replace(
            options.vad, max_chunk_s=min(options.vad.max_chunk_s, self.engine.info.max_chunk_s)
        )
        # Found even when not cut by: where the VAD heard nothing, text needs more proof.
        spans = speech_spans(audio, chunk_opts)
        chunks = tuple(plan_chunks(audio, spans, chunk_opts, cut_at_speech=options.vad_filter))
        guess = self._language(chunks, options)
        decode = replace(options.decode, language=guess.language)
        info = TranscriptInfo(
            language=guess.language,
            language_probability=guess.probability,
            duration=duration,
            speech_duration=sum(c.duration for c in chunks),
            task=options.decode.task,
            model=self.engine.info.model,
            language_source=guess.source,
        )
        return PreparedInput(audio, chunks, info, replace(options, decode=decode))

    def transcribe(
        self,
        source: AudioSource,
        options: TranscribeOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
        progressive: bool = False,
    ) -> Transcript:
        prepared = self.prepare(source, options or TranscribeOptions())
        segments = tuple(self.decode(prepared, progress=progress, progressive=progressive))
        return Transcript(info=prepared.info, segments=segments)

    def decode(
        self,
        prepared: PreparedInput,
        *,
        progress: ProgressCallback | None = None,
        progressive: bool = False,
    ) -> Iterator[Segment]:
        """Yield segments in time order as soon as every earlier chunk is decoded.

        With `progressive`, the first chunk is decoded on its own before the others are queued,
        so a listener gets its first segment after one chunk's work instead of after the whole
        first batch (at the cost of one more, smaller batch).
        """
        chunks = prepared.chunks
        total = prepared.info.duration
        options = prepared.options.decode
        recover = prepared.options.recover_skipped_speech
        pad_s = prepared.options.vad.speech_pad_ms / 1000
        unlikely_below = options.log_prob_threshold if self.engine.info.token_logprobs else None
        works = [_ChunkWork(chunk, pad_s) for chunk in chunks]
        shares = _progress_shares(chunks, total)
        next_id = 0
        emitted = 0
        try:
            self._submit(works, options, progressive=progressive, recover=recover)
            reported = False
            while True:
                settled = [w.settle(self.batcher, options, recover=recover) for w in works]
                if progress is not None and (any(settled) or not reported):
                    done_seconds = sum(shares[w.chunk.index] for w in works if w.settled)
                    progress(min(done_seconds, total), total)
                    reported = True
                while emitted < len(works) and works[emitted].settled:
                    work = works[emitted]
                    for segment in work.segments(options, unlikely_below):
                        yield _on_timeline(segment, work.chunk, next_id, total)
                        next_id += 1
                    emitted += 1
                if emitted == len(works):
                    break
                # Yield what is ready before waiting: the progressive first chunk must reach
                # its listener while the others decode.
                wait([f for w in works for f in w.outstanding()], return_when="FIRST_COMPLETED")
            if progress is not None and not chunks:
                progress(total, total)
        finally:
            for work in works:
                work.cancel()

    def _submit(
        self, works: list[_ChunkWork], options: DecodeOptions, *, progressive: bool, recover: bool
    ) -> None:
        if progressive and len(works) > 1:
            # Settled, repairs and all, before the rest is queued: its segments, and progress
            # past it, come while the others decode (not with them, when a repair of the first
            # chunk would queue behind the rest).
            first = works[0]
            first.submit_first(self.batcher, options)
            while not first.settle(self.batcher, options, recover=recover):
                wait(first.outstanding())
        # Audio the VAD heard no speech in keeps a window of its own: whether it is speech is
        # then the decoder's verdict on it alone, not on its neighbours.
        for heard in (True, False):
            queued = [w for w in works if w.first is None and bool(w.chunk.spans) == heard]
            firsts = self.batcher.submit_many(
                [w.chunk.audio for w in queued], options, packable=heard
            )
            for work, future in zip(queued, firsts, strict=True):
                work.first = future

    def _load(self, source: AudioSource) -> np.ndarray:
        if isinstance(source, np.ndarray):
            return _check_samples(source, self.limits)
        return audio_io.decode(source, limits=self.limits)

    def _language(self, chunks: tuple[Chunk, ...], options: TranscribeOptions) -> LanguageGuess:
        """A file-level decision: chunks spread over the whole input, not only its start."""
        count = min(len(chunks), self.languages.detection_chunks)
        picks = sorted({round(i) for i in np.linspace(0, len(chunks) - 1, count)}) if count else []
        return self.settle_language(
            [chunks[i].audio for i in picks], options.decode, options.expected_languages
        )

    def settle_language(
        self,
        speech: Sequence[np.ndarray],
        decode: DecodeOptions,
        expected: tuple[str, ...] | None = None,
    ) -> LanguageGuess:
        """The language to decode `speech` in: the requested one (checked against the model),
        the model's only one, or detected from the speech (16 kHz float32 pieces) among the
        `expected` languages (None: this pipeline's), falling back below the floor."""
        requested = decode.language
        supported = self.engine.info.languages
        if requested:
            if supported is not None and requested not in supported:
                raise UnsupportedLanguageError(
                    f"Model {self.engine.info.model} decodes {', '.join(sorted(supported))} only, "
                    f"not {requested!r}; choose another model or language."
                )
            return LanguageGuess(requested, 1.0, source="requested")
        if supported is not None and len(supported) == 1:
            return LanguageGuess(next(iter(supported)), 1.0, source="model")
        policy = self.languages if expected is None else replace(self.languages, expected=expected)
        fallback = policy.fallback_language
        if not any(piece.size for piece in speech):
            # Nothing was heard, so nothing can be detected.
            return LanguageGuess(fallback or "en", 0.0, source="fallback")
        guess = self.engine.detect_language(list(speech), policy.expected)
        if guess.probability < policy.floor and fallback and fallback != guess.language:
            log.info(
                "language %s detected with probability %.2f, below the floor %.2f: using %s",
                guess.language,
                guess.probability,
                policy.floor,
                fallback,
            )
            return replace(guess, language=fallback, source="fallback")
        return guess


class _ChunkWork:
    """One chunk's decode, plus the decodes of the speech regions it left without words."""

    def __init__(self, chunk: Chunk, pad_s: float) -> None:
        self.chunk = chunk
        self.pad_s = pad_s
        """The VAD's padding around each speech region, which no word need cover."""
        self.first: Future[list[Segment]] | None = None
        self.repairs: list[tuple[SpeechSpan, Future[list[Segment]]]] = []
        self.settled = False
        self._checked = False

    def submit_first(
        self, batcher: DynamicBatcher, options: DecodeOptions
    ) -> Future[list[Segment]]:
        self.first = batcher.submit(self.chunk.audio, options)
        return self.first

    def settle(self, batcher: DynamicBatcher, options: DecodeOptions, *, recover: bool) -> bool:
        """Move on once the first decode is in: queue repairs if it lost speech. True the one
        time the chunk becomes fully decoded. A decode failure is raised here, in the caller."""
        if self.settled or self.first is None or not self.first.done():
            return False
        first = self.first.result()
        if recover and not self._checked:
            self._repair(first, batcher, options)
        self._checked = True
        if self.outstanding():
            return False
        for _, future in self.repairs:
            future.result()
        self.settled = True
        return True

    def _repair(
        self, first: list[Segment], batcher: DynamicBatcher, options: DecodeOptions
    ) -> None:
        gaps = uncovered_spans(first, self.chunk.spans, pad_s=self.pad_s)
        if not gaps:
            return
        log.info(
            "chunk at %.1f s left %d of its %d speech regions without words; decoding them "
            "on their own",
            self.chunk.start,
            len(gaps),
            len(self.chunk.spans),
        )
        audio = self.chunk.audio
        pieces = [audio[round(g.start * SAMPLE_RATE) : round(g.end * SAMPLE_RATE)] for g in gaps]
        # Apart: packed together, the repeats would be written once again.
        repairs = batcher.submit_many(pieces, options, packable=False)
        self.repairs = list(zip(gaps, repairs, strict=True))

    def outstanding(self) -> list[Future[list[Segment]]]:
        futures = [self.first] if self.first is not None else []
        futures += [f for _, f in self.repairs]
        return [f for f in futures if not f.done()]

    def segments(self, options: DecodeOptions, unlikely_below: float | None) -> list[Segment]:
        """The chunk's final segments. `unlikely_below`: the engine's token log-probability
        under which text outside the VAD's speech is dropped (`unheard_dropped`)."""
        assert self.first is not None
        first = self.first.result()
        if self.repairs:
            repairs = [(span, future.result()) for span, future in self.repairs]
            first = splice(first, repairs, self.chunk.spans)
        if options.no_speech_threshold is None:
            return first
        return unheard_dropped(first, self.chunk.spans, options.no_speech_threshold, unlikely_below)

    def cancel(self) -> None:
        if self.first is not None:
            self.first.cancel()
        for _, future in self.repairs:
            future.cancel()


def _check_samples(samples: np.ndarray, limits: AudioLimits) -> np.ndarray:
    """Callers that already hold samples must give 16 kHz mono float32, as decode() returns."""
    if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
        raise InvalidOptionError(
            "Audio samples must be a 1-D float array of 16 kHz mono; decode files with "
            "asrserve.engine.audio.decode first."
        )
    if samples.size == 0:
        raise EmptyAudioError("The audio is empty: it holds no samples.")
    seconds = samples.size / SAMPLE_RATE
    if limits.max_duration_s is not None and seconds > limits.max_duration_s:
        raise AudioTooLongError(
            f"The audio lasts {seconds:.0f} s, more than the {limits.max_duration_s:.0f} s "
            "allowed; split it or raise the limit."
        )
    return samples.astype(np.float32, copy=False)


def _progress_shares(chunks: tuple[Chunk, ...], total: float) -> list[float]:
    """Each chunk's part of the timeline: itself plus the silence before it. The trailing
    silence goes to the last chunk, so finishing every chunk means `total` seconds done."""
    shares = []
    previous_end = 0.0
    for chunk in chunks:
        shares.append(chunk.end - previous_end)
        previous_end = chunk.end
    if shares:
        shares[-1] += max(0.0, total - previous_end)
    return shares


def _on_timeline(segment: Segment, chunk: Chunk, new_id: int, total: float) -> Segment:
    def place(t: float) -> float:
        return round(min(max(chunk.start + t, chunk.start), chunk.end, total), 3)

    words = tuple(
        Word(start=place(w.start), end=place(w.end), word=w.word, probability=w.probability)
        for w in segment.words
    )
    return replace(
        segment, id=new_id, start=place(segment.start), end=place(segment.end), words=words
    )
