"""Endpoints of the systems we replace, so their clients work unchanged:
the seed service's `POST /api/v1/recognize` and FunASR's HTTP `POST /recognition`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse

from asrserve.api.deps import ServicesDep
from asrserve.api.errors import error_response
from asrserve.api.forms import build_request
from asrserve.api.schemas import FunAsrResult, RecognizeResult, RecognizeSegment, Sentence
from asrserve.engine import Transcript

router = APIRouter(tags=["Compatibility"])

AudioField = Annotated[UploadFile, File(description="The audio file.")]


async def _transcribe(
    services: ServicesDep,
    audio: UploadFile,
    language: str | None,
    hotwords: str | None,
    source: str,
) -> Transcript:
    form = build_request(
        file=audio, model=None, language=language, languages=None, prompt=None,
        response_format="json",
        temperature=None, granularities=[], hotwords=hotwords, beam_size=None, vad_filter=None,
        stream=False, task="transcribe",
    )  # fmt: skip
    model = services.transcription.model_name(None)
    return await services.transcription.transcribe(audio.file, form.options, model, source=source)


@router.post("/api/v1/recognize", summary="Recognise a file (seed-compatible)")
async def recognize(
    services: ServicesDep,
    audio: AudioField,
    language: Annotated[str | None, Form()] = None,
    hotwords: Annotated[str | None, Form()] = None,
) -> RecognizeResult:
    transcript = await _transcribe(services, audio, language, hotwords, "recognize")
    words = transcript.words
    confidence = sum(w.probability for w in words) / len(words) if words else 0.0
    return RecognizeResult(
        text=transcript.text,
        confidence=round(confidence, 4),
        language=transcript.language,
        duration=round(transcript.duration, 3),
        segments=[
            RecognizeSegment(text=s.text.strip(), start=s.start, end=s.end)
            for s in transcript.segments
        ],
    )


@router.post(
    "/recognition",
    summary="Recognise a file (FunASR HTTP-compatible)",
    response_model=FunAsrResult,
    responses={400: {"description": "`{code: 1, msg}`; never an HTTP 200 for an error"}},
)
async def funasr_recognition(
    services: ServicesDep,
    audio: AudioField,
    hotwords: Annotated[str | None, Form()] = None,
) -> FunAsrResult | JSONResponse:  # the model documents the success body
    try:
        transcript = await _transcribe(services, audio, None, hotwords, "recognition")
    except Exception as exc:
        # FunASR's clients read `code` and `msg`; unlike FunASR, the status is not 200.
        response = error_response(exc)
        if response.status_code >= 500:
            raise
        return JSONResponse({"code": 1, "msg": str(exc)}, status_code=response.status_code)
    return FunAsrResult(
        text=transcript.text,
        sentences=[
            Sentence(text=s.text.strip(), start=round(s.start * 1000), end=round(s.end * 1000))
            for s in transcript.segments
        ],
    )
