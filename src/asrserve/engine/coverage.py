"""Finding speech that a decode left without words, and splicing its repair back in.

Whisper decoding a window that holds the same sentence two or three times (read-back, menus,
"thank you, thank you") tends to write it once: the other repeats are simply not in the text,
and the aligned words leave their stretch of the window empty. The VAD knows where speech was,
so a chunk whose words cover some of its speech regions but not others has lost words; the
regions left empty are decoded again on their own, where nothing repeats.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace

from asrserve.engine.segmentation import with_words
from asrserve.engine.types import Segment, SpeechSpan, Word

MIN_SPEECH_S = 0.3
"""A region with less unpadded speech than this is too short to be sure a word was lost."""
MIN_COVERED = 0.5
"""A region whose words span less than this share of it was (at least partly) skipped: the
alignment stretches the words next to a skipped repeat into it, but not across most of it.
A region taken for skipped when it was not costs one more decode, not a duplicate: its repair
replaces the words the first decode put there."""


def uncovered_spans(
    segments: Sequence[Segment], spans: Sequence[SpeechSpan], *, pad_s: float
) -> list[SpeechSpan]:
    """Speech regions of a chunk that decoded words (or word-less segments) barely overlap.

    Each region is first shrunk by the VAD's padding (`pad_s`), so a word of the neighbouring region
    that the alignment stretched into the pad does not count as covering it; nor does the part
    of a word past the end of the region it starts in. Returns nothing
    unless some region is covered: a chunk with no words at all was judged silent as a whole,
    and decoding its pieces again would only invite text where the model heard none.
    """
    marks = _marks(segments, spans)
    if not marks or len(spans) < 2:
        return []
    empty = []
    for span in spans:
        inset = min(pad_s, span.duration / 3)
        low, high = span.start + inset, span.end - inset
        if high - low < MIN_SPEECH_S:
            continue
        if _covered(marks, low, high) < MIN_COVERED * (high - low):
            empty.append(span)
    return empty


def _region_of(start: float, spans: Sequence[SpeechSpan]) -> int | None:
    """The speech region a word starting at `start` belongs to: the one it starts in, or the
    next one when it starts in the pause before it. `spans` are in time order (the VAD's)."""
    return next((i for i, span in enumerate(spans) if start < span.end), None)


def _within_own_region(
    start: float, end: float, spans: Sequence[SpeechSpan]
) -> tuple[float, float]:
    """A word's time cut at the end of its region. No word runs across a pause the VAD heard
    no speech in: one that does was stretched by the alignment over a repeat the decoder
    skipped (measured: "niggarding." from 2.4 s to 7.0 s, over the whole second saying of its
    sentence, 3.8-7.4 s)."""
    region = _region_of(start, spans)
    return (start, end) if region is None else (start, max(start, min(end, spans[region].end)))


def barely_heard(segments: Sequence[Segment], duration: float) -> bool:
    """Whether the words a shared window gave a chunk cover less than `MIN_COVERED` of the
    middle two thirds of it: Whisper passed over the chunk, and a word or two of its
    neighbours' (or of its own) landed there. Measured: a 5 s podcast line packed with others
    came back as "No."; decoded alone, it came back whole."""
    marks = _marks(segments)
    low, high = duration / 6, duration * 5 / 6
    return _covered(marks, low, high) < MIN_COVERED * (high - low)


def _marks(
    segments: Sequence[Segment], spans: Sequence[SpeechSpan] | None = None
) -> list[tuple[float, float]]:
    """The times the decode put text at: its words (each cut at the end of its speech region,
    given the regions), and word-less segments with text."""
    marks = [
        (w.start, w.end) if spans is None else _within_own_region(w.start, w.end, spans)
        for s in segments
        for w in s.words
    ]
    return marks + [(s.start, s.end) for s in segments if not s.words and s.text.strip()]


def _covered(marks: Sequence[tuple[float, float]], low: float, high: float) -> float:
    """Seconds of [low, high] inside the union of the marks."""
    total = 0.0
    reached = low
    for start, end in sorted(marks):
        start, end = max(start, reached), min(end, high)
        if end > start:
            total += end - start
            reached = end
    return total


def unheard_dropped(
    segments: Sequence[Segment],
    spans: Sequence[SpeechSpan],
    no_speech_threshold: float,
    log_prob_threshold: float | None = None,
) -> list[Segment]:
    """Segments without those that overlap no speech region and that the decoder itself does
    not take for speech either: it gave them a no-speech probability of `no_speech_threshold`
    or more, or (given a `log_prob_threshold`: the decoder's own token log-probabilities, not
    word confidences) the decode it chose among the temperatures it tried stayed below it.

    With VAD filtering off, Whisper writes "you" on digital silence (no-speech 0.73) and
    "Yeah." on pink noise (0.81) with likely enough tokens for its own silence rule to keep
    them. Applause (2026-12-07, an AVX2 processor) came out at no-speech 0.39 as "That's a good
    day." (log-probability -2.18 at temperature 0.6), and as other sampled sentences from run to
    run. Speech the VAD missed decodes likely enough: the only other text outside its regions
    in the English and Czech development sets (175 clips, VAD off) was a whispered sentence at
    -0.93 and a hesitation "uh," at -0.47.
    """

    def unheard(s: Segment) -> bool:
        if any(span.end > s.start and span.start < s.end for span in spans):
            return False
        unlikely = log_prob_threshold is not None and s.avg_logprob < log_prob_threshold
        return s.no_speech_prob >= no_speech_threshold or unlikely

    kept = [s for s in segments if not unheard(s)]
    return kept if len(kept) == len(segments) else [replace(s, id=i) for i, s in enumerate(kept)]


def splice(
    segments: Sequence[Segment],
    repairs: Sequence[tuple[SpeechSpan, Sequence[Segment]]],
    spans: Sequence[SpeechSpan],
) -> list[Segment]:
    """The chunk's segments with each repaired region's segments placed at its time.

    The repair replaces what the first decode put inside the region (the words that belong to
    it among the chunk's speech regions, `spans`: see `_region_of`), and segments of the first
    decode that run across a region are cut there, so the result stays in time order. Repair
    segments are relative to their region.
    """
    repaired = [span for span, _ in repairs]
    starts = sorted(span.start for span in repaired)
    out: list[Segment] = []
    for segment in segments:
        kept = _without_words_in(segment, repaired, spans)
        if kept is not None:
            out.extend(_cut_at(kept, starts))
    for span, decoded in repairs:
        out.extend(_shifted(s, span.start) for s in decoded)
    out.sort(key=lambda s: (s.start, s.end))
    ordered: list[Segment] = []
    for segment in out:
        floor = ordered[-1].end if ordered else segment.start
        ordered.append(replace(_not_before(segment, floor), id=len(ordered)))
    return ordered


def _without_words_in(
    segment: Segment, repaired: Sequence[SpeechSpan], spans: Sequence[SpeechSpan]
) -> Segment | None:
    """`segment` without its words that belong to a repaired region, and with the words
    before such a region ending where it starts (a stretched word would push the repair
    later)."""

    def inside(word: Word) -> bool:
        region = _region_of(word.start, spans)
        if region is None or spans[region] not in repaired:
            return False
        # A word in the pause before the region stays unless most of it is in the region: the
        # repair decodes only the region, so it would not come back.
        return (word.start + word.end) / 2 >= spans[region].start

    if not segment.words:
        return segment
    words = [_ending_by(w, repaired) for w in segment.words if not inside(w)]
    if words == list(segment.words):
        return segment
    return with_words(segment, words) if words else None


def _ending_by(word: Word, repaired: Sequence[SpeechSpan]) -> Word:
    """`word`, ending no later than the start of the next repaired region."""
    later = [span.start for span in repaired if span.start > word.start]
    if not later or word.end <= min(later):
        return word
    return replace(word, end=min(later))


def _cut_at(segment: Segment, starts: Sequence[float]) -> list[Segment]:
    if not segment.words:
        return [segment]
    groups: dict[int, list[Word]] = {}
    for word in segment.words:
        groups.setdefault(bisect.bisect_right(starts, word.start), []).append(word)
    if len(groups) == 1:
        return [segment]
    return [with_words(segment, words) for _, words in sorted(groups.items())]


def _not_before(segment: Segment, floor: float) -> Segment:
    """The first decode's alignment may stretch a word into the repaired region next to it;
    clip it so that segments never overlap."""
    if segment.start >= floor:
        return segment
    words = tuple(
        replace(w, start=max(w.start, floor), end=max(w.end, floor)) for w in segment.words
    )
    return replace(segment, start=floor, end=max(segment.end, floor), words=words)


def _shifted(segment: Segment, offset: float) -> Segment:
    def move(t: float) -> float:
        return round(t + offset, 3)

    return replace(
        segment,
        start=move(segment.start),
        end=move(segment.end),
        words=tuple(replace(w, start=move(w.start), end=move(w.end)) for w in segment.words),
    )
