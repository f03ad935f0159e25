"""Which speech regions a decode left without words, and how their repair is spliced in."""

from __future__ import annotations

from dataclasses import replace

from asrserve.engine import Segment, Word
from asrserve.engine.coverage import splice, uncovered_spans, unheard_dropped
from asrserve.engine.types import SpeechSpan


def segment(*items: tuple[float, float, str]) -> Segment:
    words = tuple(Word(s, e, w, 0.9) for s, e, w in items)
    return Segment(0, words[0].start, words[-1].end, "".join(w.word for w in words), words)


PAD = 0.3  # the VAD's default speech_pad_ms
THREE_PROMPTS = [SpeechSpan(0.0, 4.0), SpeechSpan(5.0, 9.0), SpeechSpan(10.0, 14.0)]


def test_a_skipped_repeat_is_found() -> None:
    # The sentence said three times came out twice: the middle region holds no word.
    said = [segment((0.4, 1.5, " Go"), (1.5, 3.6, " forward.")),
            segment((10.4, 11.5, " Go"), (11.5, 13.6, " forward."))]  # fmt: skip
    assert uncovered_spans(said, THREE_PROMPTS, pad_s=PAD) == [THREE_PROMPTS[1]]


def test_a_word_stretched_a_little_into_a_skipped_region_does_not_cover_it() -> None:
    said = [segment((0.4, 1.5, " Go"), (1.5, 5.9, " forward."))]
    assert uncovered_spans(said, THREE_PROMPTS, pad_s=PAD) == THREE_PROMPTS[1:]


def test_a_word_stretched_over_the_next_saying_does_not_cover_it() -> None:
    # Measured (2026-12-07): a sentence said twice 0.4 s apart came out once, its last word
    # stretched from 2.4 s over the whole second saying.
    spans = [SpeechSpan(0.0, 3.37), SpeechSpan(3.8, 7.37), SpeechSpan(8.44, 9.77)]
    said = [segment((0.0, 0.24, " And"), (0.24, 1.22, " tender"), (1.22, 2.4, " churl"),
                    (2.4, 7.0, " niggarding."))]  # fmt: skip
    assert uncovered_spans(said, spans, pad_s=PAD) == spans[1:]
    repair = [segment((0.2, 0.5, " And"), (0.5, 1.4, " tender"), (1.4, 2.2, " churl"),
                      (2.2, 3.2, " niggarding."))]  # fmt: skip
    out = splice(said, [(spans[1], repair)], spans)
    # The stretched word stays with the saying it starts in, ending where the repair begins.
    assert [s.text for s in out] == [" And tender churl niggarding."] * 2
    assert out[0].end == 3.8 and out[1].start == 4.0


def test_regions_with_words_and_whole_silent_chunks_need_nothing() -> None:
    every = [segment((0.4, 3.6, " one")), segment((5.4, 8.6, " two")),
             segment((10.4, 13.6, " three"))]  # fmt: skip
    assert uncovered_spans(every, THREE_PROMPTS, pad_s=PAD) == []
    # Nothing decoded at all: the decoder judged the chunk silent, not a lost repeat.
    assert uncovered_spans([], THREE_PROMPTS, pad_s=PAD) == []
    # A single region is the whole chunk: decoding it again alone would change nothing.
    assert uncovered_spans([segment((0.4, 1.0, " hi"))], [SpeechSpan(0.0, 4.0)], pad_s=PAD) == []


def test_regions_too_short_to_judge_are_left_alone() -> None:
    spans = [SpeechSpan(0.0, 4.0), SpeechSpan(5.0, 5.7)]
    assert uncovered_spans([segment((0.4, 3.6, " one"))], spans, pad_s=PAD) == []


def test_a_word_less_segment_covers_its_time() -> None:
    bare = [Segment(0, 0.0, 4.0, " one"), Segment(1, 5.0, 9.0, " two")]
    assert uncovered_spans(bare, THREE_PROMPTS, pad_s=PAD) == [THREE_PROMPTS[2]]


def test_the_repair_takes_its_place_in_time_order_and_replaces_what_was_there() -> None:
    # The first decode stretched one sentence over two regions; the second region's repair
    # replaces the stray word and splits the segment that ran across it.
    first = [segment((0.4, 1.5, " Go"), (1.5, 3.6, " forward."), (6.0, 8.0, " forward."),
                     (10.4, 13.6, " Stop."))]  # fmt: skip
    repair = [segment((0.2, 1.2, " Go"), (1.2, 3.5, " forward."))]
    out = splice(first, [(THREE_PROMPTS[1], repair)], THREE_PROMPTS)
    assert [s.text for s in out] == [" Go forward.", " Go forward.", " Stop."]
    assert [s.id for s in out] == [0, 1, 2]
    assert [(s.start, s.end) for s in out] == [(0.4, 3.6), (5.2, 8.5), (10.4, 13.6)]
    starts = [w.start for s in out for w in s.words]
    assert starts == sorted(starts)


def test_words_in_the_pause_before_a_repaired_region_stay() -> None:
    # VAD off: the decoder heard words where the VAD heard none; the repair decodes only the
    # region, so they would not come back. A word mostly inside the region is the region's.
    spans = [SpeechSpan(0.0, 3.0), SpeechSpan(20.0, 25.0)]
    first = [segment((0.5, 2.5, " one"), (6.0, 9.0, " missed"), (10.0, 14.0, " by"),
                     (19.0, 21.5, " two"))]  # fmt: skip
    out = splice(first, [(spans[1], [segment((0.5, 2.0, " two"))])], spans)
    assert [s.text for s in out] == [" one missed by", " two"]


def test_spliced_segments_never_overlap() -> None:
    first = [segment((0.4, 5.3, " Hello."))]
    repair = [segment((0.0, 2.0, " Again."))]
    out = splice(
        first, [(SpeechSpan(5.0, 9.0), repair)], [SpeechSpan(0.0, 4.8), SpeechSpan(5.0, 9.0)]
    )
    assert [s.text for s in out] == [" Hello.", " Again."]
    assert out[1].start >= out[0].end


def test_text_outside_speech_goes_only_when_the_decoder_doubts_it_too() -> None:
    # VAD off: one region of speech at 0-4 s, and text at 6-7 s where the VAD heard none.
    spans = [SpeechSpan(0.0, 4.0)]
    said = segment((0.4, 3.6, " Hello."))

    def outside(no_speech: float, logprob: float) -> Segment:
        return replace(segment((6.0, 7.0, " Yeah.")), id=1, no_speech_prob=no_speech,
                       avg_logprob=logprob)  # fmt: skip

    confident = outside(0.2, -0.5)  # speech the VAD missed (a whisper)
    assert unheard_dropped([said, confident], spans, 0.6, -1.0) == [said, confident]
    assert unheard_dropped([said, outside(0.8, -0.5)], spans, 0.6, -1.0) == [said]
    assert unheard_dropped([said, outside(0.4, -2.2)], spans, 0.6, -1.0) == [said]  # applause
    # Without a log-probability rule only the no-speech probability counts.
    assert unheard_dropped([said, outside(0.4, -2.2)], spans, 0.6) == [said, outside(0.4, -2.2)]
    # Text under speech is never dropped, however unlikely.
    under = replace(said, no_speech_prob=0.9, avg_logprob=-3.0)
    assert unheard_dropped([under], spans, 0.6, -1.0) == [under]
