"""Cut a long decoded stretch into subtitle-sized segments using its word timings.

Whisper decodes a chunk most reliably without timestamp tokens (measured: 5.6 % WER on the long
development files against 16 % with them, because with them a batched 30 s window often stops
early), which yields one segment per chunk. Sentence ends, pauses and a length cap give the
segments back, with times taken from the aligned words.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace

from asrserve.engine.types import Segment, Word

_SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
_MIN_PROBABILITY = 1e-10
"""Floor of a word's probability in a segment's mean log-probability (a 0 would be -inf)."""


def segment_of_words(index: int, words: Sequence[Word]) -> Segment:
    """One segment made of `words` (at least one), for engines that give words, not segments
    (PocketSphinx, Vosk): their span and text, and their mean log-probability."""
    logprob = sum(math.log(max(w.probability, _MIN_PROBABILITY)) for w in words) / len(words)
    return Segment(
        id=index,
        start=words[0].start,
        end=words[-1].end,
        text="".join(w.word for w in words),
        words=tuple(words),
        avg_logprob=logprob,
    )


def split_segment(
    segment: Segment, *, max_duration_s: float = 15.0, pause_s: float = 1.0
) -> list[Segment]:
    """Split after sentence-ending words, at pauses of `pause_s` or more between words, and
    before a segment would outgrow `max_duration_s`. A segment without words stays whole."""
    words = segment.words
    if len(words) < 2:
        return [segment]
    groups: list[list[Word]] = [[words[0]]]
    for previous, word in itertools.pairwise(words):
        current = groups[-1]
        sentence_ended = previous.word.rstrip().endswith(_SENTENCE_END)
        paused = word.start - previous.end >= pause_s
        too_long = word.end - current[0].start > max_duration_s
        if sentence_ended or paused or too_long:
            groups.append([word])
        else:
            current.append(word)
    if len(groups) == 1:
        return [segment]
    return [with_words(segment, group) for group in groups]


def with_words(segment: Segment, words: Sequence[Word]) -> Segment:
    """A part of `segment` holding only `words` (in order, at least one): its text and times
    come from them; token ids no longer match and are dropped."""
    return replace(
        segment,
        start=words[0].start,
        end=max(words[-1].end, words[0].start),
        text="".join(w.word for w in words),
        words=tuple(words),
        tokens=(),
    )
