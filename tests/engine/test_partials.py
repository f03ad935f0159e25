"""Live partials: under load, driven by a test-controlled submitter (counts and order exact,
whatever the machine is doing); and the fitted window they decode in, on real speech."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import numpy as np

from asrserve.engine import (
    DecodeOptions,
    ModelRegistry,
    Segment,
    StreamingOptions,
    decode,
)
from asrserve.engine.partials import WhisperPartials
from asrserve.evaluation.devset import Clip, clean_read
from asrserve.evaluation.wer import normalize, word_errors
from tests.engine.conftest import Inline

if TYPE_CHECKING:
    from asrserve.engine.engines.whisper import WhisperEngine

SR = 16000
CHUNK = 960  # 60 ms
EN = DecodeOptions(language="en")
EVERY_HALF_SECOND = StreamingOptions(partial_interval_s=0.5, partial_fitted_pad_s=2.0)
UNFITTED = replace(EVERY_HALF_SECOND, partial_fitted_pad_s=None)
LOOPING_CLIPS = (
    "mfa-common_voice_en_22058266",
    "mfa-common_voice_en_22058267",
    "mfa-mfa_crossword",
    "mfa-multilingual_ipa_us",
    "psx-cards-004",
)
"""tiny.en, beam 5, in a window fitted + 2 s, repeats itself on each of these ("Firefox Firefox
Firefox", "... four games to go. With only like four games to") on AVX, AVX2 and AVX-512."""


class Submitter:
    """Answers each decode at once with its number (or never, with `answer=False`)."""

    def __init__(self, *, answer: bool = True) -> None:
        self.answer = answer
        self.sizes: list[int] = []
        self.options: list[DecodeOptions] = []

    def submit(self, audio: np.ndarray, options: DecodeOptions) -> Future[list[Segment]]:
        self.sizes.append(audio.size)
        self.options.append(options)
        future: Future[list[Segment]] = Future()
        if self.answer:
            future.set_result([Segment(0, 0.0, audio.size / SR, f"decode {len(self.sizes)}")])
        return future


class Pace:
    def __init__(self, interval: float | None) -> None:
        self.interval = interval
        self.skipped = 0
        self.asked_first: list[bool] = []

    def partial_interval(self, normal_s: float, *, first: bool = False) -> float | None:
        self.asked_first.append(first)
        return self.interval

    def skipped_partial(self) -> None:
        self.skipped += 1


def speak(partials: WhisperPartials, seconds: float) -> list[str]:
    utterance = np.zeros(int(seconds * SR), np.float32)
    texts = []
    for end in range(CHUNK, utterance.size + 1, CHUNK):
        texts.append(partials.update(utterance[:end], utterance[end - CHUNK : end]))
    return texts


def test_a_partial_every_interval_of_speech_in_a_fitted_window() -> None:
    submitter, pace = Submitter(), Pace(0.5)
    partials = WhisperPartials(submitter, EN, EVERY_HALF_SECOND, pace=pace)
    texts = speak(partials, 6.0)
    # 0.5 s is 8000 samples: the first chunk boundary past it is 9 chunks (8640), and so on.
    assert submitter.sizes == [8640 * k for k in range(1, 12)]
    assert pace.skipped == 0
    # Each answer shows from the next chunk on: the stream never waits for a decode.
    assert texts[8] == "" and texts[9] == "decode 1" and texts[-1] == "decode 11"
    decode = submitter.options[0]
    assert decode.fitted_window_pad_s == 2.0 and decode.beam_size == 1
    assert not decode.word_timestamps


def test_fewer_partials_under_load_each_skip_counted_once() -> None:
    submitter, pace = Submitter(), Pace(1.5)
    partials = WhisperPartials(submitter, EN, EVERY_HALF_SECOND, pace=pace)
    speak(partials, 6.0)
    # 1.5 s is 24000 samples = 25 chunks.
    assert submitter.sizes == [24000 * k for k in range(1, 5)]
    # Between decodes, the normal-pace partials due at 0.5 s and 1.0 s of each 1.5 s were held.
    assert pace.skipped == 8
    # The pace is asked about the utterance's first partial as such until it was submitted.
    assert pace.asked_first[0] and not pace.asked_first[-1]
    assert pace.asked_first.count(True) == 25 - 9 + 1, "from 0.5 s of speech to 1.5 s"


def test_no_partials_while_only_finals_are_decoded() -> None:
    submitter, pace = Submitter(), Pace(None)
    partials = WhisperPartials(submitter, EN, EVERY_HALF_SECOND, pace=pace)
    assert set(speak(partials, 6.0)) == {""}
    assert submitter.sizes == []
    assert pace.skipped == 11, "one per normal interval"
    # Load gone, the next partial comes at once and covers the whole utterance so far.
    pace.interval = 0.5
    utterance = np.zeros(int(6.06 * SR), np.float32)
    partials.update(utterance, utterance[-CHUNK:])
    assert submitter.sizes == [utterance.size]


def test_one_decode_in_flight_per_stream() -> None:
    submitter, pace = Submitter(answer=False), Pace(0.5)
    partials = WhisperPartials(submitter, EN, UNFITTED, pace=pace)
    speak(partials, 3.0)
    assert len(submitter.sizes) == 1
    assert pace.skipped == 4
    partials.reset()
    speak(partials, 1.0)
    assert len(submitter.sizes) == 2, "a new utterance starts afresh"


def test_online_finals_decode_with_a_beam_in_a_2pass_finals_window() -> None:
    submitter = Submitter()
    partials = WhisperPartials(submitter, EN, EVERY_HALF_SECOND)
    speak(partials, 1.0)
    assert partials.finish_utterance(np.zeros(SR, np.float32)) == "decode 2"
    partial, final = submitter.options
    assert (partial.beam_size, partial.fitted_window_pad_s, partial.fitted_window_min_s) == (
        1,
        2.0,
        0.0,
    )
    defaults = StreamingOptions()
    assert final.beam_size == defaults.online_final_beam_size > 1
    assert final.fitted_window_pad_s == defaults.final_fitted_pad_s
    assert final.fitted_window_min_s == defaults.final_fitted_min_s >= 10.0
    assert not final.word_timestamps, "online finals are text, as their partials"


def test_online_finals_of_real_speech_do_not_repeat_themselves(
    registry: ModelRegistry, en_clips: list[Clip]
) -> None:
    tiny = registry.acquire("whisper-tiny.en")
    try:
        clips = [c for c in en_clips if c.id in LOOPING_CLIPS]
        assert len(clips) == len(LOOPING_CLIPS)
        partials = WhisperPartials(Inline(tiny), EN)
        finals = [partials.finish_utterance(decode(c.audio)) for c in clips]
        for clip, text in zip(clips, finals, strict=True):
            assert len(text.split()) <= len(clip.text.split()), text
        assert word_errors([c.text for c in clips], finals).rate < 0.4, finals
    finally:
        registry.release(tiny)


def test_a_fitted_window_hears_real_speech_as_well_as_a_padded_one(
    registry: ModelRegistry, en_clips: list[Clip]
) -> None:
    tiny = registry.acquire("whisper-tiny.en")
    try:
        clips = [c for c in clean_read(en_clips) if 1.0 < c.duration < 12.0][:16]
        audio = [decode(c.audio) for c in clips]
        refs = [c.text for c in clips]
        greedy = DecodeOptions(language="en", beam_size=1, temperatures=(0.0,))
        fitted = replace(greedy, fitted_window_pad_s=2.0)
        padded_text = [_text(s) for s in tiny.engine.transcribe_chunks(audio, greedy)]
        fitted_text = [_text(s) for s in tiny.engine.transcribe_chunks(audio, fitted)]
        padded, shorter = word_errors(refs, padded_text), word_errors(refs, fitted_text)
        assert shorter.rate < 0.2, fitted_text
        assert shorter.errors <= padded.errors + 0.02 * padded.reference_words, fitted_text
        # No decode starts its text over (Whisper's habit at the end of a fitted window).
        for text in fitted_text:
            words = normalize(text).split()
            assert words[:3] not in [words[i : i + 3] for i in range(3, len(words) - 2)], text
        # The encoder gets the longest chunk plus 2 s, not 30 s (3000 frames).
        frames = cast("WhisperEngine", tiny.engine)._features(audio, 2.0).shape[-1]
        assert frames == (max(a.size for a in audio) + 2 * SR) // 160 // 2 * 2 < 3000
    finally:
        registry.release(tiny)


def _text(segments: list[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments)
