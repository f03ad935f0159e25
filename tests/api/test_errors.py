"""The error table: every failure becomes a status, a sentence and a code a client can branch on."""

from __future__ import annotations

import json

import pytest

from asrserve.api.errors import error_response
from asrserve.engine import AudioDecodeError, EmptyAudioError, UnsupportedLanguageError
from asrserve.jobmodel.errors import JobStoreUnavailableError


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (EmptyAudioError("The upload is empty."), 400, "empty_audio"),
        (AudioDecodeError("Not audio."), 415, "audio_decode_error"),
        (UnsupportedLanguageError("xx is not known."), 400, "unsupported_language"),
        (JobStoreUnavailableError("Down; retry."), 503, "job_store_unavailable"),
    ],
)
def test_asrserve_errors_keep_their_code_and_sentence(
    exc: Exception, status: int, code: str
) -> None:
    response = error_response(exc)
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert body["error"]["code"] == code
    assert body["error"]["message"] == str(exc)
    assert ("retry-after" in response.headers) == (status == 503)


class LibraryError(Exception):
    code = 17  # a third-party exception's attribute, not a code of ours


def test_other_exceptions_are_internal_errors_whatever_attributes_they_carry() -> None:
    response = error_response(LibraryError("boom"))
    assert response.status_code == 500
    assert json.loads(bytes(response.body))["error"]["code"] == "internal_error"
