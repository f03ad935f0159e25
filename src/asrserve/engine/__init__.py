"""The asrserve engine: a library of numpy arrays and dataclasses with no transport in it.

    from asrserve.engine import ModelRegistry, ResponseFormat, render

    with ModelRegistry() as models, models.use("whisper-base") as model:
        print(render(model.pipeline.transcribe("speech.mp3"), ResponseFormat.SRT))

What servers, workers and tools build on is exported here; the submodules hold the rest.
"""

from asrserve.engine.audio import SAMPLE_RATE, decode
from asrserve.engine.errors import AsrError
from asrserve.engine.formats import ResponseFormat, parse_format, render, to_dict
from asrserve.engine.options import (
    AudioLimits,
    BatchingOptions,
    DecodeOptions,
    LanguageOptions,
    TranscribeOptions,
    VadOptions,
)
from asrserve.engine.pipeline import Pipeline
from asrserve.engine.registry import EngineSettings, LoadedModel, ModelRegistry
from asrserve.engine.streaming import (
    LiveSession,
    OfflineSession,
    StreamingOptions,
    TwoPassSession,
    open_session,
)
from asrserve.engine.types import Mode, Segment, Transcript, TranscriptInfo, Word

__all__ = [
    "SAMPLE_RATE",
    "AsrError",
    "AudioLimits",
    "BatchingOptions",
    "DecodeOptions",
    "EngineSettings",
    "LanguageOptions",
    "LiveSession",
    "LoadedModel",
    "Mode",
    "ModelRegistry",
    "OfflineSession",
    "Pipeline",
    "ResponseFormat",
    "Segment",
    "StreamingOptions",
    "TranscribeOptions",
    "Transcript",
    "TranscriptInfo",
    "TwoPassSession",
    "VadOptions",
    "Word",
    "decode",
    "open_session",
    "parse_format",
    "render",
    "to_dict",
]
