"""Plain option dataclasses passed down from the entry points; every field is documented."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asrserve.engine.errors import InvalidOptionError

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True, slots=True)
class AudioLimits:
    """Input limits checked while decoding, before any model work is spent on the input."""

    max_bytes: int | None = 1 << 30
    """Largest encoded input accepted, in bytes (None: no limit)."""
    max_duration_s: float | None = 4 * 3600.0
    """Longest decoded audio accepted, in seconds (None: no limit)."""


SILERO_RESET_AFTER_S = 2.0
"""Silence after which Silero's state starts afresh, live and offline: carried on for minutes,
it stops hearing speech (after 25 s of one speaker, the next recording's first 12 s scored below
0.1 against 0.5-0.96 from a fresh state)."""


@dataclass(frozen=True, slots=True)
class VadOptions:
    """Silero VAD settings and how speech regions are merged into decode chunks."""

    threshold: float = 0.5
    """Speech probability above which a 32 ms frame counts as speech."""
    min_speech_ms: int = 0
    """Speech regions shorter than this are dropped."""
    min_silence_ms: int = 500
    """Silence needed to end a speech region."""
    speech_pad_ms: int = 300
    """Padding added on each side of a speech region so word edges are not clipped."""
    max_chunk_s: float = 30.0
    """Speech regions are merged into chunks up to this length (Whisper's window is 30 s)."""
    max_merge_gap_s: float = 2.0
    """A silence longer than this starts a new chunk even if the chunk has room: the model is
    more prone to hallucinate over long silences."""
    reset_after_silence_s: float | None = SILERO_RESET_AFTER_S
    """Silero's state starts afresh after this much silence (None: one state for the file)."""


@dataclass(frozen=True, slots=True)
class BatchingOptions:
    """Dynamic batching shared by every caller of one engine."""

    max_batch_seconds: float = 240.0
    """Most audio seconds decoded in one batch (FunASR's batch_size_s)."""
    max_batch_size: int = 16
    """Most decode windows in one batch: short chunks packed into one window count once."""
    max_wait_ms: float = 50.0
    """How long a partly filled batch waits for the next chunk from other callers (counted
    from the latest chunk queued, or from the end of the last batch)..."""
    max_hold_ms: float = 250.0
    """...and how long it waits in all while chunks keep coming (counted from when the model
    was free to start it). Callers whose chunks were decoded in one batch send their next ones
    together, but 5-60 ms apart (each first decodes its file and runs the VAD): with a 10 ms
    wait, 16 concurrent callers settled into batches of 1 and 15 chunks, one whole window's
    work more per 16 chunks (2026-12-01)."""
    pack_gap_s: float | None = 0.5
    """Silence between short chunks packed into one window of a fixed-window engine
    (Whisper), on top of the VAD's padding; None decodes every chunk in a window of its own.
    The CLI on the 58 short English clips (2026-12-01): 1.0 s 21-22 s at WER 7.1 %, 0.5 s
    18-19 s at 6.6-7.5 %."""

    def __post_init__(self) -> None:
        if self.pack_gap_s is not None and self.pack_gap_s < 0:
            raise InvalidOptionError("The silence between packed chunks cannot be negative.")


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Decoder settings for one request. Chunks batch together only when these are equal."""

    language: str | None = None
    """Language code, or None to detect it."""
    task: str = "transcribe"
    """`transcribe` or `translate` (to English)."""
    beam_size: int = 5
    best_of: int = 5
    """Candidates sampled at each non-zero temperature."""
    patience: float = 1.0
    length_penalty: float = 1.0
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES
    """Tried in order: a chunk whose result looks broken is decoded again at the next one."""
    compression_ratio_threshold: float | None = 2.4
    """A gzip compression ratio above this marks a repetitive decode..."""
    loop_tokens_per_s: float = 5.0
    """...which counts as failed only if it also writes more tokens than this per second of
    audio. A looping decoder runs on far past the speaking rate, while speech that really
    says the same thing again (read-back, menus, three identical prompts in one window) stays
    at it; Whisper's ratio alone sent such windows to sampling, which wrote worse text."""
    log_prob_threshold: float | None = -1.0
    """An average token log-probability below this marks a failed decode."""
    no_speech_threshold: float | None = 0.6
    """A chunk with no-speech probability above this and a failed log-probability is silence."""
    failed_no_speech_threshold: float | None = 0.4
    """A chunk whose greedy decode failed (too unlikely or looping) is not speech already at
    this no-speech probability. Measured with the VAD off (2026-11-29): sound effects and music
    failed their greedy decode at no-speech 0.44-0.58 and were sampled into "I'm sorry." or
    "Huh."; real speech, the hardest clips included, stayed at or below 0.43 and almost always
    passed greedily. The figures move with the processor's kernels: on an AVX2 one applause
    failed at 0.39 and real speech at 0.24-0.48, so this alone cannot separate them; text
    outside the VAD's speech also goes when no temperature decoded it likely enough
    (`coverage.unheard_dropped`)."""
    initial_prompt: str | None = None
    hotwords: tuple[str, ...] = ()
    """Words or phrases the decoder is biased towards (given to Whisper as a prompt)."""
    word_timestamps: bool = True
    split_segments: bool = True
    """Cut long decodes into sentence-sized segments (needs word alignment even when word
    timestamps are not returned). Live partials turn it off."""
    without_timestamps: bool = True
    """True decodes text only and cuts segments from the aligned words: in a batch, Whisper's
    timestamp tokens often end a 30 s window early (16 % WER on the long development files
    against 5.6 % without them). False keeps Whisper's own timestamp segmentation."""
    fitted_window_pad_s: float | None = None
    """Decode in a window fitted to the audio plus this much trailing silence, instead of one
    padded to Whisper's 30 s: the encoder's work falls with the audio. For live partials, and
    with `fitted_window_min_s` for stream finals. 30 clean English development clips of 1-12 s,
    greedy (2026-12-02): tiny.en padded to 30 s WER 14.3 % in 0.62 s of one core per clip,
    fitted + 2 s 10.7 % in 0.10 s (+ 0 s loops: 418 %; + 1 s 11.0 %); base padded 11.0 %,
    fitted + 2 s 13.0 %, + 3 s 12.3 %."""
    fitted_window_min_s: float = 0.0
    """A fitted window is at least this long (silence after the audio): base, beam 5, 40 clean
    development clips of 1-12 s (2026-12-02): padded to 30 s WER 9.3 %, 0.97 s of 2 threads
    per clip; fitted + 3 s at least 10 s 10.1 %, 15 s 9.1 % in 0.44 s."""
    fitted_tokens_per_s: float = 6.0
    """A fitted window's decode stops after this many tokens per second of audio (plus 10,
    after the prompt): outside its training length Whisper may repeat itself to the limit."""

    def __post_init__(self) -> None:
        if self.fitted_window_pad_s is not None and self.fitted_window_pad_s < 0:
            raise InvalidOptionError("A fitted window's trailing silence cannot be negative.")
        if self.fitted_window_min_s < 0:
            raise InvalidOptionError("A fitted window's least length cannot be negative.")

    @property
    def fitted(self) -> bool:
        return self.fitted_window_pad_s is not None


@dataclass(frozen=True, slots=True)
class LanguageOptions:
    """How a pipeline decides the language of audio whose request names none."""

    expected: tuple[str, ...] = ()
    """The languages the audio may be in (`("en", "es")` for a call centre that knows its
    callers); detection chooses among them only. Empty: any language the model knows."""
    fallback: str | None = None
    """The language used when detection is less sure than `floor`. None: the first expected
    language; with no expected languages either, the detected one is kept however unsure."""
    floor: float = 0.5
    """Detection probability below which `fallback` is used; the transcript then says so."""
    detection_chunks: int = 4
    """How many speech chunks, spread evenly over the input, detection listens to."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0:
            raise InvalidOptionError("The language confidence floor is between 0 and 1.")
        if self.detection_chunks < 1:
            raise InvalidOptionError("Language detection needs at least one chunk.")

    @property
    def fallback_language(self) -> str | None:
        return self.fallback or (self.expected[0] if self.expected else None)


def parse_language(value: str | None) -> str | None:
    """A requested language as every transport takes it: lower case; empty or `auto` (the
    CLI's and FunASR's word for it) is None, which detects. Whether the model knows the
    language is the pipeline's check, with its own sentence."""
    code = (value or "").strip().lower()
    return None if code in {"", "auto"} else code


def parse_languages(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"en,es"`, `"en es"` or a list of codes -> ("en", "es"): lower case, in order, once."""
    if value is None:
        return ()
    items = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value)
    codes = [item.strip().lower() for item in items if item.strip()]
    for code in codes:
        if not re.fullmatch(r"[a-z]{2,3}", code):
            raise InvalidOptionError(
                f"{code!r} is not a language code; give ISO 639-1 codes such as en,es."
            )
    return tuple(dict.fromkeys(codes))


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    """Everything one transcription request can set."""

    decode: DecodeOptions = field(default_factory=DecodeOptions)
    vad: VadOptions = field(default_factory=VadOptions)
    vad_filter: bool = True
    """Segment by VAD first (strongly advised for Whisper on long audio)."""
    recover_skipped_speech: bool = True
    """Decode again, on its own, any speech region of a chunk that the chunk's decode left
    without words (Whisper writes a sentence said twice in one window once)."""
    expected_languages: tuple[str, ...] | None = None
    """Languages the audio may be in, detection choosing among them only; None: the
    pipeline's `LanguageOptions.expected`."""

    def to_record(self) -> dict[str, Any]:
        """What a client can set, as plain JSON (stored with a job, replayed by a worker)."""
        decode = self.decode
        return {
            "language": decode.language,
            "languages": (
                None if self.expected_languages is None else list(self.expected_languages)
            ),
            "task": decode.task,
            "prompt": decode.initial_prompt,
            "hotwords": list(decode.hotwords),
            "temperatures": list(decode.temperatures),
            "beam_size": decode.beam_size,
            "vad_filter": self.vad_filter,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TranscribeOptions:
        """The inverse of `to_record`; keys it does not know are ignored."""
        defaults = DecodeOptions()
        decode = DecodeOptions(
            language=record.get("language"),
            task=record.get("task", defaults.task),
            initial_prompt=record.get("prompt"),
            hotwords=tuple(record.get("hotwords", ())),
            temperatures=tuple(record.get("temperatures", defaults.temperatures)),
            beam_size=int(record.get("beam_size", defaults.beam_size)),
        )
        expected = record.get("languages")
        return cls(
            decode=decode,
            vad_filter=bool(record.get("vad_filter", True)),
            expected_languages=None if expected is None else tuple(expected),
        )


def parse_hotwords(
    value: str | dict[str, float] | list[str] | tuple[str, ...] | None,
) -> tuple[str, ...]:
    """Accept hotwords the way clients send them: a JSON object `{"word": weight}`, a comma
    list `"w1,w2"`, space-separated words, or an already split list. Order is kept, duplicates
    and blanks are dropped."""
    if value is None:
        return ()
    items: list[str]
    if isinstance(value, dict):
        items = [str(k) for k in value]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidOptionError(
                    f"hotwords looks like JSON but does not parse ({exc.msg}); send an object "
                    'such as {"asrserve": 20}, a comma list, or space-separated words.'
                ) from exc
            if not isinstance(parsed, dict):
                raise InvalidOptionError("hotwords JSON must be an object mapping word to weight.")
            items = [str(k) for k in parsed]
        elif "," in text or "\n" in text:
            items = re.split(r"[,\n]", text)
        else:
            items = text.split()
    else:
        raise InvalidOptionError(f"hotwords of type {type(value).__name__} is not understood.")
    seen: dict[str, None] = {}
    for item in items:
        word = item.strip()
        if word:
            seen.setdefault(word, None)
    return tuple(seen)
