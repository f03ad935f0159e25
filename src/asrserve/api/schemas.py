"""Response models that OpenAPI documents (the transcript bodies come from engine.formats)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    engine: str | None = None
    languages: list[str] | None = None
    """None: multilingual."""
    loaded: bool = False


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    reasons: list[str] = []
    models_loaded: list[str] = []
    requests_active: int = 0
    requests_waiting: int = 0
    requests_wait_s: float | None = None
    """About how long a request arriving now would wait for a decode slot (0 with one free),
    from how long recent requests held theirs; null while all are taken and none has finished."""
    draining: bool = False
    """The server is shutting down (SIGTERM): it finishes its work and takes no new streams."""
    streams_active: int = 0
    streams_limit: int = 0
    """Live streams open, and admitted at most (with `max_streams` auto, the memory bound)."""
    stream_load_level: int = 0
    """0 normal, 1 fewer partials, 2 finals only, 3 new streams refused with server_busy. Only
    informative: HTTP requests are still served at every level, so readiness does not depend
    on it."""
    streams_capacity: int | None = None
    """Streams like the recent ones this server keeps real time for, estimated from live RTF
    (the final model's busy share per stream over the last minute); null until streams have
    sent enough audio. An estimate to plan replicas with: admission follows the live lag."""


class Sentence(BaseModel):
    text: str
    start: int
    """Milliseconds."""
    end: int


class FunAsrResult(BaseModel):
    text: str
    sentences: list[Sentence]
    code: int = 0


class RecognizeSegment(BaseModel):
    text: str
    start: float
    end: float


class RecognizeResult(BaseModel):
    text: str
    confidence: float
    """Mean word probability, 0-1."""
    language: str
    duration: float
    segments: list[RecognizeSegment]
