"""GET /v1/models: the one loaded model, in OpenAI's list shape."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import ApiKey, EngineDep
from ..errors import NotFound
from ..recognizer import Engine

router = APIRouter(dependencies=[ApiKey])


def _model_card(engine: Engine) -> dict:
    return {"id": engine.model_id, "object": "model", "created": engine.model_created, "owned_by": "edgescribe"}


@router.get("/v1/models")
async def list_models(engine: EngineDep) -> dict:
    return {"object": "list", "data": [_model_card(engine)]}


@router.get("/v1/models/{model_id}")
async def get_model(model_id: str, engine: EngineDep) -> dict:
    if model_id != engine.model_id:
        raise NotFound(f"no model {model_id!r} here; this server has {engine.model_id!r} (GET /v1/models)", "model")
    return _model_card(engine)
