"""Multipart form fields of the OpenAI audio API (and our additions) -> engine options.

The transcription, translation and job routes read the same fields through these
dependencies, so an option means the same thing on every route.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar

from fastapi import Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from asrserve.api.errors import ApiError
from asrserve.engine import (
    AsrError,
    DecodeOptions,
    ResponseFormat,
    TranscribeOptions,
    Transcript,
    parse_format,
    parse_hotwords,
    parse_language,
    parse_languages,
    render,
    to_dict,
)
from asrserve.engine.formats import media_type
from asrserve.engine.options import DEFAULT_TEMPERATURES

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    file: UploadFile
    model: str | None
    options: TranscribeOptions
    response_format: ResponseFormat
    include_words: bool
    include_segments: bool
    stream: bool

    def as_record(self) -> dict[str, Any]:
        """The request's options as plain JSON (stored with a job, replayed by the worker)."""
        return {
            **self.options.to_record(),
            "response_format": self.response_format.value,
            "include_words": self.include_words,
            "include_segments": self.include_segments,
        }


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="invalid_request", param=param)


def _field(param: str, parse: Callable[[V], T], value: V) -> T:
    """The parsed field; an engine refusal becomes a 400 that names the field."""
    try:
        return parse(value)
    except AsrError as exc:
        raise _bad(str(exc), param) from exc


def build_request(
    *,
    file: UploadFile,
    model: str | None,
    language: str | None,
    languages: str | None,
    prompt: str | None,
    response_format: str,
    temperature: float | None,
    granularities: list[str],
    hotwords: str | None,
    beam_size: int | None,
    vad_filter: bool | None,
    stream: bool,
    task: str,
) -> TranscriptionRequest:
    fmt = _field("response_format", parse_format, response_format or "json")
    words = _field("hotwords", parse_hotwords, hotwords)
    unknown = set(granularities) - {"word", "segment"}
    if unknown:
        raise _bad(
            f"timestamp_granularities takes word and segment, not {sorted(unknown)}.",
            "timestamp_granularities[]",
        )
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise _bad("temperature must be between 0 and 1.", "temperature")
    if beam_size is not None and not 1 <= beam_size <= 20:
        raise _bad("beam_size must be between 1 and 20.", "beam_size")
    # As OpenAI documents it: temperature 0 (or none) lets the decoder raise it on failure.
    temperatures = DEFAULT_TEMPERATURES if not temperature else (temperature,)
    decode = DecodeOptions(
        language=parse_language(language),
        task=task,
        initial_prompt=prompt or None,
        hotwords=words,
        temperatures=temperatures,
        word_timestamps=True,
    )
    if beam_size is not None:
        decode = replace(decode, beam_size=beam_size)
    expected = _field("languages", parse_languages, languages) if languages is not None else None
    options = TranscribeOptions(decode=decode, expected_languages=expected)
    if vad_filter is not None:
        options = replace(options, vad_filter=vad_filter)
    return TranscriptionRequest(
        file=file,
        model=model,
        options=options,
        response_format=fmt,
        # OpenAI sends words only when asked for, and segments unless only words were asked for.
        include_words="word" in granularities,
        include_segments=not granularities or "segment" in granularities,
        stream=stream,
    )


FileField = Annotated[UploadFile, File(description="The audio file: any format FFmpeg decodes.")]
ModelField = Annotated[
    str | None, Form(description="A served model; OpenAI names mean the default.")
]
LanguageField = Annotated[str | None, Form(description="ISO 639-1 code; detected when absent.")]
LanguagesField = Annotated[
    str | None,
    Form(description="Expected languages (en,es): detection chooses among them only."),
]
PromptField = Annotated[str | None, Form(description="Text to guide style and vocabulary.")]
FormatField = Annotated[str, Form(description="json, verbose_json, text, srt or vtt.")]
TemperatureField = Annotated[float | None, Form(description="0 lets the decoder fall back.")]
GranularityBrackets = Annotated[list[str] | None, Form(alias="timestamp_granularities[]")]
GranularityPlain = Annotated[list[str] | None, Form(alias="timestamp_granularities")]
HotwordsField = Annotated[
    str | None, Form(description='Comma list, space-separated words, or JSON {"word": weight}.')
]
BeamField = Annotated[int | None, Form(description="Beam size (1-20), default 5.")]
VadField = Annotated[bool | None, Form(description="Skip silence with Silero VAD (default on).")]
StreamField = Annotated[bool, Form(description="Answer with server-sent events per segment.")]


async def transcription_form(
    file: FileField,
    model: ModelField = None,
    language: LanguageField = None,
    languages: LanguagesField = None,
    prompt: PromptField = None,
    response_format: FormatField = "json",
    temperature: TemperatureField = None,
    timestamp_granularities_brackets: GranularityBrackets = None,
    timestamp_granularities: GranularityPlain = None,
    hotwords: HotwordsField = None,
    beam_size: BeamField = None,
    vad_filter: VadField = None,
    stream: StreamField = False,
) -> TranscriptionRequest:
    return build_request(
        file=file, model=model, language=language, languages=languages, prompt=prompt,
        response_format=response_format, temperature=temperature,
        granularities=[*(timestamp_granularities_brackets or ()), *(timestamp_granularities or ())],
        hotwords=hotwords, beam_size=beam_size, vad_filter=vad_filter, stream=stream,
        task="transcribe",
    )  # fmt: skip


async def translation_form(
    file: FileField,
    model: ModelField = None,
    prompt: PromptField = None,
    response_format: FormatField = "json",
    temperature: TemperatureField = None,
    hotwords: HotwordsField = None,
    beam_size: BeamField = None,
) -> TranscriptionRequest:
    return build_request(
        file=file, model=model, language=None, languages=None, prompt=prompt,
        response_format=response_format,
        temperature=temperature, granularities=[], hotwords=hotwords, beam_size=beam_size,
        vad_filter=None, stream=False, task="translate",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobRequest:
    transcription: TranscriptionRequest
    webhook_url: str | None


async def job_form(
    request: Annotated[TranscriptionRequest, Depends(transcription_form)],
    task: Annotated[str, Form(description="transcribe, or translate to English.")] = "transcribe",
    webhook_url: Annotated[
        str | None, Form(description="POSTed a JSON notice when the job finishes.")
    ] = None,
) -> JobRequest:
    """The transcription fields (`stream` has no meaning for a job), plus the job's own."""
    if task not in {"transcribe", "translate"}:
        raise _bad("task is transcribe or translate.", "task")
    decode = replace(request.options.decode, task=task)
    request = replace(request, options=replace(request.options, decode=decode), stream=False)
    return JobRequest(request, webhook_url or None)


def transcript_response(
    transcript: Transcript, fmt: ResponseFormat, *, include_words: bool, include_segments: bool
) -> Response:
    if fmt in (ResponseFormat.JSON, ResponseFormat.VERBOSE_JSON):
        body = to_dict(
            transcript, fmt, include_words=include_words, include_segments=include_segments
        )
        return JSONResponse(body)
    return PlainTextResponse(render(transcript, fmt), media_type=media_type(fmt))
