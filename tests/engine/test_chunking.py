"""Chunk planning, segment cutting and hotword parsing: pure functions, plus VAD on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from asrserve.engine import InvalidOptionError, Segment, VadOptions, Word, decode, parse_hotwords
from asrserve.engine.segmentation import split_segment
from asrserve.engine.types import SpeechSpan
from asrserve.engine.vad import plan_chunks, speech_spans
from asrserve.evaluation.devset import Clip

SR = 16000


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def test_spans_merge_up_to_the_max_chunk_length() -> None:
    audio = silence(100)
    spans = [SpeechSpan(s, s + 8) for s in (0, 9, 18, 27, 36)]
    chunks = plan_chunks(audio, spans, VadOptions(max_chunk_s=30, max_merge_gap_s=2))
    assert [(c.start, c.end) for c in chunks] == [(0, 26), (27, 44)]
    assert all(c.audio.size == round(c.duration * SR) for c in chunks)


def test_a_long_pause_starts_a_new_chunk() -> None:
    spans = [SpeechSpan(0, 3), SpeechSpan(10, 12)]
    chunks = plan_chunks(silence(20), spans, VadOptions(max_merge_gap_s=2))
    assert [(c.start, c.end) for c in chunks] == [(0, 3), (10, 12)]


def test_without_vad_the_input_is_cut_into_windows() -> None:
    chunks = plan_chunks(silence(65), None, VadOptions(max_chunk_s=30))
    assert [(c.start, c.end) for c in chunks] == [(0, 30), (30, 60), (60, 65)]
    assert [c.index for c in chunks] == [0, 1, 2]


def test_vad_finds_the_speech_in_real_audio(jfk: Clip) -> None:
    speech = decode(jfk.audio)
    padded = np.concatenate([silence(5), speech, silence(5)])
    spans = speech_spans(padded, VadOptions())
    assert spans
    assert spans[0].start >= 4.5
    assert spans[-1].end <= 5 + jfk.duration + 0.5
    assert sum(s.duration for s in spans) > 0.6 * jfk.duration
    assert speech_spans(silence(3), VadOptions()) == []


def words(*items: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(s, e, w, 0.9) for s, e, w in items)


def test_segments_are_cut_at_sentence_ends_and_pauses() -> None:
    seg = Segment(
        0, 0.0, 9.0, " Hello there. How are you today",
        words=words((0, 0.5, " Hello"), (0.5, 1, " there."), (1.2, 1.5, " How"), (1.5, 1.8, " are"),
                    (1.8, 2.0, " you"), (4.0, 4.5, " today")),
    )  # fmt: skip
    parts = split_segment(seg)
    assert [p.text for p in parts] == [" Hello there.", " How are you", " today"]
    assert [(p.start, p.end) for p in parts] == [(0, 1), (1.2, 2.0), (4.0, 4.5)]


def test_a_long_sentence_is_capped() -> None:
    many = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" w{i}", 1.0) for i in range(80))
    seg = Segment(0, 0.0, 40.0, "".join(w.word for w in many), words=many)
    parts = split_segment(seg, max_duration_s=10)
    assert all(p.end - p.start <= 10 for p in parts)
    assert "".join(p.text for p in parts) == seg.text


def test_a_segment_without_words_stays_whole() -> None:
    seg = Segment(0, 0.0, 3.0, " text")
    assert split_segment(seg) == [seg]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('{"asrserve": 20, "FunASR": 10}', ("asrserve", "FunASR")),
        ("alpha, beta,gamma", ("alpha", "beta", "gamma")),
        ("alpha beta alpha", ("alpha", "beta")),
        ("New York,San Francisco", ("New York", "San Francisco")),
        ("", ()),
        (None, ()),
        (["x", " y "], ("x", "y")),
        ({"k": 1.0}, ("k",)),
    ],
)
def test_hotwords_in_all_client_forms(given: object, expected: tuple[str, ...]) -> None:
    assert parse_hotwords(given) == expected  # type: ignore[arg-type]


def test_broken_hotword_json_is_a_clear_error() -> None:
    with pytest.raises(InvalidOptionError, match="hotwords"):
        parse_hotwords('{"a": ')


def test_callers_starting_at_once_share_one_silero_model(
    monkeypatch: pytest.MonkeyPatch, jfk: Clip
) -> None:
    # faster-whisper's lru_cache let each of 64 files starting at once build a model of its own.
    import threading

    import faster_whisper.vad as fw_vad

    built: list[object] = []

    class Counted(fw_vad.SileroVADModel):
        def __init__(self, path: str) -> None:
            built.append(self)
            super().__init__(path)

    audio = decode(jfk.audio)[: 3 * 16000]
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        speech_spans(audio, VadOptions())

    fw_vad.get_vad_model.cache_clear()
    monkeypatch.setattr(fw_vad, "SileroVADModel", Counted)
    try:
        threads = [threading.Thread(target=run) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        fw_vad.get_vad_model.cache_clear()
    assert len(built) == 1
