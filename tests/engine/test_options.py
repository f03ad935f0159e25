"""Option parsing every transport shares: the HTTP form, the CLI flag and FunASR's message
(whose side is in tests/ws/test_protocol.py)."""

from __future__ import annotations

import pytest

from asrserve.engine import InvalidOptionError, parse_language, parse_languages


@pytest.mark.parametrize(
    ("given", "language"),
    [(None, None), ("", None), ("  ", None), ("auto", None), ("AUTO", None), (" ES ", "es")],
)
def test_one_language_parser_for_every_transport(given: str | None, language: str | None) -> None:
    assert parse_language(given) == language


def test_expected_languages_are_codes_once_in_order() -> None:
    assert parse_languages("en, ES en") == ("en", "es")
    assert parse_languages(["de", "fr"]) == ("de", "fr")
    with pytest.raises(InvalidOptionError, match="not a language code"):
        parse_languages("en,english")
