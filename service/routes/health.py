"""GET (or HEAD) /healthz (open to all, for load balancers and the container's HEALTHCHECK) and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import ApiKey, EngineDep, MetricsDep
from ..metrics import CONTENT_TYPE

router = APIRouter()


@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)  # monitors that only check the status
async def healthz(engine: EngineDep) -> dict:
    # Answering at all means the lifespan finished, so the model is loaded and the pool is up.
    return {"status": "ok", "model": engine.model_id, "engine": engine.recognizer.engine}


@router.get("/metrics", dependencies=[ApiKey])
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
