"""CMU PocketSphinx: a small English recogniser that decodes frame by frame on a CPU.

Its accuracy is far below Whisper's (with the bundled language model, 41 % WER on a varied
subset of our real English clips, 61 % over all clean read clips, Shakespeare's sonnets included),
but it decodes truly incrementally, which makes it a cheap partial-result engine for live audio.
Two things about pocketsphinx 5 shape this module:

- A `Decoder` loads the whole model (about 0.25 s and 90 MB each) and is not thread-safe. The engine
  keeps one decoder for batch work behind a lock; each live stream gets a decoder of its own, and
  closed streams hand theirs back to a small idle pool so the next stream starts at once.
- Feature extraction keeps state between utterances (the noise estimate of `remove_noise`, which
  the model's `feat.params` switches on). Left alone, a chunk's transcript depends on which chunks
  the decoder saw before it; the batch path resets the front end before every chunk.
- Its calls hold the GIL while they decode: a live stream's decoding runs in a worker thread, but
  no other Python thread (the event loop included) runs meanwhile. On 40 clean read clips under a
  CPU hog (2026-12-03) a live stream cost 0.8 CPU seconds per second of audio, and one 60 ms
  chunk held the GIL for up to 0.7 s: cheap enough for a few streams, not for many.

Hotwords are ignored: pocketsphinx 5 has no way to bias its n-gram search towards given words (the
keyword-spotting search replaces transcription instead of biasing it), and words missing from the
dictionary would need pronunciations, which it cannot guess (no grapheme-to-phoneme model).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np
from pocketsphinx import Config, Decoder

from asrserve.engine.audio import SAMPLE_RATE, float32_to_pcm16
from asrserve.engine.engines.base import ClosingStream, EngineInfo
from asrserve.engine.errors import ModelError, ModelNotFoundError, UnsupportedLanguageError
from asrserve.engine.options import DecodeOptions
from asrserve.engine.segmentation import segment_of_words
from asrserve.engine.types import LanguageGuess, Segment, Word

logger = logging.getLogger(__name__)

ENGINE_NAME = "pocketsphinx"

# A pause at least this long between two words starts a new segment, so a long chunk reads as
# subtitle-sized lines the way Whisper's timestamp tokens split its output.
SEGMENT_PAUSE_S = 0.8

# All-zero audio (digital silence) makes the decoder stretch one word over the whole chunk because
# log-energy features are meaningless without any signal; a chunk whose samples never leave
# {-1, 0, 1} (in 16-bit steps) is skipped.
_SILENCE_PEAK = 1

# Shorter input cannot hold a single 25 ms analysis window plus the decoder's start frames, and
# pocketsphinx answers it with an exception instead of an empty result.
_MIN_SAMPLES = SAMPLE_RATE // 10

# Pronunciation variants come back as "word(2)"; the variant number is no part of the word.
_VARIANT = re.compile(r"\(\d+\)$")


def _is_digital_silence(pcm: bytes) -> bool:
    if not pcm:
        return True
    peak = int(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)).max())
    return peak <= _SILENCE_PEAK


def _read_fillers(noisedict: Path) -> frozenset[str]:
    """The acoustic model's filler words (`<s>`, `<sil>`, `[NOISE]`...) listed in noisedict."""
    try:
        lines = noisedict.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    return frozenset(line.split()[0] for line in lines if line.strip())


def _model_paths(model_dir: Path) -> tuple[Path, Path, Path]:
    """(acoustic model dir, language model, dictionary) inside a directory laid out like the
    wheel's `pocketsphinx/model/en-us`."""
    hmm = model_dir / "en-us"
    lm = model_dir / "en-us.lm.bin"
    dictionary = model_dir / "cmudict-en-us.dict"
    missing = [p.name for p in (hmm, lm, dictionary) if not p.exists()]
    if not model_dir.is_dir() or missing:
        raise ModelNotFoundError(
            f"The PocketSphinx model directory {model_dir} is missing "
            f"{', '.join(missing) or 'entirely'}; it must hold an acoustic model directory "
            "`en-us/`, `en-us.lm.bin` and `cmudict-en-us.dict` (as in the pocketsphinx wheel's "
            "`pocketsphinx/model/en-us`). Reinstall pocketsphinx==5.1.1 or point to such a "
            "directory."
        )
    return hmm, lm, dictionary


def _check_options(options: DecodeOptions, model: str) -> None:
    language = (options.language or "en").lower().replace("_", "-").split("-")[0]
    if language != "en":
        raise UnsupportedLanguageError(
            f"The model {model!r} only recognises English, not {options.language!r}; choose a "
            "multilingual model or leave the language unset."
        )
    # `translate` needs no check: the output is already English, which is what it asks for.
    if options.hotwords:
        logger.debug(
            "pocketsphinx cannot bias its search; ignoring %d hotwords", len(options.hotwords)
        )


class PocketSphinxEngine:
    """English recognition with the bundled PocketSphinx model.

    `transcribe_chunks` decodes each chunk as one utterance with whole-utterance normalisation
    (better than the live normalisation streams use: 61 % vs 71 % WER on our clean read clips).
    Word times come from the decoder's segmentation at 100 frames per second; word probabilities
    are the lattice posteriors. A pause of `SEGMENT_PAUSE_S` or more starts a new segment.
    Hotwords are ignored (see the module docstring).

    Thread-safe: batch decoding is serialised by a lock, each stream has its own decoder.
    """

    def __init__(
        self, model_dir: Path, *, name: str = "pocketsphinx-en", max_idle_decoders: int = 2
    ) -> None:
        """Load the model from `model_dir` (laid out like the wheel's `pocketsphinx/model/en-us`).

        `max_idle_decoders` bounds how many decoders of closed streams are kept for reuse; each
        holds about 90 MB.
        """
        model_dir = Path(model_dir)
        hmm, lm, dictionary = _model_paths(model_dir)
        self._name = name
        self._max_idle = max(0, max_idle_decoders)
        # pocketsphinx logs through its own C logger to stderr; real failures surface as exceptions.
        paths = {"hmm": str(hmm), "lm": str(lm), "dict": str(dictionary), "loglevel": "FATAL"}
        self._config = Config(**paths)
        # A live decoder's end-of-utterance passes (flat lexicon, best path) are thrown away:
        # 2pass keeps Whisper's final, online mode decodes again with `_decoder`. Left on, they
        # held the GIL up to 8.8 s at an utterance's end (40 clean read clips under a CPU hog,
        # 2026-12-03); off, at most 0.3 s, with the same partials (last-partial WER 80.2 %).
        self._live_config = Config(**paths, fwdflat=False, bestpath=False)
        self._fillers = _read_fillers(hmm / "noisedict")
        started = time.perf_counter()
        self._decoder = self._new_decoder()
        logger.info(
            "loaded pocketsphinx model %s from %s in %.2f s",
            name,
            model_dir,
            time.perf_counter() - started,
        )
        self._frame_rate = float(self._decoder.config["frate"])
        self._lock = threading.Lock()
        self._idle: list[Decoder] = []
        self._idle_lock = threading.Lock()

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            name=ENGINE_NAME, model=self._name, languages=frozenset({"en"}), max_chunk_s=600.0
        )

    def detect_language(
        self, audio: Sequence[np.ndarray], candidates: Collection[str] = ()
    ) -> LanguageGuess:
        """English: the only language this model knows."""
        return LanguageGuess("en", 1.0, (("en", 1.0),))

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        """Decode each chunk as one utterance; times are relative to the chunk's start."""
        _check_options(options, self._name)
        return [self._decode_pcm(float32_to_pcm16(chunk)) for chunk in chunks]

    def open_stream(self, *, final_pass: bool = True) -> PocketSphinxStream:
        """Start incremental decoding of one live audio stream.

        Reuses the decoder of a closed stream when one is idle; otherwise a new decoder is loaded
        (about 0.25 s). With `final_pass`, `finish()` decodes the whole utterance again the way
        `transcribe_chunks` does, so the final text equals the batch result (the live pass
        normalises with running estimates and is markedly less accurate at a stream's start).
        Without it, `finish()` gives the live pass's own result: its last hypothesis, timed.
        """
        with self._idle_lock:
            decoder = self._idle.pop() if self._idle else None
        if decoder is None:
            decoder = self._new_decoder(self._live_config)
        else:
            # Drop the previous stream's noise and normalisation estimates: another speaker.
            decoder.reinit_feat()
        return PocketSphinxStream(self, decoder, final_pass=final_pass)

    def _new_decoder(self, config: Config | None = None) -> Decoder:
        try:
            return Decoder(config or self._config)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(
                f"PocketSphinx could not load the model {self._name!r} ({exc}); the model files "
                "may be corrupt: reinstall pocketsphinx==5.1.1."
            ) from exc

    def _release(self, decoder: Decoder) -> None:
        with self._idle_lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(decoder)

    def _decode_pcm(self, pcm: bytes) -> list[Segment]:
        if len(pcm) < 2 * _MIN_SAMPLES or _is_digital_silence(pcm):
            return []
        duration = len(pcm) / 2 / SAMPLE_RATE
        with self._lock:
            decoder = self._decoder
            # Without this the noise estimate of the previous chunk leaks into this one and the
            # transcript depends on request order (measured: jfk went from 23 % to 100 % WER).
            decoder.reinit_feat()
            decoder.start_utt()
            try:
                decoder.process_raw(pcm, full_utt=True)
            finally:
                decoder.end_utt()
            tokens = _tokens(decoder)
        return _segments(tokens, self._fillers, self._frame_rate, duration)


class PocketSphinxStream(ClosingStream):
    """Incremental decoding of one live audio stream, one utterance at a time.

    Feed audio with `accept` (a partial hypothesis comes back after every call), end the utterance
    with `finish` (its segments, times relative to the utterance's first sample), then feed the
    next utterance or `close` the stream. Not thread-safe: one caller feeds a stream.
    Noise and normalisation estimates carry over between utterances of a stream (same speaker,
    same microphone), which makes later partials better than the first.
    """

    def __init__(self, engine: PocketSphinxEngine, decoder: Decoder, *, final_pass: bool) -> None:
        """Use `PocketSphinxEngine.open_stream`; this takes a decoder owned by the stream."""
        self._engine = engine
        self._decoder: Decoder | None = decoder
        self._final_pass = final_pass
        self._buffer = bytearray()
        self._in_utterance = False

    @property
    def duration(self) -> float:
        """Seconds of audio fed since the current utterance began."""
        return len(self._buffer) / 2 / SAMPLE_RATE

    def accept(self, audio: np.ndarray) -> str:
        """Decode more audio (16 kHz mono float32); returns the utterance's current hypothesis."""
        decoder = self._require_open()
        pcm = float32_to_pcm16(audio)
        if not self._in_utterance:
            decoder.start_utt()
            self._in_utterance = True
        self._buffer += pcm
        if pcm:
            decoder.process_raw(pcm)
        hypothesis = decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def finish(self) -> list[Segment]:
        """End the utterance and return its segments; the stream is then ready for another."""
        decoder = self._require_open()
        if not self._in_utterance:
            return []
        pcm = bytes(self._buffer)
        self._buffer.clear()
        self._in_utterance = False
        decoder.end_utt()
        if self._final_pass:
            return self._engine._decode_pcm(pcm)
        if len(pcm) < 2 * _MIN_SAMPLES or _is_digital_silence(pcm):
            return []
        return _segments(
            _tokens(decoder),
            self._engine._fillers,
            self._engine._frame_rate,
            len(pcm) / 2 / SAMPLE_RATE,
        )

    def close(self) -> None:
        """Abandon any unfinished utterance and give the decoder back for the next stream."""
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            return
        if self._in_utterance:
            decoder.end_utt()
            self._in_utterance = False
        self._buffer.clear()
        self._engine._release(decoder)

    def _require_open(self) -> Decoder:
        if self._decoder is None:
            raise RuntimeError("this PocketSphinx stream is closed; open a new one")
        return self._decoder


# (word, first frame, last frame inclusive, posterior probability)
_Token = tuple[str, int, int, float]


def _tokens(decoder: Decoder) -> list[_Token]:
    # `seg()` is None when the search found no path at all (for example on noise only).
    return [(s.word, s.start_frame, s.end_frame, s.prob) for s in decoder.seg() or ()]


def _is_filler(word: str, fillers: frozenset[str]) -> bool:
    # The heuristic covers fillers of other acoustic models, such as `++NOISE++`.
    return word in fillers or word.startswith(("<", "[", "+"))


def _segments(
    tokens: Iterable[_Token], fillers: frozenset[str], frame_rate: float, duration: float
) -> list[Segment]:
    """Turn the decoder's segmentation into words, grouped into segments at long pauses."""
    words: list[Word] = []
    for text, first, last, prob in tokens:
        if _is_filler(text, fillers):
            continue
        start = min(max(first / frame_rate, 0.0), duration)
        end = min(max((last + 1) / frame_rate, start), duration)
        if words and start < words[-1].end:
            start = words[-1].end
            end = max(end, start)
        probability = min(max(float(prob), 0.0), 1.0)
        words.append(Word(start, end, " " + _VARIANT.sub("", text), probability))

    groups: list[list[Word]] = []
    for word in words:
        if groups and word.start - groups[-1][-1].end < SEGMENT_PAUSE_S:
            groups[-1].append(word)
        else:
            groups.append([word])

    return [segment_of_words(index, group) for index, group in enumerate(groups)]
