"""Chunk planning, segment cutting and hotword parsing: pure functions, plus VAD on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from asrserve.engine import InvalidOptionError, Segment, VadOptions, Word, decode, parse_hotwords
from asrserve.engine.segmentation import split_segment
from asrserve.engine.types import SpeechSpan
from asrserve.engine.vad import fresh_starts, plan_chunks, speech_spans
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


def test_silero_starts_afresh_once_per_long_pause(jfk: Clip) -> None:
    speech = decode(jfk.audio)
    audio = np.concatenate([silence(3), speech, silence(1), speech, silence(3)])
    starts = fresh_starts(audio, quiet_below=0.35, quiet_windows=62)
    # 62 windows of 32 ms (2 s) in a row: in the leading silence, not in the pause of 1.7 s
    # between the two speeches, and 2 s after the last word.
    last_word = speech_spans(audio, VadOptions())[-1].end - 0.3  # less its padding
    assert starts[:2] == [0, 62 * 512] and len(starts) == 3, starts
    assert 1.9 < starts[2] / SR - last_word < 2.5, (starts, last_word)
    assert fresh_starts(silence(1.5), quiet_below=0.35, quiet_windows=62) == [0]


def test_a_file_of_two_recordings_keeps_the_second_ones_speech(en_clips: list[Clip]) -> None:
    # Silero's state carried from the first recording (27 s of one speaker) scored the second's
    # first 12 s of speech below 0.1: one state over the file found no speech from 26.1 s to
    # 41.5 s, and an upload lost two sentences.
    by_id = {c.id: c for c in en_clips}
    first, second = (decode(by_id[i].audio) for i in ("mfa-acoustic_corpus", "mfa-cold_corpus"))
    audio = np.concatenate([silence(0.5), first, silence(2.0), second, silence(1.5)])
    second_at = 0.5 + first.size / SR + 2.0
    alone = speech_spans(second, VadOptions())
    heard = [s for s in speech_spans(audio, VadOptions()) if s.end > second_at]
    assert heard[0].start - second_at < alone[0].start + 0.5, (heard[0], alone[0])
    heard_s = sum(s.duration for s in heard)
    assert heard_s > 0.9 * sum(s.duration for s in alone), heard


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
