"""Several short chunks decoded in one model window, their words split back by time.

Whisper pads every chunk to a 30 s window, so a 2 s clip costs as much encoder work as 30 s of
speech. Laid end to end with a short silence between them, several short chunks (of one
request or of many concurrent ones) share one window; the aligned words then say which chunk
each belongs to. Measured on the development set's 56 clean English clips of up to 8 s
(whisper-base int8, beam 5, 2 cores, 2026-12-01): sequential faster-whisper 50.4 s at WER
9.2 %; one padded window per clip in batches of 16, 61.9 s at 8.4 %; packed with 1 s gaps,
14.0 s at 8.6 %. The model hears neighbouring clips as context and does not mind. The
figures through the CLI and the HTTP API are in docs/benchmarks-http.md.

The batcher plans the windows (`WindowPlan`), joins each window's audio (`join`), decodes the
windows with word alignment, and splits each window's segments back (`split`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from asrserve.engine.segmentation import with_words
from asrserve.engine.types import Segment, Word


@dataclass(frozen=True, slots=True)
class Placement:
    """One chunk inside a window: which chunk, and where it starts and ends there."""

    item: int
    """The chunk's index in the planned sequence."""
    start: float
    end: float


@dataclass(slots=True)
class Window:
    """Chunks decoded together, in order, `gap_s` of silence apart."""

    placements: list[Placement] = field(default_factory=list)
    packable: bool = True

    @property
    def end(self) -> float:
        return self.placements[-1].end if self.placements else 0.0

    @property
    def items(self) -> list[int]:
        return [p.item for p in self.placements]

    @property
    def packed(self) -> bool:
        return len(self.placements) > 1


class WindowPlan:
    """First fit in arrival order: each chunk goes into the first window it fits in.

    A chunk marked not packable (speech Whisper already skipped once, audio the VAD heard no
    speech in) gets a window of its own, as does one too long to share.
    """

    def __init__(self, window_s: float, gap_s: float) -> None:
        self.window_s = window_s
        self.gap_s = gap_s
        self.windows: list[Window] = []
        self._count = 0

    def __len__(self) -> int:
        return len(self.windows)

    def fits(self, duration: float, packable: bool = True) -> Window | None:
        """The window a chunk of `duration` seconds would join, None if it needs a new one."""
        if not packable:
            return None
        for window in self.windows:
            if window.packable and window.end + self.gap_s + duration <= self.window_s:
                return window
        return None

    def add(self, duration: float, packable: bool = True) -> None:
        window = self.fits(duration, packable)
        if window is None:
            window = Window(packable=packable)
            self.windows.append(window)
            start = 0.0
        else:
            start = window.end + self.gap_s
        window.placements.append(Placement(self._count, start, start + duration))
        self._count += 1


def join(audio: Sequence[np.ndarray], window: Window, sample_rate: int) -> np.ndarray:
    """The window's audio: its chunks at their placements, silence between them."""
    out = np.zeros(round(window.end * sample_rate), dtype=np.float32)
    for placement in window.placements:
        piece = audio[placement.item]
        at = round(placement.start * sample_rate)
        out[at : at + piece.size] = piece[: out.size - at]
    return out


def split(segments: Sequence[Segment], window: Window) -> list[list[Segment]]:
    """Each chunk's segments, on the chunk's own timeline, in the window's chunk order.

    A word belongs to the chunk its end falls in, or to the chunk before when it ends in the
    silence between them: the alignment gives a word after a pause a start at the end of the
    word before, across the whole pause, while its end stays where the word ends (measured on
    packed playing-card commands: by the middle of each word, "seven of clubs and" / "run you
    through"; by its end, every word where it was said). A segment whose words fall in
    several chunks is cut between them. Segment-level scores are the window's.
    """
    placements = window.placements
    cuts = [p.start for p in placements[1:]]

    def home(end: float) -> int:
        return bisect.bisect_left(cuts, end)

    out: list[list[Segment]] = [[] for _ in placements]
    for segment in segments:
        if not segment.words:
            index = home(segment.end)
            out[index].append(_placed(segment, placements[index]))
            continue
        groups: dict[int, list[Word]] = {}
        for word in segment.words:
            groups.setdefault(home(word.end), []).append(word)
        for index, words in groups.items():
            part = segment if len(groups) == 1 else with_words(segment, words)
            out[index].append(_placed(part, placements[index]))
    return [[replace(s, id=i) for i, s in enumerate(sorted(group, key=_start))] for group in out]


def _start(segment: Segment) -> float:
    return segment.start


def _placed(segment: Segment, placement: Placement) -> Segment:
    """`segment` moved onto the chunk's timeline and clipped to the chunk."""
    length = placement.end - placement.start

    def move(t: float) -> float:
        return round(min(max(t - placement.start, 0.0), length), 3)

    words = tuple(replace(w, start=move(w.start), end=move(w.end)) for w in segment.words)
    return replace(segment, start=move(segment.start), end=move(segment.end), words=words)
