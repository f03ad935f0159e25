"""Dependencies as Annotated aliases: routes name what they need, the app state provides it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
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
from asrserve.engine.registry import ModelRegistry
from asrserve.jobs import JobQueue, JobService
from asrserve.observability.metrics import Metrics


@dataclass(slots=True)
class Services:
    """Everything the routes share, built once in the app's lifespan."""

    options: ServerOptions
    registry: ModelRegistry
    metrics: Metrics
    admission: Admission
    transcription: TranscriptionService
    api_keys: ApiKeys
    jobs: JobService
    runner: JobQueue


def get_services(request: Request) -> Services:
    return request.app.state.services


def require_api_key(connection: HTTPConnection) -> None:
    connection.app.state.services.api_keys.check(connection)


ServicesDep = Annotated[Services, Depends(get_services)]
TranscriptionForm = Annotated[TranscriptionRequest, Depends(transcription_form)]
TranslationForm = Annotated[TranscriptionRequest, Depends(translation_form)]
JobForm = Annotated[JobRequest, Depends(job_form)]
