"""Inverse text normalisation: spoken numbers to digits ("twenty five" -> "25").

FunASR's protocol has an `itn` flag. Whisper already writes most numbers as digits; PocketSphinx,
Vosk and Whisper's spelled-out numbers do not. text2num (the converter whisper-normalizer itself
uses) turns them into digits for the languages it knows; other languages pass through unchanged.
"""

from __future__ import annotations

from functools import lru_cache

from text_to_num import alpha2digit

ITN_LANGUAGES = frozenset({"en", "fr", "es", "pt", "de", "it", "nl", "da"})


def inverse_normalize(text: str, language: str | None) -> str:
    """`text` with its spelled-out numbers as digits; unchanged for unsupported languages.

    Isolated numbers below three stay words ("one of them", "two dogs"): text2num's own
    threshold, because converting them reads worse than leaving them.
    """
    if not text or not language or language not in ITN_LANGUAGES:
        return text
    return _convert(text, language)


@lru_cache(maxsize=1024)
def _convert(text: str, language: str) -> str:
    # Partials repeat the same hypothesis many times while a person speaks: cache them.
    return str(alpha2digit(text, language))
