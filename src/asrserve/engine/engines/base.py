"""The contract every recognition engine implements."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np

from asrserve.engine.options import DecodeOptions
from asrserve.engine.types import LanguageGuess, Segment


@dataclass(frozen=True, slots=True)
class EngineInfo:
    name: str
    """The engine family: `whisper`, `pocketsphinx` or `vosk`."""
    model: str
    """The model name as the catalogue or the user gave it."""
    languages: frozenset[str] | None
    """Languages the model decodes; None means multilingual with language identification."""
    max_chunk_s: float
    """Longest chunk one `transcribe_chunks` item may be."""
    supports_translation: bool = False
    fixed_window: bool = False
    """Every chunk costs a whole `max_chunk_s` window however short it is (Whisper pads to
    30 s), so the batcher packs short chunks into shared windows."""
    workers: int = 1
    """How many `transcribe_chunks` calls may run at once; the batcher decodes that many
    batches side by side."""
    device: str = "cpu"
    """Where the model runs: `cpu` or `cuda`."""
    compute_type: str = "default"
    """The numeric type it decodes in (CTranslate2's: int8, float16...)."""
    token_logprobs: bool = False
    """Its segments' `avg_logprob` is the decoder's mean token log-probability (Whisper's), on
    the scale of `DecodeOptions.log_prob_threshold`; engines without one average the logs of
    their word confidences, which that threshold was never measured on."""


@runtime_checkable
class Engine(Protocol):
    """A loaded model. The batcher calls it from `info.workers` threads at once, at most."""

    @property
    def info(self) -> EngineInfo: ...

    def detect_language(
        self, audio: Sequence[np.ndarray], candidates: Collection[str] = ()
    ) -> LanguageGuess:
        """The language of all of `audio` (speech chunks, 16 kHz float32) taken together, with
        its probability; among `candidates` only, when some are given."""
        ...

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        """Decode each chunk independently. Returns one segment list per chunk, with times
        relative to the chunk's start and segment ids starting at 0. `options.language` is
        already resolved (never None) for single-language models and after detection."""
        ...


class IncrementalStream(Protocol):
    """One live audio stream of an incremental engine (`IncrementalEngine.open_stream`)."""

    def accept(self, audio: np.ndarray) -> str:
        """Decode more audio (16 kHz mono float32); the utterance's text so far."""
        ...

    def finish(self) -> list[Segment]:
        """End the utterance: its segments. The stream is then ready for the next one."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class IncrementalEngine(Engine, Protocol):
    """An engine that also decodes a live stream as it arrives (PocketSphinx, Vosk)."""

    def open_stream(self, *, final_pass: bool = True) -> IncrementalStream:
        """Start decoding one live stream. With `final_pass`, each `finish()` returns what the
        batch path would decode for the utterance, not the last live hypothesis."""
        ...


class ClosingStream:
    """`with engine.open_stream() as stream:` for the incremental engines' streams."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
