"""Live audio in, 2-pass results out: a state machine with no socket in it.

`TwoPassSession.feed(pcm)` takes audio as it arrives and returns what can be said now:
- while someone speaks, `Partial`s from a cheap partial decoder (tiny.en re-decoding the
  utterance so far without ever blocking the stream, or PocketSphinx decoding incrementally);
- at each endpoint (a pause, or `max_utterance_s` of talk without one), a `PendingFinal`: the
  utterance's audio handed to the accurate offline model through its shared batcher, so finals of
  many streams decode in one batch; `PendingFinal.result()` waits for it and gives the `Final`.
  Its decode starts in the pause already, before the endpoint, when the pause is long enough
  (`StreamingOptions.early_final_ms`) and the server lets it (`FinalSpeculation`).
`TwoPassSession` serves modes `2pass` and `online` (whose finals come from the partial decoder).
Mode `offline` is `OfflineSession`: it keeps the whole input and decodes it once, at `finish()`,
through the offline pipeline (VAD, chunks, batch): one consolidated result, as FunASR's
protocol wants. `open_session` picks one by the mode; both are `LiveSession`s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

import numpy as np

from asrserve.engine.audio import SAMPLE_RATE
from asrserve.engine.errors import AudioTooLongError
from asrserve.engine.itn import inverse_normalize
from asrserve.engine.options import DecodeOptions, TranscribeOptions
from asrserve.engine.pipeline import Pipeline
from asrserve.engine.types import Mode, Segment, Word, join_text
from asrserve.engine.vad import Endpointer, EndpointerOptions, SpeechEnded, SpeechStarted

log = logging.getLogger(__name__)

SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")


@dataclass(frozen=True, slots=True)
class StreamingOptions:
    mode: Mode = Mode.TWO_PASS
    partial_interval_s: float = 0.5
    """How much new audio a re-decoding partial decoder waits for before it decodes again."""
    partial_fitted_pad_s: float | None = 2.0
    """A re-decoding partial decoder decodes the utterance so far in a window fitted to it plus
    this much silence (`DecodeOptions.fitted_window_pad_s`), not a padded 30 s one; None pads."""
    online_final_beam_size: int = 5
    """Online mode's final per utterance comes from the partial decoder, decoded again whole
    with this beam in a 2pass final's window (`final_fitted_pad_s`, `final_fitted_min_s`).
    tiny.en on the 108 English development clips of 1-12 s (2026-12-07, AVX-512, process CPU
    per clip): fitted + 2 s greedy 24.2 % WER, beam 5 20.4 % (0.08-0.10 s); at least 15 s greedy
    19.7 %, beam 5 16.5 % (0.14 s). The shorter window's loss is loops ("Montreal forced
    liner." nine times, "Firefox Firefox Firefox", a browser's "... for your country. Ask what
    you can do")."""
    final_fitted_pad_s: float | None = 3.0
    final_fitted_min_s: float = 15.0
    """Each 2pass final is decoded in a window fitted to its utterance plus `final_fitted_pad_s`
    of silence, at least `final_fitted_min_s` long (`DecodeOptions.fitted_window_min_s` has the
    figures): a final sooner than in a shared 30 s window, as accurate. None: shared windows."""
    early_final_ms: int | None = 400
    """A 2pass utterance's final starts decoding once its pause is this long, before the
    endpoint (`endpointing.end_silence_ms`) ends it. It decodes the audio the endpoint would
    give it (up to the pre-roll after the last speech), so the final is the same, sooner; speech
    again before the endpoint cancels it, or drops its answer (`FinalSpeculation`). None: a
    final starts at its endpoint."""
    endpointing: EndpointerOptions = field(default_factory=EndpointerOptions)
    max_offline_s: float = 3600.0
    """Offline mode keeps the whole input: this bounds its memory."""
    itn: bool = False
    """Spelled-out numbers in partials and finals become digits (`engine.itn`)."""
    settle_probability: float = 0.8
    """With no language given, each utterance's language is detected until one detection is
    at least this sure; that language then holds for the rest of the stream."""


@dataclass(frozen=True, slots=True)
class Partial:
    utterance: int
    text: str
    """The whole utterance so far, as the partial decoder now hears it."""
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Final:
    utterance: int
    text: str
    start: float
    end: float
    segments: tuple[Segment, ...] = ()
    """Times on the stream's timeline (seconds since the stream began)."""
    forced: bool = False
    """Cut at `max_utterance_s` rather than at a pause."""
    language: str | None = None

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)


@dataclass(slots=True)
class PendingFinal:
    """A final being decoded; `result()` blocks until it is (call it off the event loop)."""

    utterance: int
    start: float
    end: float
    future: Future[list[Segment]]
    forced: bool = False
    language: str | None = None
    itn: bool = False

    def result(self, timeout: float | None = None) -> Final:
        segments = tuple(_shift(s, self.start, self.end) for s in self.future.result(timeout))
        if self.itn:
            # Only the text: word timings stay with the words the model spoke.
            segments = tuple(
                replace(s, text=inverse_normalize(s.text, self.language)) for s in segments
            )
        text = join_text(segments)
        return Final(
            self.utterance, text, self.start, self.end, segments, self.forced, self.language
        )


class PartialDecoder(Protocol):
    """A cheap decoder for live text. One per stream; the session calls it from one thread."""

    def update(self, utterance: np.ndarray, new_audio: np.ndarray) -> str:
        """Called with every chunk of an utterance (`new_audio` is its newest part): the
        current hypothesis for the utterance so far. Must not block for long."""
        ...

    @property
    def heard_samples(self) -> int:
        """How much of the utterance (from its start) the hypothesis `update` returned was
        decoded from."""
        ...

    def finish_utterance(self, utterance: np.ndarray) -> str:
        """The utterance ended: its best text by this decoder (online mode's final); forget it."""
        ...

    def reset(self) -> None:
        """The utterance ended and its text is not needed (2pass: the final model has it)."""
        ...

    def close(self) -> None: ...


Event = Partial | PendingFinal


class EarlyFinalOutcome(StrEnum):
    USED = "used"
    """The endpoint came: the early decode is the final."""
    CANCELLED = "cancelled"
    """Speech again while it still queued: no work lost."""
    WASTED = "wasted"
    """Speech again after it was decoded, or while it was: its answer is dropped."""


class FinalSpeculation(Protocol):
    """The server's say on early finals (`ws.server.StreamServer`): a decode speech makes
    useless is work only a server with time to spare should risk."""

    def may_start_early_final(self) -> bool: ...

    def early_final_ended(self, outcome: EarlyFinalOutcome) -> None: ...


@dataclass(frozen=True, slots=True)
class _EarlyFinal:
    end: int
    """The stream sample the utterance ends at if the pause lasts."""
    future: Future[list[Segment]]
    language: str | None


class LiveSession(Protocol):
    """Audio of one live stream in, results out; `feed` and `finish` may block on decoding."""

    @property
    def seconds_received(self) -> float: ...

    @property
    def speaking(self) -> bool:
        """Speech is in progress that a draining server lets the stream finish."""
        ...

    def feed(self, pcm: np.ndarray) -> list[Event]: ...

    def finish(self) -> list[Event]:
        """The input ended: what is left to say."""
        ...

    def close(self) -> None:
        """Frees the partial decoder; safe to call more than once."""
        ...


def open_session(
    final: Pipeline,
    decode: DecodeOptions,
    *,
    options: StreamingOptions | None = None,
    partials: PartialDecoder | None = None,
    speculation: FinalSpeculation | None = None,
) -> LiveSession:
    """The session for `options.mode`; offline mode needs no partial decoder."""
    options = options or StreamingOptions()
    if options.mode is Mode.OFFLINE:
        return OfflineSession(final, decode, options=options)
    return TwoPassSession(
        final, decode, options=options, partials=partials, speculation=speculation
    )


class TwoPassSession:
    """Modes `2pass` (cheap partials, accurate finals) and `online` (partials only)."""

    def __init__(
        self,
        final: Pipeline,
        decode: DecodeOptions,
        *,
        options: StreamingOptions | None = None,
        partials: PartialDecoder | None = None,
        speculation: FinalSpeculation | None = None,
    ) -> None:
        self.final = final
        self.decode = decode
        self.options = options or StreamingOptions()
        if self.options.mode is Mode.OFFLINE:
            raise ValueError("offline mode is OfflineSession's (open_session picks it)")
        self.partials = partials
        self.speculation = speculation
        """None: an early final whenever `early_final_ms` of pause allows one."""
        self._early: _EarlyFinal | None = None
        self._endpointer = Endpointer(self.options.endpointing)
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # stream sample index of _buffer[0]
        self._received = 0
        self._utterance = 0
        self._utterance_start: int | None = None  # sample index while speaking
        self._last_partial_at = 0
        self._last_partial_text = ""
        self._finished = False

    @property
    def seconds_received(self) -> float:
        return self._received / SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        """An utterance is open: the endpointer heard speech and no pause has ended it yet."""
        return self._utterance_start is not None

    def feed(self, pcm: np.ndarray) -> list[Event]:
        if self._finished:
            raise RuntimeError("this session has finished; start a new one")
        pcm = np.asarray(pcm, np.float32)
        if pcm.size == 0:
            return []
        self._buffer = np.concatenate([self._buffer, pcm])
        self._received += pcm.size
        events: list[Event] = []
        for boundary in self._endpointer.feed(pcm):
            if isinstance(boundary, SpeechStarted):
                self._open(int(boundary.at * SAMPLE_RATE))
            else:
                events += self._close(int(boundary.at * SAMPLE_RATE), boundary)
        if self._utterance_start is None:
            self._trim_idle()
        else:
            events += self._maybe_partial()
            self._maybe_start_early_final()
        return events

    def finish(self) -> list[Event]:
        """The input ended: flush the open utterance."""
        if self._finished:
            return []
        self._finished = True
        events: list[Event] = []
        if self._utterance_start is not None:
            events += self._close(self._received, SpeechEnded(self._received / SAMPLE_RATE))
        self.close()
        return events

    def close(self) -> None:
        self._drop_early_final()
        if self.partials is not None:
            self.partials.close()

    # --- utterances --------------------------------------------------------------------------

    def _open(self, at: int) -> None:
        self._utterance_start = max(at, self._buffer_start)
        self._last_partial_at = self._utterance_start
        self._last_partial_text = ""

    def _close(self, at: int, boundary: SpeechEnded) -> list[Event]:
        start = self._utterance_start
        if start is None:
            return []
        audio = self._slice(start, at)
        self._utterance_start = None
        events: list[Event] = []
        cheap_final = ""
        if self.partials is not None and self.options.mode is Mode.ONLINE:
            if at > self._last_partial_at:
                # Online finals come from the partial decoder: it must hear the utterance's end.
                self.partials.update(audio, self._slice(self._last_partial_at, at))
            cheap_final = self.partials.finish_utterance(audio)
        elif self.partials is not None:
            self.partials.reset()
        early = self._take_early_final(at)
        if self.options.mode is Mode.TWO_PASS and audio.size:
            if early is not None:
                future, language = early.future, early.language
            else:
                future, language = self._submit_final(audio)
            events.append(self._pending(start, at, future, boundary, language))
        elif self.options.mode is Mode.ONLINE and (cheap_final or self._last_partial_text):
            # Online mode never runs the offline model: the partial decoder has the last word.
            done: Future[list[Segment]] = Future()
            text = cheap_final or self._last_partial_text
            done.set_result([Segment(0, 0.0, (at - start) / SAMPLE_RATE, text)])
            events.append(self._pending(start, at, done, boundary, self.decode.language))
        self._utterance += 1
        self._drop_before(at)
        return events

    def _pending(
        self,
        start: int,
        end: int,
        future: Future[list[Segment]],
        boundary: SpeechEnded,
        language: str | None,
    ) -> PendingFinal:
        return PendingFinal(
            self._utterance,
            start / SAMPLE_RATE,
            end / SAMPLE_RATE,
            future,
            boundary.forced,
            language,
            self.options.itn,
        )

    def _decode_for(self, utterance: np.ndarray) -> DecodeOptions:
        """The options to decode this utterance with: its language settled first. Batched
        decoding needs one; without this a multilingual stream would be decoded as English."""
        if self.decode.language is not None:
            return self.decode
        guess = self.final.settle_language([utterance], self.decode)
        decode = replace(self.decode, language=guess.language)
        if guess.probability >= self.options.settle_probability:
            self.decode = decode
        return decode

    def _submit_final(self, utterance: np.ndarray) -> tuple[Future[list[Segment]], str | None]:
        decode = self._decode_for(utterance)
        fitted = replace(
            decode,
            fitted_window_pad_s=self.options.final_fitted_pad_s,
            fitted_window_min_s=self.options.final_fitted_min_s,
        )
        return self.final.batcher.submit(utterance, fitted), decode.language

    def _maybe_start_early_final(self) -> None:
        wait_ms = self.options.early_final_ms
        if self.options.mode is not Mode.TWO_PASS or wait_ms is None:
            return
        end_s = self._endpointer.pause_end_s
        end = None if end_s is None else int(end_s * SAMPLE_RATE)
        if self._early is not None and self._early.end != end:
            self._drop_early_final()  # speech again: the utterance goes on
        start = self._utterance_start
        if self._early is not None or end is None or start is None or end <= start:
            return
        if self._endpointer.silence_s * 1000 < wait_ms:
            return
        if self.speculation is not None and not self.speculation.may_start_early_final():
            return
        future, language = self._submit_final(self._slice(start, end))
        self._early = _EarlyFinal(end, future, language)

    def _take_early_final(self, at: int) -> _EarlyFinal | None:
        early = self._early
        if early is None or early.end != at:
            self._drop_early_final()
            return None
        self._early = None
        self._early_final_ended(EarlyFinalOutcome.USED)
        return early

    def _drop_early_final(self) -> None:
        if self._early is None:
            return
        cancelled = self._early.future.cancel()
        self._early = None
        self._early_final_ended(
            EarlyFinalOutcome.CANCELLED if cancelled else EarlyFinalOutcome.WASTED
        )

    def _early_final_ended(self, outcome: EarlyFinalOutcome) -> None:
        if self.speculation is not None:
            self.speculation.early_final_ended(outcome)

    def _maybe_partial(self) -> list[Event]:
        if self.partials is None or self._utterance_start is None:
            return []
        # Every chunk goes to the partial decoder (incremental ones must hear each sample once);
        # it decides how often to re-decode. Views, not copies: this runs every 60 ms.
        new = self._view(self._last_partial_at, self._received)
        self._last_partial_at = self._received
        text = self.partials.update(self._view(self._utterance_start, self._received), new).strip()
        # The live text ends a sentence and was decoded from all the speech there is so far
        # (up to the silence now being heard): the endpointer may end the utterance sooner.
        speech_end = self._received - int(self._endpointer.silence_s * SAMPLE_RATE)
        heard_to = self._utterance_start + self.partials.heard_samples
        self._endpointer.sentence_complete = text.endswith(SENTENCE_ENDS) and heard_to >= speech_end
        if self.options.itn:
            text = inverse_normalize(text, self.decode.language)
        if not text or text == self._last_partial_text:
            return []
        self._last_partial_text = text
        return [
            Partial(
                self._utterance,
                text,
                self._utterance_start / SAMPLE_RATE,
                self._received / SAMPLE_RATE,
            )
        ]

    # --- buffer ------------------------------------------------------------------------------

    def _slice(self, start: int, end: int) -> np.ndarray:
        return self._view(start, end).copy()

    def _view(self, start: int, end: int) -> np.ndarray:
        # The buffer is only ever replaced, never written in place, so views stay valid.
        a = max(0, start - self._buffer_start)
        b = max(a, end - self._buffer_start)
        return self._buffer[a:b]

    def _drop_before(self, sample: int) -> None:
        cut = max(0, sample - self._buffer_start)
        self._buffer = self._buffer[cut:]
        self._buffer_start += cut

    def _trim_idle(self) -> None:
        # Between utterances only the pre-roll (plus the speech the endpointer is still
        # confirming) can become part of the next one: keep a bounded tail.
        ep = self.options.endpointing
        keep = int((ep.pre_roll_ms + ep.min_speech_ms + 500) / 1000 * SAMPLE_RATE)
        if self._buffer.size > keep:
            self._drop_before(self._received - keep)


class OfflineSession:
    """Mode `offline`: the whole input kept (up to `max_offline_s`), decoded once at `finish`
    through the offline pipeline, as one result."""

    def __init__(
        self, final: Pipeline, decode: DecodeOptions, *, options: StreamingOptions | None = None
    ) -> None:
        self.final = final
        self.decode = decode
        self.options = options or StreamingOptions()
        self._pieces: list[np.ndarray] = []
        self._received = 0
        self._finished = False

    @property
    def seconds_received(self) -> float:
        return self._received / SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        # The whole input is one utterance, decoded at its end.
        return self._received > 0

    def feed(self, pcm: np.ndarray) -> list[Event]:
        if self._finished:
            raise RuntimeError("this session has finished; start a new one")
        pcm = np.asarray(pcm, np.float32)
        if self._received + pcm.size > self.options.max_offline_s * SAMPLE_RATE:
            raise AudioTooLongError(
                f"Offline mode keeps the whole input, and it passed "
                f"{self.options.max_offline_s:g} s; use 2pass mode for long live sessions or "
                "send the file to the HTTP jobs API."
            )
        if pcm.size:
            self._pieces.append(pcm)
            self._received += pcm.size
        return []

    def finish(self) -> list[Event]:
        if self._finished:
            return []
        self._finished = True
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.float32)
        self._pieces = []
        future: Future[list[Segment]] = Future()
        language = self.decode.language
        if audio.size == 0:
            future.set_result([])
        else:
            try:
                transcript = self.final.transcribe(audio, TranscribeOptions(decode=self.decode))
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(list(transcript.segments))
                language = transcript.info.language
        duration = audio.size / SAMPLE_RATE
        return [PendingFinal(0, 0.0, duration, future, False, language, self.options.itn)]

    def close(self) -> None:
        self._pieces = []


def _shift(segment: Segment, offset: float, end: float) -> Segment:
    def place(t: float) -> float:
        return round(min(offset + t, end), 3)

    words = tuple(replace(w, start=place(w.start), end=place(w.end)) for w in segment.words)
    return replace(segment, start=place(segment.start), end=place(segment.end), words=words)


PartialFactory = Callable[[], PartialDecoder]
