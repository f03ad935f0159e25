"""OpenAI-compatible `/v1/audio/transcriptions` and `/v1/audio/translations`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from asrserve.api.deps import ServicesDep, TranscriptionForm, TranslationForm
from asrserve.api.errors import error_body, status_for
from asrserve.api.forms import TranscriptionRequest, transcript_response
from asrserve.engine import Segment, error_code

router = APIRouter(prefix="/v1/audio", tags=["OpenAI audio"])


@router.post("/transcriptions", summary="Transcribe audio (OpenAI-compatible)")
async def create_transcription(services: ServicesDep, form: TranscriptionForm) -> Response:
    if form.stream:
        return await _streamed(services, form)
    return await _respond(services, form, source="transcriptions")


@router.post("/translations", summary="Translate audio to English text (OpenAI-compatible)")
async def create_translation(services: ServicesDep, form: TranslationForm) -> Response:
    return await _respond(services, form, source="translations")


async def _respond(services: ServicesDep, form: TranscriptionRequest, *, source: str) -> Response:
    model = services.transcription.model_name(form.model)
    transcript = await services.transcription.transcribe(
        form.file.file, form.options, model, source=source
    )
    return transcript_response(
        transcript, form.response_format,
        include_words=form.include_words, include_segments=form.include_segments,
    )  # fmt: skip


def _event(payload: dict[str, object]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def _streamed(services: ServicesDep, form: TranscriptionRequest) -> Response:
    """Server-sent events as OpenAI sends them: a `transcript.text.delta` per decoded segment
    (with our segment times added), then `transcript.text.done` with the whole text."""
    model = services.transcription.model_name(form.model)
    info, segments = await services.transcription.stream(
        form.file.file, form.options, model, source="transcriptions_stream"
    )

    async def events() -> AsyncIterator[bytes]:
        texts: list[str] = []
        try:
            async for segment in segments:
                text = segment.text.strip()
                if not text:
                    continue
                # Deltas join into exactly the final text, as OpenAI's do.
                yield _event(_delta(segment, text if not texts else " " + text))
                texts.append(text)
        except Exception as exc:
            # Headers are gone already: the failure travels as an event the client can read.
            yield _event(
                {
                    "type": "error",
                    **error_body(status_for(exc), str(exc), error_code(exc, "internal_error")),
                }
            )
            return
        yield _event(
            {
                "type": "transcript.text.done",
                "text": " ".join(texts),
                "language": info.language,
                "duration": round(info.duration, 3),
            }
        )

    return _ClosingStreamingResponse(
        events(),
        on_close=segments.aclose,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _ClosingStreamingResponse(StreamingResponse):
    """Runs `on_close` however the response ends. Starlette skips a background task when the
    client disconnects, and never starts the body at all when it left before the headers."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_close: Callable[[], Awaitable[None]],
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


def _delta(segment: Segment, delta: str) -> dict[str, object]:
    return {
        "type": "transcript.text.delta",
        "delta": delta,
        "segment_id": str(segment.id),
        "start": segment.start,
        "end": segment.end,
    }
