"""Silero VAD (the ONNX model that ships inside faster-whisper) and chunk planning.

The Silero session is faster-whisper's own, created once per process on first use and shared
by every caller; it keeps no state between calls, so concurrent callers are safe.
faster-whisper caches it with `functools.lru_cache`, which lets concurrent first callers each
build a session of their own: 64 files starting at once built dozens, seconds of CPU and
hundreds of MB, so the first build happens under a lock here (`silero_model`).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import SileroVADModel, get_speech_timestamps, get_vad_model
from faster_whisper.vad import VadOptions as SileroOptions

from asrserve.engine.audio import SAMPLE_RATE
from asrserve.engine.options import SILERO_RESET_AFTER_S, VadOptions
from asrserve.engine.types import SpeechSpan

_FIRST_BUILD = threading.Lock()


def silero_model() -> SileroVADModel:
    """faster-whisper's shared Silero model, built by exactly one caller."""
    with _FIRST_BUILD:
        return get_vad_model()


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous stretch of the input handed to the engine as one decode item."""

    index: int
    start: float
    end: float
    audio: np.ndarray
    spans: tuple[SpeechSpan, ...] = ()
    """The VAD's speech regions inside the chunk, relative to the chunk's start (empty when the
    VAD was off)."""

    @property
    def duration(self) -> float:
        return self.end - self.start


_WINDOW = 512
"""Silero scores 32 ms windows at 16 kHz..."""
_CONTEXT = 64
"""...each seeing the 4 ms before it."""
_BLOCK = 256
"""Windows per Silero call over a whole file (8 s): a reset re-scores the rest of its block."""


def _fresh_state() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32)


def _with_context(windows: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Silero's input rows: each window after the `_CONTEXT` samples that precede it."""
    contexts = np.concatenate([before[None, :], windows[:-1, -_CONTEXT:]])
    return np.concatenate([contexts, windows], axis=1)


def fresh_starts(audio: np.ndarray, *, quiet_below: float, quiet_windows: int) -> list[int]:
    """Sample offsets (0 first) where Silero's state starts afresh over a whole file.

    Carried on for minutes, the state drifts deaf (snakers4/silero-vad#725): a reset once
    `quiet_windows` windows in a row score below `quiet_below`, as the live `Endpointer` does,
    lands in a pause and so never while an onset forms. The windows after it are scored again
    from the fresh state, so the offsets are exact.
    """
    session = silero_model().session
    windows = np.pad(audio, (0, -audio.size % _WINDOW)).reshape(-1, _WINDOW)
    rows = _with_context(windows, np.zeros(_CONTEXT, np.float32))
    starts = [0]
    h, c = _fresh_state()
    at = quiet = 0
    while at < len(rows):
        probs, h_after, c_after = session.run(
            None, {"input": rows[at : at + _BLOCK], "h": h, "c": c}
        )
        scored = np.asarray(probs).reshape(-1)
        for i, prob in enumerate(scored):
            quiet = quiet + 1 if prob < quiet_below else 0
            if quiet == quiet_windows:
                at += i + 1
                starts.append(at * _WINDOW)
                h, c = _fresh_state()
                break
        else:
            at += scored.size
            h, c = h_after, c_after
    return [s for s in starts if s < audio.size]


def speech_spans(audio: np.ndarray, options: VadOptions) -> list[SpeechSpan]:
    """Regions of speech, padded, each at most `options.max_chunk_s` long.

    faster-whisper's hysteresis finds them, in stretches that each start Silero afresh
    (`fresh_starts`): with one state over a whole file, a 55 s upload of two recordings lost
    the second's first 12 s of speech.
    """
    if audio.size == 0:
        return []
    quiet_below = max(options.threshold - 0.15, 0.01)  # faster-whisper's own neg_threshold
    silero = SileroOptions(
        threshold=options.threshold,
        neg_threshold=quiet_below,
        min_speech_duration_ms=options.min_speech_ms,
        max_speech_duration_s=options.max_chunk_s,
        min_silence_duration_ms=options.min_silence_ms,
        speech_pad_ms=options.speech_pad_ms,
    )
    silero_model()  # built once, before faster-whisper's own call looks it up
    starts = [0]
    if options.reset_after_silence_s is not None:
        quiet = max(1, round(options.reset_after_silence_s * SAMPLE_RATE / _WINDOW))
        starts = fresh_starts(audio, quiet_below=quiet_below, quiet_windows=quiet)
    # Each stretch but the first begins its padding's length before its fresh start, inside
    # the pause, so a word that follows the pause at once keeps its padding.
    lead = round(options.speech_pad_ms * SAMPLE_RATE / 1000)
    spans: list[SpeechSpan] = []
    for fresh, end in itertools.pairwise([*starts, audio.size]):
        start = max(0, fresh - lead)
        stamps = get_speech_timestamps(audio[start:end], silero, sampling_rate=SAMPLE_RATE)
        spans += [
            SpeechSpan((start + s["start"]) / SAMPLE_RATE, (start + s["end"]) / SAMPLE_RATE)
            for s in stamps
        ]
    return spans


def plan_chunks(
    audio: np.ndarray,
    spans: list[SpeechSpan] | None,
    options: VadOptions,
    *,
    cut_at_speech: bool = True,
) -> list[Chunk]:
    """Merge speech spans into contiguous chunks up to `max_chunk_s`.

    Chunks keep the audio between the spans they merge (so times map back by one offset and
    the model hears natural pauses), but a pause longer than `max_merge_gap_s` starts a new
    chunk. Without spans, or with `cut_at_speech` off (VAD filtering off), the whole input is
    cut into consecutive `max_chunk_s` windows, each still told the spans inside it.
    """
    duration = audio.size / SAMPLE_RATE
    groups: list[tuple[float, float, list[SpeechSpan]]] = []
    if spans is None or not cut_at_speech:
        start = 0.0
        while start < duration:
            end = min(start + options.max_chunk_s, duration)
            inside = [
                SpeechSpan(max(s.start, start), min(s.end, end))
                for s in spans or ()
                if s.end > start and s.start < end
            ]
            groups.append((start, end, inside))
            start = end
    else:
        for span in spans:
            if groups:
                start, end, members = groups[-1]
                fits = span.end - start <= options.max_chunk_s
                close = span.start - end <= options.max_merge_gap_s
                if fits and close:
                    groups[-1] = (start, max(end, span.end), [*members, span])
                    continue
            groups.append((span.start, span.end, [span]))
    chunks: list[Chunk] = []
    for start, end, members in groups:
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        if b > a:
            offset = a / SAMPLE_RATE
            inner = tuple(SpeechSpan(s.start - offset, s.end - offset) for s in members)
            chunks.append(Chunk(len(chunks), offset, b / SAMPLE_RATE, audio[a:b], inner))
    return chunks


class SileroStream:
    """Silero over live audio: windows scored as they complete, the LSTM state carried over.

    One per stream; the ONNX session is faster-whisper's shared one (thread-safe for `run`).
    """

    def __init__(self) -> None:
        self._session = silero_model().session
        self.reset()
        self._context = np.zeros(_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def reset(self) -> None:
        """Forget the LSTM state (not the audio context): as at the start of a stream."""
        self._h, self._c = _fresh_state()

    def probabilities(self, pcm: np.ndarray) -> np.ndarray:
        """Speech probability of every 32 ms window completed by `pcm`."""
        audio = np.concatenate([self._pending, pcm.astype(np.float32, copy=False)])
        whole = audio.size // _WINDOW * _WINDOW
        self._pending = audio[whole:]
        if whole == 0:
            return np.zeros(0, np.float32)
        windows = audio[:whole].reshape(-1, _WINDOW)
        batch = _with_context(windows, self._context)
        self._context = windows[-1, -_CONTEXT:].copy()
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(probs, np.float32).reshape(-1)


@dataclass(frozen=True, slots=True)
class EndpointerOptions:
    threshold: float = 0.5
    """A window at or above this starts (or continues) speech."""
    neg_threshold: float = 0.35
    """Below this a window counts towards the silence that ends an utterance."""
    min_speech_ms: int = 200
    """Speech must last this long before an utterance starts (coughs and clicks do not): from a
    window at `threshold` on, through windows at `neg_threshold` or more."""
    end_silence_ms: int = 800
    """Silence that ends an utterance (FunASR's default): short enough to feel live, long
    enough that a breath inside a sentence does not cut it..."""
    sentence_end_silence_ms: int | None = 400
    """...and the silence that ends it once its live text, having heard all of its speech, ends
    a sentence (`Endpointer.sentence_complete`): the final comes sooner where it can. None:
    always `end_silence_ms`..."""
    sentence_end_min_s: float = 3.0
    """...once the utterance is this long: a sentence of a second or two decodes worse alone
    than with the next (Beckett's "Ever failed." alone: "Everfair old.")."""
    reset_after_silence_s: float = SILERO_RESET_AFTER_S
    """Silero's state starts afresh once this much silence follows an utterance (a pause
    between turns)."""
    pre_roll_ms: int = 300
    """Audio kept before the detected start so the first word is whole."""
    max_utterance_s: float = 25.0
    """A monologue without a pause is cut here, below Whisper's 30 s window."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float
    """Stream time in seconds where the utterance's audio starts (pre-roll included)."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at: float
    forced: bool = False
    """True when `max_utterance_s` cut it rather than a pause."""


class Endpointer:
    """Turns window probabilities into utterance boundaries on the stream's own timeline."""

    def __init__(self, options: EndpointerOptions | None = None) -> None:
        self.options = options or EndpointerOptions()
        self._vad = SileroStream()
        self._windows = 0
        self._in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        self._start = 0.0
        self._quiet = 0
        """Silent windows in a row outside an utterance (Silero's state is reset after a while)."""
        self.sentence_complete = False
        """Set by the caller: the utterance's live text ends a sentence and has heard all of
        its speech (`sentence_end_silence_ms` then ends it). Cleared at every boundary."""

    @property
    def silence_s(self) -> float:
        """The silence heard since the utterance's last speech (0 outside an utterance)."""
        return self._silence_run * _WINDOW / SAMPLE_RATE if self._in_speech else 0.0

    @property
    def pause_end_s(self) -> float | None:
        """Where the open utterance ends if the pause heard now lasts until the endpoint: its
        `SpeechEnded.at`, once all of that audio is in (None while speaking, or too soon)."""
        if not self._in_speech or not self._silence_run:
            return None
        end = self._end_s()
        return end if end <= self._windows * _WINDOW / SAMPLE_RATE else None

    def _end_s(self) -> float:
        # A little after the last speech window: the pre-roll's twin at the end.
        last_speech = (self._windows - self._silence_run) * _WINDOW / SAMPLE_RATE
        return round(last_speech + self.options.pre_roll_ms / 1000, 3)

    def feed(self, pcm: np.ndarray) -> list[SpeechStarted | SpeechEnded]:
        opts = self.options
        window_s = _WINDOW / SAMPLE_RATE
        need_speech = max(1, round(opts.min_speech_ms / 1000 / window_s))
        need_silence = max(1, round(opts.end_silence_ms / 1000 / window_s))
        need_reset = max(1, round(opts.reset_after_silence_s / window_s))
        sentence_ms = opts.sentence_end_silence_ms
        need_after_sentence = need_silence
        if sentence_ms is not None:
            need_after_sentence = max(1, min(need_silence, round(sentence_ms / 1000 / window_s)))
        events: list[SpeechStarted | SpeechEnded] = []
        for prob in self._vad.probabilities(pcm):
            self._windows += 1
            now = self._windows * window_s
            if not self._in_speech:
                # Counted in silent windows in a row: a reset while an onset forms would cost
                # its first word.
                self._quiet = self._quiet + 1 if prob < opts.neg_threshold else 0
                if self._quiet == need_reset:
                    # Silero's state drifts deaf over a long stream (SILERO_RESET_AFTER_S). A
                    # long pause is a safe place to start afresh; at the end of the utterance
                    # itself, a soft word after a short pause ("ask" after JFK's "Americans")
                    # was lost.
                    self._vad.reset()
                # Silero's own hysteresis: a run opens on a window at `threshold` and holds while
                # windows stay at `neg_threshold`. Soft words ("ask" before "not") hover between
                # the two; demanding `threshold` throughout dropped them from the utterance.
                if self._speech_run or prob >= opts.threshold:
                    self._speech_run = self._speech_run + 1 if prob >= opts.neg_threshold else 0
                if self._speech_run >= need_speech:
                    self._in_speech = True
                    self._silence_run = 0
                    begun = now - self._speech_run * window_s - opts.pre_roll_ms / 1000
                    self._start = max(0.0, begun)
                    events.append(SpeechStarted(round(self._start, 3)))
                    self.sentence_complete = False
                continue
            self._silence_run = self._silence_run + 1 if prob < opts.neg_threshold else 0
            if not self._silence_run:
                self.sentence_complete = False  # speech again: the text heard is not all of it
            sentence_done = self.sentence_complete and now - self._start >= opts.sentence_end_min_s
            need = need_after_sentence if sentence_done else need_silence
            if self._silence_run >= need:
                events.append(SpeechEnded(min(self._end_s(), round(now, 3))))
                self._in_speech = False
                self._speech_run = 0
                self.sentence_complete = False
                self._quiet = 0
            elif now - self._start >= opts.max_utterance_s:
                events.append(SpeechEnded(round(now, 3), forced=True))
                # The talk goes on: the next utterance starts right here.
                self._start = now
                events.append(SpeechStarted(round(now, 3)))
        return events
