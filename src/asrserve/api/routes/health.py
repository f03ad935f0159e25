"""Liveness, readiness and Prometheus metrics (open even when API keys are on)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from asrserve.api.deps import ServicesDep
from asrserve.api.schemas import Health, Readiness

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    # Still 200 while draining: the process is alive and finishing its work; a failing liveness
    # probe would have it killed before its streams and requests are done.
    return Health()


@router.get(
    "/ready",
    summary="Readiness: models loaded, room for work, not shutting down",
    response_model=Readiness,
)
async def ready(services: ServicesDep) -> JSONResponse:
    loaded = sorted(m.name for m in services.registry.loaded())
    reasons = []
    draining = services.drain.draining
    if draining:
        reasons.append(services.drain.reason)
    if services.options.default_model not in loaded:
        reasons.append(f"model {services.options.default_model} is not loaded yet")
    if services.admission.saturated:
        reasons.append("request queue is full")  # by count, or by its wait
    streams = services.streams.stats()
    body = Readiness(
        status="not_ready" if reasons else "ready",
        reasons=reasons,
        models_loaded=loaded,
        requests_active=services.admission.active,
        requests_waiting=services.admission.waiting,
        requests_wait_s=services.admission.wait_estimate_s(),
        draining=draining,
        streams_active=streams.active,
        streams_limit=streams.limit,
        stream_load_level=streams.load_level,
        streams_capacity=streams.capacity,
    )
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    payload, content_type = services.metrics.render()
    return Response(payload, media_type=content_type)
