"""``GET /metrics``: Prometheus exposition of every worker's counts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.app import metrics
from api.app.dependencies import ModelServiceDep

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def get_metrics(service: ModelServiceDep) -> Response:
    return Response(metrics.render(service.manifest), media_type=metrics.CONTENT_TYPE)
