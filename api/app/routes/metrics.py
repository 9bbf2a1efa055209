"""``GET /metrics``: Prometheus exposition of every worker's counts, the
model served and, when the prediction log is on, the latest drift and
performance reports."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.app.core.dependencies import ModelServiceDep, SettingsDep
from api.app.core.exceptions import request_error
from api.app.core.query_params import QueryCheckedRoute
from api.app.core.security import Access, requires_key
from api.app.operations import metrics
from api.app.operations.drift_reports import DriftReports
from api.app.operations.performance_reports import PerformanceReports

router = APIRouter(route_class=QueryCheckedRoute)


# Counts and aggregates, no value a client sent: open for a scraper on a private
# network unless METRICS_REQUIRE_KEY (security.py).
@router.get("/metrics", include_in_schema=False, dependencies=[requires_key(Access.METRICS)])
async def get_metrics(
    request: Request, service: ModelServiceDep, settings: SettingsDep
) -> Response:
    if not settings.metrics:
        raise request_error(404, "path", "metrics are off (METRICS=false)")
    reports: DriftReports | None = request.app.state.drift_reports
    # Never waits: the latest report, refreshed in the background when stale.
    drift_report = reports.latest(service.model) if reports is not None else None
    performance: PerformanceReports | None = request.app.state.performance_reports
    performance_report = performance.latest(service.manifest) if performance else None
    return Response(
        metrics.render(service.manifest, drift_report, performance_report),
        media_type=metrics.CONTENT_TYPE,
    )
