"""Dependencies as Annotated aliases: routes name what they need, the app state provides it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, WebSocket
from starlette.requests import HTTPConnection

from asrserve.api.admission import Admission
from asrserve.api.auth import ApiKeys
from asrserve.api.forms import (
    JobRequest,
    TranscriptionRequest,
    job_form,
    transcription_form,
    translation_form,
)
from asrserve.api.options import ServerOptions
from asrserve.api.service import TranscriptionService
from asrserve.engine import ModelRegistry, Transcript
from asrserve.jobmodel import DEFAULT_PAGE_SIZE, Job, JobPage, JobState
from asrserve.observability.metrics import Metrics, StreamStats


class JobsBackend(Protocol):
    """What the job routes call; `asrserve.jobs.JobService` is the one the runtime gives.
    Every method blocks: call it from a worker thread."""

    def submit(
        self,
        upload: Any,
        *,
        filename: str,
        model: str,
        options: Mapping[str, Any],
        webhook_url: str | None = None,
    ) -> Job: ...

    def get(self, job_id: str) -> Job: ...

    def result(self, job_id: str) -> Transcript: ...

    def cancel_or_delete(self, job_id: str) -> Job | None: ...

    def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        state: JobState | str | None = None,
    ) -> JobPage: ...


class StreamHandler(Protocol):
    """The FunASR WebSocket protocol (`asrserve.ws.StreamServer`), served on the HTTP port."""

    async def handle(self, websocket: WebSocket) -> None: ...

    def stats(self) -> StreamStats: ...


class DrainState(Protocol):
    """Whether the server is shutting down (`asrserve.runtime.drain.Drain`, begun on SIGTERM)."""

    @property
    def draining(self) -> bool: ...

    @property
    def reason(self) -> str: ...


@dataclass(slots=True)
class Services:
    """Everything the routes share, built once in the app's lifespan."""

    options: ServerOptions
    registry: ModelRegistry
    metrics: Metrics
    admission: Admission
    transcription: TranscriptionService
    api_keys: ApiKeys
    jobs: JobsBackend
    streams: StreamHandler
    drain: DrainState


def get_services(request: Request) -> Services:
    return request.app.state.services


def require_api_key(connection: HTTPConnection) -> None:
    connection.app.state.services.api_keys.check(connection)


ServicesDep = Annotated[Services, Depends(get_services)]
TranscriptionForm = Annotated[TranscriptionRequest, Depends(transcription_form)]
TranslationForm = Annotated[TranscriptionRequest, Depends(translation_form)]
JobForm = Annotated[JobRequest, Depends(job_form)]
