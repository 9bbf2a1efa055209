"""``GET /metrics``: Prometheus exposition of every worker's counts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.app import metrics
from api.app.dependencies import ModelServiceDep, SettingsDep
from api.app.exceptions import request_error

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def get_metrics(service: ModelServiceDep, settings: SettingsDep) -> Response:
    if not settings.metrics:
        raise request_error(404, "path", "metrics are off (METRICS=false)")
    return Response(metrics.render(service.manifest), media_type=metrics.CONTENT_TYPE)
