"""The asrserve engine: a library of numpy arrays and dataclasses with no transport in it.

    from asrserve.engine import ModelRegistry, ResponseFormat, render

    with ModelRegistry() as models, models.use("whisper-base") as model:
        print(render(model.pipeline.transcribe("speech.mp3"), ResponseFormat.SRT))

What servers, workers and tools build on is exported here; the submodules hold the rest.
"""

from asrserve.engine.audio import SAMPLE_RATE, decode
from asrserve.engine.errors import (
    AsrError,
    AudioDecodeError,
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidOptionError,
    ModelChecksumError,
    ModelError,
    ModelNotFoundError,
    UnsupportedLanguageError,
    error_code,
)
from asrserve.engine.formats import ResponseFormat, parse_format, render, to_dict
from asrserve.engine.models import CATALOGUE, DEFAULT_MODEL, DEFAULT_PARTIAL_MODEL
from asrserve.engine.options import (
    AudioLimits,
    BatchingOptions,
    DecodeOptions,
    LanguageOptions,
    TranscribeOptions,
    VadOptions,
    parse_hotwords,
    parse_language,
    parse_languages,
)
from asrserve.engine.pipeline import Pipeline
from asrserve.engine.registry import EngineSettings, LoadedModel, ModelRegistry
from asrserve.engine.streaming import (
    Final,
    LiveSession,
    OfflineSession,
    Partial,
    PendingFinal,
    StreamingOptions,
    TwoPassSession,
    open_session,
)
from asrserve.engine.types import Mode, Segment, Transcript, TranscriptInfo, Word

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "DEFAULT_PARTIAL_MODEL",
    "SAMPLE_RATE",
    "AsrError",
    "AudioDecodeError",
    "AudioError",
    "AudioLimits",
    "AudioTooLargeError",
    "AudioTooLongError",
    "BatchingOptions",
    "DecodeOptions",
    "EmptyAudioError",
    "EngineSettings",
    "Final",
    "InvalidOptionError",
    "LanguageOptions",
    "LiveSession",
    "LoadedModel",
    "Mode",
    "ModelChecksumError",
    "ModelError",
    "ModelNotFoundError",
    "ModelRegistry",
    "OfflineSession",
    "Partial",
    "PendingFinal",
    "Pipeline",
    "ResponseFormat",
    "Segment",
    "StreamingOptions",
    "TranscribeOptions",
    "Transcript",
    "TranscriptInfo",
    "TwoPassSession",
    "UnsupportedLanguageError",
    "VadOptions",
    "Word",
    "decode",
    "error_code",
    "open_session",
    "parse_format",
    "parse_hotwords",
    "parse_language",
    "parse_languages",
    "render",
    "to_dict",
]
