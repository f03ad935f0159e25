"""Result types shared by every engine, the pipeline, the renderers and the servers.

All times are seconds on the timeline of the original input audio.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time span and the model's confidence in it."""

    start: float
    end: float
    word: str
    """The word as the model wrote it, with its leading space and attached punctuation."""
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech decoded as one unit (a subtitle line, roughly)."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeechSpan:
    """A region the VAD judged to be speech, in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    language: str
    probability: float
    """The detection's probability for its best language (1.0 when requested)."""
    all_probabilities: tuple[tuple[str, float], ...] = ()
    source: str = "detected"
    """`requested`, `model` (the model knows one language), `detected`, or `fallback`: the
    detection was less sure than the floor and the configured fallback language is used."""


@dataclass(frozen=True, slots=True)
class TranscriptInfo:
    """What is known about an input before its segments are decoded."""

    language: str
    language_probability: float
    duration: float
    speech_duration: float
    """Seconds of audio the VAD kept (equal to `duration` when VAD is off)."""
    task: str = "transcribe"
    model: str = ""
    language_source: str = "detected"
    """Where `language` came from: see `LanguageGuess.source`."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """A whole decoded input: segments in time order plus what was detected about it."""

    info: TranscriptInfo
    segments: tuple[Segment, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return join_text(self.segments)

    @property
    def language(self) -> str:
        return self.info.language

    @property
    def duration(self) -> float:
        return self.info.duration

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)


class Mode(StrEnum):
    """FunASR's live modes: partials and a final per utterance (2pass), partials whose last
    one per utterance is its result (online), or one final per utterance (offline)."""

    OFFLINE = "offline"
    ONLINE = "online"
    TWO_PASS = "2pass"


def join_text(segments: Iterable[Segment]) -> str:
    """The segments' texts as one: each stripped, empty ones left out, one space between."""
    return " ".join(text for s in segments if (text := s.text.strip()))
