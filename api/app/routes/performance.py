"""``GET /api/v1/performance``: the served prices against the sale prices that came back.

Reports are computed off the request path, one at a time, and cached by
:class:`~api.app.operations.performance_reports.PerformanceReports` (the same
reports ``/metrics`` turns into gauges); this handler parses ``since``, turns
it into a sale day (the cache key), and waits (an await, no thread held) for
that day's report.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.app.core.exceptions import request_error
from api.app.core.security import Access, requires_key
from api.app.core.settings import Settings
from api.app.model_service import ModelService
from api.app.operations.drift_reports import window_start
from api.app.operations.performance_reports import (
    CachedReport,
    PerformanceReportError,
    PerformanceReports,
)
from api.app.schemas import ErrorResponse
from api.app.schemas.performance import PerformanceReport
from regression_model.monitoring.since import SPAN, parse_since

router = APIRouter(prefix="/api/v1", tags=["model"])

_DAY_SECONDS = 86400
_SINCE_DESCRIPTION = (
    "only houses sold from that day on (UTC): an ISO 8601 time or date, or a span back from "
    "now (`30d`, `12w`); the time of day is dropped (sale dates are days). Times before year "
    "1 or after 9999 (in UTC) count as the earliest or latest day there is. Anything else "
    "is a 422."
)


def _answer(entry: CachedReport) -> Response:
    return Response(
        entry.body, media_type="application/json", headers={"Age": str(int(entry.age()))}
    )


@router.get(
    "/performance",
    response_model=PerformanceReport,
    dependencies=[requires_key(Access.KEYED)],
    responses={
        200: {
            "description": "The report, with an `Age` header (seconds since it was computed). "
            "Reports are reused for `DRIFT_CACHE_SECONDS`; an older one is answered when its "
            "refresh takes longer than `DRIFT_WAIT_SECONDS`."
        },
        422: {"model": ErrorResponse, "description": "`since` is not a time nor a span"},
        503: {
            "model": ErrorResponse,
            "description": "the model is not loaded, the prediction log is off, its database "
            "cannot be read, or the report is still being computed after `DRIFT_WAIT_SECONDS` "
            "(or too many others are waiting): retry after `Retry-After` seconds",
        },
    },
    summary="Realised performance",
)
async def get_performance(
    request: Request,
    since: Annotated[
        str | None,
        Query(
            description=_SINCE_DESCRIPTION,
            json_schema_extra={
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "string", "format": "date"},
                    {"type": "string", "pattern": "^" + SPAN.pattern + "$"},
                ]
            },
        ),
    ] = None,
) -> Response:
    """RMSLE, bias (mean log error: above 0, priced too high), MAE and each price
    range's realised coverage of the prices this model version gave houses that
    have since sold (the outcomes posted to `/api/v1/outcomes`), overall and by
    slice, beside the cross-validated figures of the model's manifest, with a
    verdict once `min_outcomes` sales are matched (config.yml's `performance`).

    An outcome refers to a price by `request:<request id>:<row>` or by the house's
    key (`Id`): the latest price given to that key on or before the sale day, else
    the latest after it. At most the 100,000 most recent sales are read."""
    settings: Settings = request.app.state.settings
    service: ModelService = request.app.state.model_service
    reports: PerformanceReports | None = request.app.state.performance_reports
    key = None
    if since is not None:
        try:
            moment = parse_since(since)
        except ValueError as exc:
            raise request_error(422, "since", str(exc)) from None
        # window_start: the day in UTC without overflowing at year 1 or 9999.
        key = window_start(moment, _DAY_SECONDS).date()
    if reports is None:
        raise request_error(
            503, "*", "the prediction log is off: set DATABASE_URL or PREDICTION_LOG_PATH"
        )
    cached = reports.cached(key)
    if cached is not None and reports.is_fresh(cached):
        return _answer(cached)
    loaded = service.model
    # Still loading: wait for it as /predict does.
    model = (
        loaded
        if loaded is not None
        else await run_in_threadpool(service.wait, settings.model_wait_seconds)
    )
    job = reports.refresh(model.manifest, key)
    retry_after = str(max(1, math.ceil(settings.drift_wait_seconds)))
    if job is None and cached is None:
        raise request_error(
            503,
            "*",
            "too many performance reports are being computed: retry later",
            headers={"Retry-After": retry_after},
        )
    if job is not None:
        # asyncio.wait, not wait_for: a timeout must not cancel the shared computation.
        waited = asyncio.wrap_future(job)
        await asyncio.wait([waited], timeout=settings.drift_wait_seconds)
        if waited.done():
            error = waited.exception()
            if error is None:
                return _answer(waited.result())
            if isinstance(error, PerformanceReportError) and error.database:
                name = str(error).split(":", 1)[0]
                message = f"the prediction log's database cannot be read ({name})"
            else:
                message = "the performance report could not be computed (the server log says why)"
            raise request_error(503, "*", message, headers={"Retry-After": retry_after})
    if cached is not None:
        return _answer(cached)
    raise request_error(
        503,
        "*",
        f"the performance report is still being computed: retry in {retry_after} s",
        headers={"Retry-After": retry_after},
    )
