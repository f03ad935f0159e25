"""Every failure a caller can cause, each with a sentence that says what was wrong and what to do.

The servers map these types to HTTP statuses and WebSocket error messages in one table; the
engine itself never knows about transports.
"""

from __future__ import annotations


class AsrError(Exception):
    """Base class: `str(error)` is a complete sentence fit to show a user."""

    code: str = "asr_error"


def error_code(exc: BaseException, default: str) -> str:
    """The machine-readable code a client gets for `exc`: its own for asrserve's errors,
    `default` for anything else (whose attributes are not ours to show)."""
    return exc.code if isinstance(exc, AsrError) else default


class AudioError(AsrError):
    code = "invalid_audio"


class EmptyAudioError(AudioError):
    code = "empty_audio"


class AudioDecodeError(AudioError):
    """The input is not audio, is corrupt, or is truncated beyond use."""

    code = "audio_decode_error"


class AudioTooLongError(AudioError):
    code = "audio_too_long"


class AudioTooLargeError(AudioError):
    code = "audio_too_large"


class ModelError(AsrError):
    code = "model_error"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class ModelChecksumError(ModelError):
    code = "model_checksum_mismatch"


class UnsupportedLanguageError(AsrError):
    code = "unsupported_language"


class InvalidOptionError(AsrError):
    code = "invalid_option"
