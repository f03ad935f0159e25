"""Inverse text normalisation, FunASR's `itn` flag."""

from __future__ import annotations

import pytest

from asrserve.engine.itn import inverse_normalize


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (
            "When forty winters shall besiege thy brow.",
            "en",
            "When 40 winters shall besiege thy brow.",
        ),
        ("it costs one hundred and twenty dollars", "en", "it costs 120 dollars"),
        ("il y a vingt-cinq chats", "fr", "il y a 25 chats"),
        # Isolated small numbers read better as words.
        ("no one knows, two dogs", "en", "no one knows, two dogs"),
        # Languages text2num does not know, or an unknown language, pass through unchanged.
        ("двадцать пять", "ru", "двадцать пять"),
        ("twenty five", None, "twenty five"),
        ("", "en", ""),
    ],
)
def test_spelled_numbers_become_digits(text: str, language: str | None, expected: str) -> None:
    assert inverse_normalize(text, language) == expected
