"""``GET /api/v1/drift``: the latest logged houses against the training profile.

The same computation as ``regression-model drift`` (NumPy only, so the
worker loads neither pandas nor SciPy), over the ``DRIFT_WINDOW`` most recent
houses of the served model version, in the threadpool; a report is reused
for ``DRIFT_CACHE_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BeforeValidator
from sqlalchemy.exc import SQLAlchemyError

from api.app.dependencies import ModelServiceDep, SettingsDep
from api.app.exceptions import request_error
from api.app.prediction_log import PredictionLog
from api.app.schemas import ErrorResponse
from api.app.schemas.drift import DriftReport
from regression_model import __version__ as model_version
from regression_model.monitoring.drift import DriftAccumulator
from regression_model.monitoring.prediction_log import read_log

router = APIRouter(prefix="/api/v1", tags=["model"])

_cache: dict[tuple[int, datetime | None], tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


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
    log: PredictionLog | None = request.app.state.prediction_log
    if log is None:
        raise request_error(
            503, "*", "the prediction log is off: set DATABASE_URL or PREDICTION_LOG_PATH"
        )
    model = service.wait(settings.model_wait_seconds)
    key = (id(log), since)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < settings.drift_cache_seconds:
            return cached[1]
    accumulator = DriftAccumulator(model.manifest, model.config)
    try:
        for chunk in read_log(
            log.reader(), since=since, model_version=model_version, latest=settings.drift_window
        ):
            accumulator.add([inputs for inputs, _ in chunk], [price for _, price in chunk])
    except SQLAlchemyError as exc:
        raise request_error(
            503, "*", f"the prediction log's database cannot be read ({type(exc).__name__})"
        ) from None
    report = accumulator.report(
        model_version=model_version,
        generated_at=datetime.now(UTC),
        since=since,
        window=settings.drift_window,
    )
    with _cache_lock:
        _cache[key] = (time.monotonic(), report)
    return report
