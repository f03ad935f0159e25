"""Word error rate after the normalisation the development set's README prescribes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import jiwer
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

# References keep fillers as words; recognisers drop them. Drop them on both sides.
_FILLERS = frozenset({"uh", "um", "hm", "hmm", "mm", "er", "ah"})


@lru_cache(maxsize=1)
def _english() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()


@lru_cache(maxsize=1)
def _basic() -> BasicTextNormalizer:
    return BasicTextNormalizer()


def normalize(text: str, language: str = "en") -> str:
    """Lower-case, strip punctuation, split hyphens, spell numbers one way, drop fillers."""
    text = text.replace("-", " ")
    norm = _english()(text) if language == "en" else _basic()(text)
    words = [w for w in norm.split() if w not in _FILLERS]
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class ErrorRate:
    errors: int
    reference_words: int

    @property
    def rate(self) -> float:
        return self.errors / self.reference_words if self.reference_words else 0.0


def word_errors(
    references: Iterable[str], hypotheses: Iterable[str], language: str = "en"
) -> ErrorRate:
    """Aggregate WER over all words (not a mean of per-clip rates)."""
    errors = 0
    total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref_n = normalize(ref, language)
        hyp_n = normalize(hyp, language)
        n_ref = len(ref_n.split())
        if n_ref == 0:
            errors += len(hyp_n.split())
            continue
        out = jiwer.process_words(ref_n, hyp_n if hyp_n else "")
        errors += out.substitutions + out.deletions + out.insertions
        total += n_ref
    return ErrorRate(errors, total)


def char_errors(references: Iterable[str], hypotheses: Iterable[str]) -> ErrorRate:
    """Aggregate CER (for languages written without spaces, such as Japanese)."""
    errors = 0
    total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref_c = re.sub(r"\W", "", ref.lower())
        hyp_c = re.sub(r"\W", "", hyp.lower())
        if not ref_c:
            continue
        out = jiwer.process_characters(ref_c, hyp_c)
        errors += out.substitutions + out.deletions + out.insertions
        total += len(ref_c)
    return ErrorRate(errors, total)
