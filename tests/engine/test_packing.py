"""Planning shared windows and splitting a shared window's segments back, on made-up words."""

from __future__ import annotations

import numpy as np
import pytest

from asrserve.engine import Segment, Word
from asrserve.engine.packing import WindowPlan, join, split

SR = 16000


def plan(durations: list[float], *, packable: list[bool] | None = None) -> WindowPlan:
    windows = WindowPlan(window_s=30.0, gap_s=1.0)
    for duration, ok in zip(durations, packable or [True] * len(durations), strict=True):
        windows.add(duration, ok)
    return windows


def test_first_fit_keeps_arrival_order_inside_each_window() -> None:
    windows = plan([20, 5, 12, 3, 4]).windows
    assert [w.items for w in windows] == [[0, 1, 3], [2, 4]]
    assert [(p.start, p.end) for p in windows[0].placements] == [(0, 20), (21, 26), (27, 30)]


def test_chunks_that_may_not_share_and_chunks_too_long_to_share_stand_alone() -> None:
    windows = plan([2, 2, 2, 29.5], packable=[True, False, True, True]).windows
    assert [w.items for w in windows] == [[0, 2], [1], [3]]
    assert [w.packed for w in windows] == [True, False, False]


def test_join_places_each_chunk_at_its_start_with_silence_between() -> None:
    audio = [np.full(SR, 0.1, np.float32), np.full(2 * SR, 0.2, np.float32)]
    (window,) = plan([1, 2]).windows
    joined = join(audio, window, SR)
    assert joined.size == 4 * SR
    assert np.all(joined[:SR] == np.float32(0.1))
    assert np.all(joined[SR : 2 * SR] == 0)
    assert np.all(joined[2 * SR :] == np.float32(0.2))


def word(start: float, end: float, text: str) -> Word:
    return Word(start, end, text, 0.9)


def test_a_segment_running_across_chunks_is_cut_between_them() -> None:
    # Chunks at 0-4 s and 5-9 s: the cut is at 4.5 s, the middle of the gap.
    (window,) = plan([4, 4]).windows
    segment = Segment(
        0, 0.2, 8.0, " one two three",
        words=(word(0.2, 1.0, " one"), word(3.9, 4.7, " two"), word(5.5, 8.0, " three")),
        avg_logprob=-0.2,
    )  # fmt: skip
    first, second = split([segment], window)
    assert [s.text for s in first] == [" one two"]
    assert first[0].words[-1].end == 4.0  # clipped to the chunk it went home to
    assert [s.text for s in second] == [" three"]
    assert (second[0].start, second[0].end) == (0.5, 3.0)
    assert second[0].avg_logprob == -0.2  # the window's scores stay with every part


def test_a_word_goes_where_it_ends_however_far_back_its_start_was_stretched() -> None:
    # The alignment starts a word after a pause where the word before ended: " and" was
    # said in the second chunk (5-9 s) but starts in the first.
    (window,) = plan([4, 4]).windows
    segments = [
        Segment(
            0, 0.0, 6.0, " clubs and", words=(word(0.0, 1.1, " clubs"), word(1.1, 5.6, " and"))
        ),
        Segment(1, 5.6, 6.0, " run", words=(word(5.6, 6.0, " run"),)),
    ]
    first, second = split(segments, window)
    assert [s.text for s in first] == [" clubs"]
    assert [s.text for s in second] == [" and", " run"]
    assert [s.id for s in second] == [0, 1]
    assert (second[0].words[0].start, second[0].words[0].end) == (0.0, 0.6)


def test_a_word_that_ends_in_the_silence_stays_with_the_chunk_before() -> None:
    (window,) = plan([4, 4]).windows
    (segment,) = split([Segment(0, 3.0, 4.9, " late", words=(word(3.5, 4.9, " late"),))], window)[0]
    assert segment.text == " late"
    assert segment.words[0].end == 4.0


def test_a_segment_without_words_goes_where_it_ends() -> None:
    (window,) = plan([4, 4, 4]).windows
    out = split([Segment(0, 5.5, 8.5, " unaligned")], window)
    assert [[s.text for s in chunk] for chunk in out] == [[], [" unaligned"], []]
    assert (out[1][0].start, out[1][0].end) == (0.5, 3.5)


@pytest.mark.parametrize("gap", [0.0, 0.5])
def test_nothing_is_lost_or_doubled_in_the_split(gap: float) -> None:
    windows = WindowPlan(30.0, gap)
    for duration in (3.0, 2.5, 4.0):
        windows.add(duration)
    (window,) = windows.windows
    words = tuple(word(t, t + 0.3, f" w{i}") for i, t in enumerate(np.arange(0.0, 10.0, 0.4)))
    out = split([Segment(0, 0.0, window.end, "".join(w.word for w in words), words)], window)
    assert [w.word for chunk in out for s in chunk for w in s.words] == [w.word for w in words]
