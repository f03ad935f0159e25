"""The 2-pass session on real speech fed in 60 ms chunks, as a microphone client sends it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from asrserve.engine import (
    AudioTooLongError,
    DecodeOptions,
    Final,
    LiveSession,
    LoadedModel,
    Mode,
    ModelRegistry,
    OfflineSession,
    Partial,
    PendingFinal,
    Pipeline,
    Segment,
    StreamingOptions,
    TranscribeOptions,
    TwoPassSession,
    decode,
    open_session,
)
from asrserve.engine.engines.pocketsphinx import PocketSphinxEngine
from asrserve.engine.partials import IncrementalPartials, WhisperPartials
from asrserve.engine.streaming import EarlyFinalOutcome
from asrserve.engine.vad import Endpointer, EndpointerOptions, SpeechEnded, SpeechStarted
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.wer import normalize, word_errors
from tests.engine.conftest import Inline

SR = 16000
CHUNK = 960  # 60 ms, what FunASR's microphone clients send
EN = DecodeOptions(language="en")
EVERY_HALF_SECOND = StreamingOptions(partial_interval_s=0.5, partial_fitted_pad_s=2.0)


def chunks(audio: np.ndarray) -> Iterator[np.ndarray]:
    for i in range(0, audio.size, CHUNK):
        yield audio[i : i + CHUNK]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@pytest.fixture(scope="module")
def tiny(registry: ModelRegistry) -> LoadedModel:
    return registry.acquire("whisper-tiny.en")


@pytest.fixture(scope="module")
def two_utterances(jfk: Clip, en_clips: list[Clip]) -> tuple[np.ndarray, list[Clip], float]:
    beckett = next(c for c in en_clips if c.id == "moonshine-beckett")
    lead, gap = 1.0, 2.5
    audio = np.concatenate(
        [silence(lead), decode(jfk.audio), silence(gap), decode(beckett.audio), silence(1.5)]
    )
    return audio, [jfk, beckett], lead + jfk.duration + gap


def run(
    session: LiveSession, audio: np.ndarray
) -> tuple[list[tuple[float, Partial | Final]], list[Final]]:
    """Feed the audio in 60 ms chunks; note when, in stream seconds, each event came out."""
    timeline: list[tuple[float, Partial | Final]] = []
    finals: list[Final] = []
    for piece in chunks(audio):
        for event in session.feed(piece):
            resolved = event.result(120) if isinstance(event, PendingFinal) else event
            timeline.append((session.seconds_received, resolved))
            if isinstance(resolved, Final):
                finals.append(resolved)
    for event in session.finish():
        resolved = event.result(120) if isinstance(event, PendingFinal) else event
        timeline.append((session.seconds_received, resolved))
        if isinstance(resolved, Final):
            finals.append(resolved)
    return timeline, finals


def test_partials_while_speaking_then_an_accurate_final_per_utterance(
    whisper_base: LoadedModel,
    tiny: LoadedModel,
    two_utterances: tuple[np.ndarray, list[Clip], float],
) -> None:
    audio, clips, second_start = two_utterances
    # Partials decoded at once, as a server with time to spare does: which chunk each one comes
    # with is then exact, whatever else the machine is doing.
    partials = WhisperPartials(Inline(tiny), EN, EVERY_HALF_SECOND)
    session = TwoPassSession(whisper_base.pipeline, EN, partials=partials)
    timeline, finals = run(session, audio)
    # An utterance ends at every pause of 0.6 s: phrases, not whole recordings.
    first = [f for f in finals if f.start < second_start - 0.5]
    second = [f for f in finals if f.start >= second_start - 0.5]
    assert first and second
    for group, clip in ((first, clips[0]), (second, clips[1])):
        text = " ".join(f.text for f in group)
        assert word_errors([clip.text], [text]).rate < 0.1, text
        assert any(p in text for p in ",.?!"), "finals come punctuated"
    for final in finals:
        assert final.words and all(
            final.start <= w.start <= w.end <= final.end for w in final.words
        )
    # Word times are on the stream's timeline: the second recording starts after the gap.
    assert first[0].start >= 0.5
    assert second[0].words[0].start >= second_start - 0.5
    assert [f.utterance for f in finals] == sorted(f.utterance for f in finals)
    # Partials while the person speaks, before that utterance's final.
    spoken = 0
    for final in finals:
        events = [(t, e) for t, e in timeline if e.utterance == final.utterance]
        kinds = [type(e) for _, e in events]
        assert kinds[-1] is Final and kinds.count(Final) == 1
        partial_times = [t for t, e in events if isinstance(e, Partial)]
        if final.end - final.start > 2.0:
            assert partial_times, f"no partial during a {final.end - final.start:.1f} s utterance"
            assert partial_times[0] < final.end - 0.5, "the first partial came while speaking"
            # A decode every 0.5 s, its text with the next chunk; the first, of the pre-roll and
            # a syllable, may hear nothing yet.
            assert partial_times[0] - final.start <= 1.25
            last = next(e for _, e in reversed(events) if isinstance(e, Partial))
            # tiny.en in a fitted window hears the same words as base in a padded one.
            assert word_errors([final.text], [last.text]).rate < 0.35, (last.text, final.text)
            spoken += 1
    assert spoken >= 2


def test_soft_words_after_a_pause_stay_in_the_next_utterance(
    whisper_base: LoadedModel, jfk: Clip
) -> None:
    # JFK pauses after "Americans"; "ask" then hovers around Silero's threshold. An endpointer
    # that wanted 200 ms above the threshold opened the utterance at "not" and the final read
    # "Not!": the stream lost a word the offline transcript has.
    session = TwoPassSession(whisper_base.pipeline, EN)
    _, finals = run(session, np.concatenate([silence(0.5), decode(jfk.audio), silence(1.5)]))
    assert len(finals) >= 2, "the pause after 'Americans' ends an utterance"
    joined = " ".join(f.text for f in finals)
    offline = whisper_base.pipeline.transcribe(decode(jfk.audio), TranscribeOptions(decode=EN))
    streamed, whole = word_errors([jfk.text], [joined]), word_errors([jfk.text], [offline.text])
    assert streamed.errors <= whole.errors
    assert "ask not what your country" in normalize(joined), joined


def test_a_monologue_without_pauses_is_cut_at_the_maximum_length(
    whisper_base: LoadedModel, jfk: Clip
) -> None:
    options = StreamingOptions(
        endpointing=EndpointerOptions(end_silence_ms=5000, max_utterance_s=4.0)
    )
    session = TwoPassSession(whisper_base.pipeline, EN, options=options)
    _, finals = run(session, decode(jfk.audio))
    assert len(finals) >= 3
    assert all(f.end - f.start <= 4.0 + 0.05 for f in finals)
    assert all(f.forced for f in finals[:-1])
    assert word_errors([jfk.text], [" ".join(f.text for f in finals)]).rate < 0.35


def test_offline_mode_returns_one_consolidated_result(
    whisper_base: LoadedModel, two_utterances: tuple[np.ndarray, list[Clip], float]
) -> None:
    audio, clips, _ = two_utterances
    session = open_session(whisper_base.pipeline, EN, options=StreamingOptions(mode=Mode.OFFLINE))
    assert isinstance(session, OfflineSession)
    timeline, finals = run(session, audio)
    assert len(timeline) == len(finals) == 1
    assert word_errors([" ".join(c.text for c in clips)], [finals[0].text]).rate < 0.1
    assert finals[0].end == pytest.approx(audio.size / SR, abs=0.01)


def test_online_mode_with_incremental_pocketsphinx_partials(
    whisper_base: LoadedModel, jfk: Clip
) -> None:
    model_dir = Path(__import__("pocketsphinx").get_model_path("en-us"))
    stream = PocketSphinxEngine(model_dir).open_stream(final_pass=True)
    session = TwoPassSession(
        whisper_base.pipeline, EN,
        options=StreamingOptions(mode=Mode.ONLINE, partial_interval_s=0.25),
        partials=IncrementalPartials(stream),
    )  # fmt: skip
    timeline, finals = run(session, np.concatenate([silence(0.5), decode(jfk.audio), silence(1.5)]))
    partials = [e for _, e in timeline if isinstance(e, Partial)]
    assert len(partials) >= 4
    assert finals and all(isinstance(f, Final) for f in finals)
    # PocketSphinx's end-of-utterance pass: 23 % on this clip when measured alone.
    assert word_errors([jfk.text], [" ".join(f.text for f in finals)]).rate < 0.5


def test_memory_stays_bounded_over_long_silence(whisper_base: LoadedModel) -> None:
    session = TwoPassSession(whisper_base.pipeline, EN)
    for piece in chunks(silence(60)):
        assert session.feed(piece) == []
    assert session._buffer.size < 2 * SR  # only the pre-roll tail is kept
    assert session.finish() == []


def test_endpointer_on_real_speech(jfk: Clip) -> None:
    ep = Endpointer(EndpointerOptions(end_silence_ms=700))
    events = []
    audio = np.concatenate([silence(3), decode(jfk.audio), silence(2)])
    for piece in chunks(audio):
        events += ep.feed(piece)
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert starts and ends and len(starts) == len(ends)
    assert 2.5 <= starts[0].at <= 3.5
    assert 3 + jfk.duration - 1.5 <= ends[-1].at <= 3 + jfk.duration + 1.0
    quiet = Endpointer()
    assert all(quiet.feed(p) == [] for p in chunks(silence(5)))


def test_an_utterance_whose_live_text_ends_a_sentence_ends_sooner(
    whisper_base: LoadedModel, tiny: LoadedModel, en_clips: list[Clip]
) -> None:
    beckett = next(c for c in en_clips if c.id == "moonshine-beckett")  # short sentences
    audio = np.concatenate([silence(0.5), decode(beckett.audio), silence(1.5)])

    def stream(sentence_end_ms: int | None) -> tuple[list[Final], list[float]]:
        endpointing = EndpointerOptions(sentence_end_silence_ms=sentence_end_ms)
        partials = WhisperPartials(Inline(tiny), EN, EVERY_HALF_SECOND)
        session = TwoPassSession(
            whisper_base.pipeline, EN, options=StreamingOptions(endpointing=endpointing),
            partials=partials,
        )  # fmt: skip
        timeline, finals = run(session, audio)
        # How long after its end each final's utterance was closed (stream seconds).
        waits = [t - e.end for t, e in timeline if isinstance(e, Final)]
        return finals, waits

    patient, patient_waits = stream(None)
    eager, eager_waits = stream(400)
    for finals in (patient, eager):
        text = " ".join(f.text for f in finals)
        assert word_errors([beckett.text], [text]).rate < 0.1, text
    # The same utterances or more; those past 3 s that end a sentence closed sooner (400 ms of
    # silence, not 800).
    assert len(eager) >= len(patient)
    assert min(eager_waits) < min(patient_waits) - 0.2, (eager_waits, patient_waits)


def test_a_long_stream_does_not_go_deaf_to_the_next_speaker(en_clips: list[Clip]) -> None:
    # Two recordings back to back, as the streaming benchmark plays them. With Silero's state
    # carried from the first (25 s of one speaker) the second's first 12 s of speech scored
    # below 0.1 and no utterance opened until 14 s into it: a live stream lost two sentences.
    by_id = {c.id: c for c in en_clips}
    first, second = (decode(by_id[i].audio) for i in ("mfa-acoustic_corpus", "mfa-cold_corpus"))
    audio = np.concatenate([silence(0.5), first, silence(2.0), second, silence(1.5)])
    second_at = 0.5 + first.size / SR + 2.0
    endpointer = Endpointer()
    starts = [
        event.at
        for chunk in chunks(audio)
        for event in endpointer.feed(chunk)
        if isinstance(event, SpeechStarted)
    ]
    into_second = [at - second_at for at in starts if at >= second_at]
    # Its speech begins 2.3 s in; the first words hover at Silero's threshold whatever the
    # state, so the bound leaves them a second and a half.
    assert into_second and into_second[0] < 4.0, into_second


def test_offline_mode_keeps_the_input_up_to_its_bound_and_only_offline_mode() -> None:
    # Refused before any decoding: no model is needed.
    no_model = cast(Pipeline, None)
    options = StreamingOptions(mode=Mode.OFFLINE, max_offline_s=1.0)
    session = open_session(no_model, EN, options=options)
    assert session.feed(silence(0.6)) == [] and session.speaking
    with pytest.raises(AudioTooLongError, match="Offline mode keeps the whole input"):
        session.feed(silence(0.6))
    with pytest.raises(ValueError, match="OfflineSession"):
        TwoPassSession(no_model, EN, options=options)


class Finals:
    """The final model's batcher, test-controlled: notes each submission with the stream time
    it came at; decodes it at once on `engine`, or never answers."""

    def __init__(self, engine: LoadedModel | None = None) -> None:
        self.engine = engine.engine if engine is not None else None
        self.session: LiveSession | None = None
        self.submitted: list[tuple[float, int, Future[list[Segment]]]] = []
        self.batcher = self

    def submit(self, audio: np.ndarray, options: DecodeOptions) -> Future[list[Segment]]:
        future: Future[list[Segment]] = Future()
        if self.engine is not None:
            future.set_result(self.engine.transcribe_chunks([audio], options)[0])
        at = self.session.seconds_received if self.session is not None else 0.0
        self.submitted.append((at, audio.size, future))
        return future


class Speculation:
    def __init__(self, *, allow: bool = True) -> None:
        self.allow = allow
        self.ended: list[EarlyFinalOutcome] = []

    def may_start_early_final(self) -> bool:
        return self.allow

    def early_final_ended(self, outcome: EarlyFinalOutcome) -> None:
        self.ended.append(outcome)


def pending_finals(session: TwoPassSession, audio: np.ndarray) -> list[tuple[float, PendingFinal]]:
    """Feed the audio in 60 ms chunks; each final as it is handed out, with the stream time."""
    out = []
    for piece in chunks(audio):
        out += [(session.seconds_received, e) for e in session.feed(piece)]
    out += [(session.seconds_received, e) for e in session.finish()]
    return [(t, e) for t, e in out if isinstance(e, PendingFinal)]


def test_a_final_starts_decoding_in_the_pause_before_its_endpoint(en_clips: list[Clip]) -> None:
    # Beckett pauses 0.6-0.8 s between his short sentences: pauses that end no utterance (an
    # endpoint wants 0.8 s) but are long enough to start a final early.
    beckett = next(c for c in en_clips if c.id == "moonshine-beckett")
    audio = np.concatenate([silence(1.0), decode(beckett.audio), silence(1.5)])
    finals, speculation = Finals(), Speculation()
    session = TwoPassSession(cast(Pipeline, finals), EN, speculation=speculation)
    finals.session = session
    handed = pending_finals(session, audio)
    assert len(handed) >= 2
    end_silence = EndpointerOptions().end_silence_ms / 1000
    for endpoint_at, pending in handed:  # each ended by a pause, the last one too
        at, size, _ = next(s for s in finals.submitted if s[2] is pending.future)
        # The audio the endpoint gives the utterance, submitted in the pause, well before it.
        assert size == round((pending.end - pending.start) * SR)
        assert endpoint_at >= pending.end + end_silence - 0.3 - 0.1
        assert at <= pending.end + 0.4 - 0.3 + 0.1
    # Pauses that speech broke: their decodes, still queued, were cancelled; nothing was wasted.
    assert speculation.ended.count(EarlyFinalOutcome.USED) == len(handed)
    assert speculation.ended.count(EarlyFinalOutcome.CANCELLED) >= 2
    assert EarlyFinalOutcome.WASTED not in speculation.ended
    assert all(
        f.cancelled() for _, _, f in finals.submitted if f not in {p.future for _, p in handed}
    )


def test_no_early_finals_while_the_server_says_no(en_clips: list[Clip]) -> None:
    beckett = next(c for c in en_clips if c.id == "moonshine-beckett")
    audio = np.concatenate([silence(1.0), decode(beckett.audio), silence(1.5)])
    finals, speculation = Finals(), Speculation(allow=False)
    session = TwoPassSession(cast(Pipeline, finals), EN, speculation=speculation)
    finals.session = session
    handed = pending_finals(session, audio)
    assert [f for _, _, f in finals.submitted] == [p.future for _, p in handed]
    submitted_at = [at for at, _, _ in finals.submitted]
    assert submitted_at == [endpoint_at for endpoint_at, _ in handed]
    assert speculation.ended == []


def test_an_early_final_is_the_final_the_endpoint_would_give(
    whisper_base: LoadedModel, two_utterances: tuple[np.ndarray, list[Clip], float]
) -> None:
    audio, clips, _ = two_utterances
    texts = []
    for early_ms in (400, None):
        finals = Finals(whisper_base)
        session = TwoPassSession(
            cast(Pipeline, finals), EN, options=StreamingOptions(early_final_ms=early_ms)
        )
        finals.session = session
        handed = pending_finals(session, audio)
        texts.append([(p.start, p.end, p.result(60).text) for _, p in handed])
    early, at_endpoint = texts
    assert early == at_endpoint
    joined = " ".join(t for _, _, t in early)
    assert word_errors([" ".join(c.text for c in clips)], [joined]).rate < 0.1, joined
