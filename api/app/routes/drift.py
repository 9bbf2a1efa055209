"""``GET /api/v1/drift``: the latest logged houses against the training profile.

Computed in the threadpool by :class:`~api.app.drift_reports.DriftReports`
(the same reports ``/metrics`` turns into gauges), reused for
``DRIFT_CACHE_SECONDS``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BeforeValidator
from sqlalchemy.exc import SQLAlchemyError

from api.app.dependencies import ModelServiceDep, SettingsDep
from api.app.drift_reports import DriftReports
from api.app.exceptions import request_error
from api.app.schemas import ErrorResponse
from api.app.schemas.drift import DriftReport
from api.app.security import Access, requires_key

router = APIRouter(prefix="/api/v1", tags=["model"])


def _iso_8601(value: object) -> object:
    """Only ISO 8601 times (pydantic alone would also take a number of seconds)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("expected an ISO 8601 time, such as 2026-11-27T00:00:00Z") from None
    return value


@router.get(
    "/drift",
    response_model=DriftReport,
    dependencies=[requires_key(Access.KEYED)],
    responses={
        503: {
            "model": ErrorResponse,
            "description": "the model is not loaded, the prediction log is off, or its "
            "database cannot be read",
        }
    },
    summary="Drift report",
)
def get_drift(
    request: Request,
    service: ModelServiceDep,
    settings: SettingsDep,
    since: Annotated[
        datetime | None,
        BeforeValidator(_iso_8601),
        Query(description="only houses logged from then on (ISO 8601)"),
    ] = None,
) -> dict[str, Any]:
    """PSI per feature, Kolmogorov-Smirnov for numbers, the share of unseen labels
    and the shift of predicted prices, for the most recent logged houses (up to
    `DRIFT_WINDOW`), against the training profile in the model's manifest."""
    reports: DriftReports | None = request.app.state.drift_reports
    if reports is None:
        raise request_error(
            503, "*", "the prediction log is off: set DATABASE_URL or PREDICTION_LOG_PATH"
        )
    model = service.wait(settings.model_wait_seconds)
    try:
        return reports.report(model, since)
    except SQLAlchemyError as exc:
        raise request_error(
            503, "*", f"the prediction log's database cannot be read ({type(exc).__name__})"
        ) from None
