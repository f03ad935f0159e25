"""Whisper through faster-whisper / CTranslate2, decoding many chunks in one batch.

faster-whisper's `WhisperModel.transcribe` decodes one 30 s window at a time, and its
`BatchedInferencePipeline` batches a single file's windows with one temperature and no fallback.
Here a batch may hold chunks of several files (the dynamic batcher fills it), every chunk gets
Whisper's temperature fallback, and timestamp tokens split chunks into natural segments.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens
from threadpoolctl import threadpool_limits

from asrserve.engine.audio import SAMPLE_RATE
from asrserve.engine.engines.base import EngineInfo
from asrserve.engine.errors import InvalidOptionError, UnsupportedLanguageError
from asrserve.engine.options import DecodeOptions
from asrserve.engine.segmentation import split_segment
from asrserve.engine.types import LanguageGuess, Segment, Word

log = logging.getLogger(__name__)

T = TypeVar("T")

LANGUAGE_WINDOW_PAD_S = 3.0
"""Detection encodes the chunks in a window fitted to the longest plus this much silence, not
Whisper's padded 30 s. Right-language rates, whisper-base int8 (2026-12-02; 120 Spanish 1-5 s
prompts any language / en,es expected; 21 English clips; 60 cs; 60 nl) and wall time per prompt:
30 s window 62.5 / 94.2 / 100 / 51.7 / 65.0 % at 0.78 s; pad 1 s 67.5 / 90.8 / 100 / 48.3 /
60.0 at 0.07 s; 2 s 70.8 / 92.5 / 100 / 48.3 / 65.0 at 0.09 s; 3 s 67.5 / 91.7 / 100 / 51.7 /
65.0 at 0.11 s; 4 s 65.8 / 89.2 / 100 / 51.7 / 61.7 at 0.13 s. At 3 s: as right as the 30 s
window but for 3 of 120 expected-language prompts, in a seventh of the time (a short request
without a language paid about as much for detection as for its decode)."""
LANGUAGE_SCORE_TOKENS = 64
"""Tokens decoded under each candidate language: enough for about 20 s of speech."""
LANGUAGE_DECODE_WEIGHT = 6.0
"""How much the decodes weigh against the language token. Measured with en and es expected
(2026-11-29, whisper-base int8): 120 Spanish prompts / 32 English clips right at weight 0
(token only) 80.8 % / 100 %, 4: 87.5 / 100, 6: 90.8 / 100, 10: 93.3 / 96.9, decodes only:
94.2 / 96.9. 6 is the most the English clips bear."""

_PREPEND_PUNCTUATIONS = "\"'“¿([{-"
_APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass(slots=True)
class _Decoded:
    """The chosen hypothesis for one chunk."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    duration: float
    silent: bool = False

    @property
    def tokens_per_s(self) -> float:
        return len(self.tokens) / max(self.duration, 1.0)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def usable_cpus() -> int:
    """The CPUs this process may run on, which a container or taskset can make fewer than the
    machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def single_threaded_blas() -> None:
    """numpy's BLAS on one thread, for the whole process. CTranslate2 owns the cores; the BLAS
    pool's helper threads only spin between the small matrix products of feature extraction:
    on 2 cores they took 5.5 times the CPU of the work itself, and on a 16-core GPU server 15
    of them ran at 67 % of a core each while 16 live streams decoded on the GPU."""
    threadpool_limits(limits=1, user_api="blas")


def niced(nice: int, make: Callable[[], T]) -> T:
    """`make()`, run in a thread of its own at `nice` (Linux): the threads it starts, such as
    CTranslate2's decode workers and their intra-op threads, inherit that niceness, and the
    caller keeps its own (an unprivileged thread cannot lower its niceness back)."""
    if nice <= 0:
        return make()
    if not sys.platform.startswith("linux"):
        # Elsewhere niceness belongs to the whole process: leave it.
        log.warning("decode thread niceness is Linux-only; ignoring nice=%d", nice)
        return make()
    made: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            os.nice(nice)
            made.append(make())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="niced-load")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def default_compute_type(device: str) -> str:
    # int8 on CPU: the same WER as float32 at about half the time (measured, MODELS.md).
    return "float16" if device == "cuda" else "int8"


class WhisperEngine:
    """A loaded Whisper model. Up to `info.workers` calls may run at once (CTranslate2's
    workers, each with `cpu_threads` threads): the batcher runs that many worker threads."""

    def __init__(
        self,
        model_path: Path,
        *,
        name: str,
        device: str = "auto",
        compute_type: str = "default",
        cpu_threads: int = 0,
        workers: int = 1,
        nice: int = 0,
    ) -> None:
        """`nice` above 0 runs the model's decode threads at that niceness (Linux): they get
        the cores only when other threads (another model's) leave them."""
        single_threaded_blas()
        self.device = resolve_device(device)
        self.compute_type = (
            default_compute_type(self.device) if compute_type == "default" else compute_type
        )
        if workers < 1:
            raise ValueError("A model needs at least one decode worker.")
        self.workers = workers
        # On 2 cores, whisper-base with one stream final per batch (beam 5): 2 workers of 1
        # thread decoded 24 clips in 6.5 s against 13.2 s for 1 worker of 2 threads; HTTP
        # batches of 8 padded windows, 22.7 s against 30.6 s (2026-12-02).
        self.cpu_threads = cpu_threads or max(1, usable_cpus() // workers)
        self._model = niced(
            nice,
            lambda: WhisperModel(
                str(model_path),
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                num_workers=self.workers,
                local_files_only=True,
            ),
        )
        multilingual = self._model.model.is_multilingual
        self._languages = frozenset(self._model.supported_languages)
        self._info = EngineInfo(
            name="whisper",
            model=name,
            languages=None if multilingual else frozenset({"en"}),
            max_chunk_s=float(self._model.feature_extractor.chunk_length),
            supports_translation=multilingual,
            fixed_window=True,
            workers=self.workers,
            device=self.device,
            compute_type=self.compute_type,
            token_logprobs=True,
        )
        self._slots = threading.BoundedSemaphore(self.workers)

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def model(self) -> WhisperModel:
        """The underlying faster-whisper model, for callers that need it directly (benchmarks)."""
        return self._model

    def _features(
        self, chunks: Sequence[np.ndarray], pad_s: float | None = None, min_s: float = 0.0
    ) -> np.ndarray:
        """Log-mel features, padded to Whisper's 30 s window; with `pad_s` (a fitted window),
        to the longest chunk plus `pad_s` of silence, and at least `min_s`, instead."""
        extractor = self._model.feature_extractor
        if pad_s is not None:
            window = int(self._info.max_chunk_s * SAMPLE_RATE)
            longest = max(c.size for c in chunks)
            fitted = max(longest + int(pad_s * SAMPLE_RATE), int(min_s * SAMPLE_RATE))
            length = min(window, fitted)
            # Silence as samples, not as padded features: the extractor's log-mel floor is
            # relative to each input's loudest frame, and a fitted window ends in real silence.
            chunks = [np.pad(c[:length], (0, length - min(c.size, length))) for c in chunks]
        # The extractor pads one frame beyond the input; drop it as faster-whisper does.
        features = [extractor(chunk)[..., :-1] for chunk in chunks]
        if pad_s is None:
            return np.stack([pad_or_trim(f) for f in features])
        frames = features[0].shape[-1] // 2 * 2  # the encoder's stride-2 convolution
        return np.ascontiguousarray(np.stack([f[..., :frames] for f in features]))

    def detect_language(
        self, audio: Sequence[np.ndarray], candidates: Collection[str] = ()
    ) -> LanguageGuess:
        """Whisper's language-token probabilities, averaged over the chunks by their length.

        With two or more candidates, the choice also weighs how well the speech decodes in
        each: a short greedy decode under each candidate's language token, scored by its mean
        token log-probability. On 1-5 s prompts the language token alone often picks wrong
        (Spanish prompts: 61 % right among all languages, 81 % among en and es, in 30 s
        windows); decoding under each settles most of the rest (92 %, in fitted windows: see
        `LANGUAGE_WINDOW_PAD_S`).
        """
        if self._info.languages is not None:
            return LanguageGuess("en", 1.0, (("en", 1.0),))
        pieces = [piece for piece in audio if piece.size]
        if not pieces:
            raise InvalidOptionError("Language detection needs at least one chunk of speech.")
        wanted = self._check_candidates(candidates)
        with self._slots:
            encoded = self._model.encode(self._features(pieces, LANGUAGE_WINDOW_PAD_S))
            per_chunk = self._model.model.detect_language(encoded)
            sizes = np.array([piece.size for piece in pieces], np.float64)
            shares = sizes / sizes.sum()
            probs: dict[str, float] = {}
            for weight, results in zip(shares, per_chunk, strict=True):
                for token, p in results:
                    probs[token[2:-2]] = probs.get(token[2:-2], 0.0) + weight * float(p)
            if wanted:
                total = sum(probs.get(lang, 0.0) for lang in wanted) or 1.0
                probs = {lang: probs.get(lang, 0.0) / total for lang in wanted}
            if len(wanted) > 1:
                probs = self._weigh_by_decoding(encoded, shares, probs)
        ranked = sorted(probs.items(), key=lambda item: item[1], reverse=True)
        return LanguageGuess(ranked[0][0], ranked[0][1], tuple(ranked[:10]))

    def _check_candidates(self, candidates: Collection[str]) -> list[str]:
        unknown = sorted(set(candidates) - self._languages)
        if unknown:
            raise UnsupportedLanguageError(
                f"Expected language(s) {', '.join(unknown)} are not ones Whisper knows; use "
                "ISO 639-1 codes such as en, es or de."
            )
        return sorted(set(candidates))

    def _weigh_by_decoding(
        self,
        encoded: ctranslate2.StorageView,
        shares: np.ndarray,
        prior: dict[str, float],
    ) -> dict[str, float]:
        """Posterior over the candidates: log prior + weight x mean token log-probability of
        a greedy decode in each language (length-weighted over the chunks), renormalised."""
        languages = list(prior)
        states = np.asarray(encoded)
        batch = ctranslate2.StorageView.from_array(np.repeat(states, len(languages), axis=0))
        prompts = []
        for _ in range(states.shape[0]):
            for language in languages:
                tokenizer = Tokenizer(self._model.hf_tokenizer, True, "transcribe", language)
                prompts.append([*tokenizer.sot_sequence, tokenizer.no_timestamps])
        results = self._model.model.generate(
            batch, prompts, beam_size=1, max_length=LANGUAGE_SCORE_TOKENS, return_scores=True
        )
        fit = dict.fromkeys(languages, 0.0)
        for i, result in enumerate(results):
            chunk, candidate = divmod(i, len(languages))
            fit[languages[candidate]] += shares[chunk] * result.scores[0]
        logits = np.array(
            [math.log(max(prior[lang], 1e-9)) + LANGUAGE_DECODE_WEIGHT * fit[lang]
             for lang in languages]
        )  # fmt: skip
        posterior = np.exp(logits - logits.max())
        posterior /= posterior.sum()
        return {lang: float(p) for lang, p in zip(languages, posterior, strict=True)}

    def _check_language(self, options: DecodeOptions) -> str:
        language = options.language or "en"
        if self._info.languages is not None and language not in self._info.languages:
            raise UnsupportedLanguageError(
                f"Model {self._info.model} is English-only and cannot decode {language!r}; "
                "choose a multilingual model such as whisper-base."
            )
        if language not in self._languages:
            raise UnsupportedLanguageError(
                f"Language {language!r} is not one Whisper knows; use an ISO 639-1 code such as "
                "en, de or ja, or leave the language unset to detect it."
            )
        if options.task == "translate" and not self._info.supports_translation:
            raise InvalidOptionError(
                f"Model {self._info.model} cannot translate; use a multilingual model."
            )
        return language

    def transcribe_chunks(
        self, chunks: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[list[Segment]]:
        if not chunks:
            return []
        language = self._check_language(options)
        hf = self._model.hf_tokenizer
        tokenizer = Tokenizer(
            hf, self._model.model.is_multilingual, task=options.task, language=language
        )
        prompt = self._model.get_prompt(
            tokenizer,
            previous_tokens=tokenizer.encode(" " + options.initial_prompt.strip())
            if options.initial_prompt
            else [],
            without_timestamps=options.without_timestamps,
            hotwords=", ".join(options.hotwords) if options.hotwords else None,
        )
        with self._slots:
            features = self._features(
                chunks, options.fitted_window_pad_s, options.fitted_window_min_s
            )
            encoder_output = self._model.encode(features)
            durations = [len(c) / SAMPLE_RATE for c in chunks]
            decoded = self._decode_with_fallback(
                encoder_output, features, durations, prompt, tokenizer, options
            )
            return self._to_segments(chunks, decoded, encoder_output, features, tokenizer, options)

    def _generate(
        self,
        encoder_output: ctranslate2.StorageView,
        prompt: list[int],
        durations: Sequence[float],
        temperature: float,
        tokenizer: Tokenizer,
        options: DecodeOptions,
    ) -> list[_Decoded]:
        if temperature > 0:
            search = {"beam_size": 1, "num_hypotheses": options.best_of, "sampling_topk": 0,
                      "sampling_temperature": temperature}  # fmt: skip
        else:
            search = {"beam_size": options.beam_size, "patience": options.patience}
        max_length = self._model.max_length
        if options.fitted:
            # CTranslate2 counts the prompt in the length.
            limit = len(prompt) + int(max(durations) * options.fitted_tokens_per_s) + 10
            max_length = min(max_length, limit)
        results = self._model.model.generate(
            encoder_output,
            [list(prompt) for _ in durations],
            length_penalty=options.length_penalty,
            max_length=max_length,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            return_scores=True,
            return_no_speech_prob=True,
            **search,
        )
        out = []
        for result, duration in zip(results, durations, strict=True):
            # With several sampled hypotheses, keep the most probable per token.
            best = max(
                range(len(result.sequences_ids)),
                key=lambda i: result.scores[i],
            )
            tokens = result.sequences_ids[best]
            seq_len = len(tokens)
            cum_logprob = result.scores[best] * (seq_len**options.length_penalty)
            if options.fitted:
                tokens = _without_restart(tokens)
            text = tokenizer.decode([t for t in tokens if t < tokenizer.eot])
            out.append(
                _Decoded(
                    tokens=tokens,
                    avg_logprob=cum_logprob / (seq_len + 1),
                    no_speech_prob=result.no_speech_prob,
                    compression_ratio=get_compression_ratio(text) if text.strip() else 0.0,
                    temperature=temperature,
                    duration=duration,
                )
            )
        return out

    def _decode_with_fallback(
        self,
        encoder_output: ctranslate2.StorageView,
        features: np.ndarray,
        durations: Sequence[float],
        prompt: list[int],
        tokenizer: Tokenizer,
        options: DecodeOptions,
    ) -> list[_Decoded]:
        temperatures = options.temperatures or (0.0,)
        chosen = self._generate(
            encoder_output, prompt, durations, temperatures[0], tokenizer, options
        )
        pending = [i for i, d in enumerate(chosen) if self._needs_fallback(d, options)]
        failed_greedy = set(pending)
        for temperature in temperatures[1:]:
            if not pending:
                break
            retry_out = self._model.encode(features[pending])
            retried = self._generate(
                retry_out, prompt, [durations[i] for i in pending], temperature, tokenizer, options
            )
            still = []
            for i, candidate in zip(pending, retried, strict=True):
                if self._better(candidate, chosen[i], options):
                    chosen[i] = candidate
                if self._needs_fallback(chosen[i], options):
                    still.append(i)
            pending = still
        for i, d in enumerate(chosen):
            d.silent = self._is_silence(d, options) or (
                i in failed_greedy
                and options.failed_no_speech_threshold is not None
                and d.no_speech_prob >= options.failed_no_speech_threshold
            )
        return chosen

    @staticmethod
    def _is_silence(d: _Decoded, options: DecodeOptions) -> bool:
        return (
            options.no_speech_threshold is not None
            and d.no_speech_prob > options.no_speech_threshold
            and options.log_prob_threshold is not None
            and d.avg_logprob < options.log_prob_threshold
        )

    @staticmethod
    def _needs_fallback(d: _Decoded, options: DecodeOptions) -> bool:
        if WhisperEngine._is_silence(d, options):
            return False
        too_unlikely = (
            options.log_prob_threshold is not None and d.avg_logprob < options.log_prob_threshold
        )
        return WhisperEngine._looping(d, options) or too_unlikely

    @staticmethod
    def _looping(d: _Decoded, options: DecodeOptions) -> bool:
        return (
            options.compression_ratio_threshold is not None
            and d.compression_ratio > options.compression_ratio_threshold
            and d.tokens_per_s > options.loop_tokens_per_s
        )

    @staticmethod
    def _better(candidate: _Decoded, current: _Decoded, options: DecodeOptions) -> bool:
        """Prefer a result that passes the repetition check, then the more probable one."""
        cand_loops = WhisperEngine._looping(candidate, options)
        if cand_loops != WhisperEngine._looping(current, options):
            return not cand_loops
        return candidate.avg_logprob > current.avg_logprob

    def _to_segments(
        self,
        chunks: Sequence[np.ndarray],
        decoded: list[_Decoded],
        encoder_output: ctranslate2.StorageView,
        features: np.ndarray,
        tokenizer: Tokenizer,
        options: DecodeOptions,
    ) -> list[list[Segment]]:
        durations = [len(c) / SAMPLE_RATE for c in chunks]
        raw = [
            [] if d.silent else self._split_at_timestamps(d.tokens, duration, tokenizer)
            for d, duration in zip(decoded, durations, strict=True)
        ]

        # Without timestamp tokens the words are what segments are cut by, so align anyway.
        if options.word_timestamps or (options.without_timestamps and options.split_segments):
            self._add_words(raw, durations, encoder_output, features, tokenizer)

        out: list[list[Segment]] = []
        for parts, d, duration in zip(raw, decoded, durations, strict=True):
            segments: list[Segment] = []
            for part in parts:
                text = tokenizer.decode([t for t in part["tokens"] if t < tokenizer.eot])
                if not text.strip():
                    continue
                words = tuple(
                    Word(
                        start=_clamp(w["start"], 0.0, duration),
                        end=_clamp(w["end"], 0.0, duration),
                        word=w["word"],
                        probability=float(w["probability"]),
                    )
                    for w in part.get("words", ())
                )
                start = _clamp(part["start"], 0.0, duration)
                end = _clamp(part["end"], start, duration)
                if words:
                    start = min(start, words[0].start)
                    end = max(end, words[-1].end)
                whole = Segment(
                    id=0,
                    start=start,
                    end=end,
                    text=text,
                    words=words,
                    avg_logprob=float(d.avg_logprob),
                    no_speech_prob=float(d.no_speech_prob),
                    compression_ratio=float(d.compression_ratio),
                    temperature=d.temperature,
                    tokens=tuple(part["tokens"]),
                )
                split = options.without_timestamps and options.split_segments
                pieces = split_segment(whole) if split else [whole]
                for piece in pieces:
                    if not options.word_timestamps:
                        piece = replace(piece, words=())
                    segments.append(replace(piece, id=len(segments)))
            out.append(segments)
        return out

    def _split_at_timestamps(
        self, tokens: list[int], duration: float, tokenizer: Tokenizer
    ) -> list[dict[str, Any]]:
        """Cut a chunk's tokens into segments at Whisper's timestamp tokens.

        faster-whisper's own splitter drops the text after the last closed timestamp pair,
        because its sequential loop decodes that text again in the next window; a batched chunk
        has no next window, so here the tail becomes a segment that ends with the chunk.
        """
        precision = self._model.time_precision
        parts: list[dict[str, Any]] = []
        start: float | None = None
        text: list[int] = []
        last_end = 0.0
        for token in tokens:
            if token >= tokenizer.timestamp_begin:
                time = (token - tokenizer.timestamp_begin) * precision
                if text:
                    seg_start = last_end if start is None else start
                    parts.append({"start": seg_start, "end": max(time, seg_start), "tokens": text})
                    last_end, start, text = time, None, []
                else:
                    start = time
            elif token < tokenizer.eot:
                text.append(token)
        if text:
            seg_start = last_end if start is None else start
            parts.append({"start": seg_start, "end": max(duration, seg_start), "tokens": text})
        return parts

    def _add_words(
        self,
        raw: list[list[dict[str, Any]]],
        durations: list[float],
        encoder_output: ctranslate2.StorageView,
        features: np.ndarray,
        tokenizer: Tokenizer,
    ) -> None:
        """Cross-attention alignment for the chunks that have text; in place."""
        with_text = [i for i, parts in enumerate(raw) if parts]
        if not with_text:
            return
        if len(with_text) != len(raw):
            # Alignment runs over the whole batch, so leave out the silent chunks.
            encoder_output = self._model.encode(features[with_text])
        fps = self._model.frames_per_second
        for parts in (raw[i] for i in with_text):
            for part in parts:
                part["seek"] = 0
        self._model.add_word_timestamps(
            [raw[i] for i in with_text],
            tokenizer,
            encoder_output,
            [int(math.ceil(durations[i]) * fps) for i in with_text],
            _PREPEND_PUNCTUATIONS,
            _APPEND_PUNCTUATIONS,
            0.0,
        )


RESTART_TOKENS = 3
"""A fitted window's decode that writes its first this-many tokens again has started over."""


def _without_restart(tokens: list[int]) -> list[int]:
    """The tokens up to where the decode starts its text over. In a window fitted to the audio
    Whisper hears the silence it was padded with as a cue to say it all again ("And so my
    fellow Americans. And so my fellow Americans. And so"); speech that repeats its own first
    words within one utterance's live text is far rarer."""
    head = tokens[:RESTART_TOKENS]
    if len(head) < RESTART_TOKENS:
        return tokens
    for at in range(RESTART_TOKENS, len(tokens) - RESTART_TOKENS + 1):
        if tokens[at : at + RESTART_TOKENS] == head:
            return tokens[:at]
    return tokens


def _clamp(value: float, low: float, high: float) -> float:
    return round(min(max(float(value), low), high), 3)
