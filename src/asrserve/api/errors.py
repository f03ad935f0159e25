"""Engine errors become HTTP responses here, in one table, with OpenAI's error body.

`{"error": {"message", "type", "param", "code"}}` is what the openai SDK parses into its
exceptions, so clients of ours get the same exception types they get from OpenAI.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from asrserve.engine import (
    AsrError,
    AudioDecodeError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidOptionError,
    ModelChecksumError,
    ModelNotFoundError,
    UnsupportedLanguageError,
    error_code,
)
from asrserve.engine.batching import BatcherClosedError
from asrserve.jobmodel.errors import (
    InvalidCursorError,
    InvalidWebhookUrlError,
    JobNotFinishedError,
    JobNotFoundError,
    JobResultUnavailableError,
    JobStoreUnavailableError,
)

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides.
STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (EmptyAudioError, 400),
    (AudioTooLargeError, 413),
    (AudioTooLongError, 413),
    (AudioDecodeError, 415),
    (UnsupportedLanguageError, 400),
    (InvalidOptionError, 400),
    (ModelNotFoundError, 404),
    (ModelChecksumError, 503),
    (BatcherClosedError, 503),
    (JobNotFoundError, 404),
    (JobNotFinishedError, 409),
    (JobResultUnavailableError, 409),
    (InvalidWebhookUrlError, 400),
    (InvalidCursorError, 400),
    (JobStoreUnavailableError, 503),
    (AsrError, 400),
)


class ApiError(Exception):
    """A refusal decided by the service itself (auth, limits, unknown ids)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}


BODY_TOO_LARGE = "asrserve.body_too_large"
"""Scope key set when the cap was crossed: FastAPI turns any error raised while it reads a form
into a generic 400, so the error handler looks here to answer 413 instead."""


def body_refusal(max_bytes: int | None) -> dict[str, object]:
    limit_mb = (max_bytes or 0) / (1024 * 1024)
    return error_body(
        413,
        f"The upload is larger than the {limit_mb:g} MB limit; send a shorter recording, "
        "compress it (mp3, opus), or raise ASRSERVE_MAX_UPLOAD_MB.",
        "upload_too_large",
    )


def shutdown_refusal() -> dict[str, object]:
    return error_body(
        503,
        "The server shut down before this request finished (its shutdown grace ran out); "
        "send it again, or submit long files to /v1/jobs, which survive restarts.",
        "server_shutting_down",
    )


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def status_for(exc: Exception) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return JSONResponse(
            error_body(exc.status, exc.message, exc.code, exc.param),
            status_code=exc.status,
            headers=exc.headers,
        )
    status = status_for(exc)
    code = error_code(exc, "internal_error")
    # A dependency that is down (the job database, a closing model) comes back by itself.
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(error_body(status, str(exc), code), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(AsrError)
    async def _asr_error(request: Request, exc: AsrError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(BatcherClosedError)
    async def _closing(request: Request, exc: BatcherClosedError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in {"body", "query", "form"})
        message = f"{where or 'request'}: {first.get('msg', 'invalid value')}"
        return JSONResponse(
            error_body(400, message, "invalid_request", where or None), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if BODY_TOO_LARGE in request.scope:
            limit = request.scope[BODY_TOO_LARGE]
            return JSONResponse(
                body_refusal(limit), status_code=413, headers={"Connection": "close"}
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail), code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never an HTML page or a bare 500 without a body: log it, say it in OpenAI's shape.
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(
            error_body(
                500, "The server failed on this request; it has been logged.", "internal_error"
            ),
            status_code=500,
        )
