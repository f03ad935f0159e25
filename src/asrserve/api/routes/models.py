"""OpenAI-compatible `/v1/models`: the models clients may ask for."""

from __future__ import annotations

import time

from fastapi import APIRouter

from asrserve.api.deps import ServicesDep
from asrserve.api.errors import ApiError
from asrserve.api.schemas import ModelCard, ModelList
from asrserve.engine import CATALOGUE

router = APIRouter(prefix="/v1/models", tags=["OpenAI models"])
_STARTED = int(time.time())


def _card(name: str, loaded: set[str]) -> ModelCard:
    entry = CATALOGUE.get(name)
    return ModelCard(
        id=name,
        created=_STARTED,
        owned_by="asrserve",
        engine=entry.engine if entry else None,
        languages=list(entry.languages) if entry and entry.languages else None,
        loaded=name in loaded,
    )


@router.get("", summary="List the models served")
async def list_models(services: ServicesDep) -> ModelList:
    loaded = {m.name for m in services.registry.loaded()}
    return ModelList(data=[_card(name, loaded) for name in services.options.served()])


@router.get("/{model_id:path}", summary="Describe one served model")
async def get_model(model_id: str, services: ServicesDep) -> ModelCard:
    if model_id not in services.options.served():
        raise ApiError(404, f"Model {model_id!r} is not served here.", code="model_not_found")
    return _card(model_id, {m.name for m in services.registry.loaded()})
