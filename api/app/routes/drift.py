"""``GET /api/v1/drift``: the latest logged houses against the training profile.

Reports are computed off the request path, one at a time, and cached by
:class:`~api.app.operations.drift_reports.DriftReports` (the same reports ``/metrics``
turns into gauges); this handler parses ``since``, rounds it to a cache key,
and waits (an await, no thread held) for that key's report.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.app.core.exceptions import request_error
from api.app.core.security import Access, requires_key
from api.app.core.settings import Settings
from api.app.model_service import ModelService
from api.app.operations.drift_reports import (
    CachedReport,
    DriftReportError,
    DriftReports,
    window_start,
)
from api.app.schemas import ErrorResponse
from api.app.schemas.drift import DriftReport
from regression_model.monitoring.since import SPAN, parse_since

router = APIRouter(prefix="/api/v1", tags=["model"])

_SINCE_DESCRIPTION = (
    "only houses logged from then on: an ISO 8601 time (UTC when it has no offset) or a span "
    "back from now (`30m`, `24h`, `7d`, `2w`). It is rounded down to a multiple of "
    "`DRIFT_SINCE_ROUNDING_SECONDS` (an hour by default, UTC) so that clients share cached "
    "reports; the report's `since` is the rounded time. Times before year 1 or after 9999 "
    "(in UTC) count as the earliest or latest time there is. Anything else is a 422."
)


def _answer(entry: CachedReport) -> Response:
    # The bytes were rendered once, when the report was computed; `Age` says
    # how old the report is (older than DRIFT_CACHE_SECONDS while it refreshes).
    return Response(
        entry.body, media_type="application/json", headers={"Age": str(int(entry.age()))}
    )


@router.get(
    "/drift",
    response_model=DriftReport,
    dependencies=[requires_key(Access.KEYED)],
    responses={
        200: {
            "description": "The report, with an `Age` header (seconds since it was computed; "
            "`generated_at` says when). Reports are reused for `DRIFT_CACHE_SECONDS`; an "
            "older one is answered when its refresh takes longer than `DRIFT_WAIT_SECONDS`."
        },
        422: {"model": ErrorResponse, "description": "`since` is not a time nor a span"},
        503: {
            "model": ErrorResponse,
            "description": "the model is not loaded, the prediction log is off, its database "
            "cannot be read, or the report is still being computed after `DRIFT_WAIT_SECONDS` "
            "(or too many others are waiting): retry after `Retry-After` seconds",
        },
    },
    summary="Drift report",
)
async def get_drift(
    request: Request,
    since: Annotated[
        str | None,
        Query(
            description=_SINCE_DESCRIPTION,
            # The document says what parse_since takes (an RFC 3339 time, a
            # date, or a span); the handler parses it, so the 422 names `since`
            # in the API's own words.
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
    """PSI per feature, Kolmogorov-Smirnov for numbers, the share of unseen labels
    and the shift of predicted prices, for the most recent logged houses (up to
    `DRIFT_WINDOW`), against the training profile in the model's manifest.

    Each worker computes one report at a time, in a low-priority process of
    its own, and keeps the latest few: a request waits for its report up to
    `DRIFT_WAIT_SECONDS`."""
    # Read directly, not as FastAPI dependencies (cheaper per request: this
    # route must stay cheap when flooded).
    settings: Settings = request.app.state.settings
    service: ModelService = request.app.state.model_service
    reports: DriftReports | None = request.app.state.drift_reports
    key = None
    if since is not None:
        try:
            moment = parse_since(since)
        except ValueError as exc:
            raise request_error(422, "since", str(exc)) from None
        key = window_start(moment, settings.drift_since_rounding_seconds)
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
    job = reports.refresh(model, key)
    retry_after = str(max(1, math.ceil(settings.drift_wait_seconds)))
    if job is None and cached is None:
        raise request_error(
            503,
            "*",
            "too many drift reports are being computed: retry later, or use a `since` "
            "another client asked for",
            headers={"Retry-After": retry_after},
        )
    if job is not None:
        # asyncio.wait, not wait_for: a timeout must not cancel the computation,
        # which other requests and the cache share.
        waited = asyncio.wrap_future(job)
        await asyncio.wait([waited], timeout=settings.drift_wait_seconds)
        if waited.done():
            error = waited.exception()
            if error is None:
                return _answer(waited.result())
            if isinstance(error, SQLAlchemyError) or getattr(error, "database", False):
                message = f"the prediction log's database cannot be read ({_error_name(error)})"
            else:
                message = "the drift report could not be computed (the server log says why)"
            raise request_error(503, "*", message, headers={"Retry-After": retry_after})
    if cached is not None:
        return _answer(cached)  # the previous report, while its refresh goes on
    raise request_error(
        503,
        "*",
        f"the drift report is still being computed: retry in {retry_after} s",
        headers={"Retry-After": retry_after},
    )


def _error_name(error: BaseException) -> str:
    if isinstance(error, DriftReportError):
        return str(error).split(":", 1)[0]
    return type(error).__name__
