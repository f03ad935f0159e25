"""`build_request`: form fields to options, and a refusal naming the field that was wrong."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi import UploadFile

from asrserve.api.errors import ApiError
from asrserve.api.forms import build_request
from asrserve.engine import ResponseFormat


def form(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "file": UploadFile(io.BytesIO(b"RIFF"), filename="a.wav"), "model": None,
        "language": None, "languages": None, "prompt": None, "response_format": "json",
        "temperature": None, "granularities": [], "hotwords": None, "beam_size": None,
        "vad_filter": None, "stream": False, "task": "transcribe",
    }  # fmt: skip
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "docx"}, "response_format"),
        ({"hotwords": '{"format": '}, "hotwords"),
        ({"hotwords": '{"asrserve" 20}'}, "hotwords"),
        ({"languages": "en,english"}, "languages"),
        ({"granularities": ["char"]}, "timestamp_granularities[]"),
        ({"temperature": 1.5}, "temperature"),
        ({"beam_size": 0}, "beam_size"),
    ],
)
def test_a_bad_field_is_refused_by_its_own_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as refused:
        build_request(**form(**fields))
    assert (refused.value.status, refused.value.param) == (400, param)
    assert refused.value.message.endswith(".") or "; " in refused.value.message


def test_fields_become_options() -> None:
    request = build_request(
        **form(
            language=" AUTO ", languages="en, es", response_format="srt", hotwords="asrserve",
            beam_size=3, temperature=0.4, granularities=["word"],
        )
    )  # fmt: skip
    decode = request.options.decode
    assert decode.language is None and decode.beam_size == 3 and decode.temperatures == (0.4,)
    assert request.options.expected_languages == ("en", "es")
    assert request.response_format is ResponseFormat.SRT
    assert request.include_words and not request.include_segments
    assert [h for h in decode.hotwords] and "asrserve" in str(decode.hotwords)
