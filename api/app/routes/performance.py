"""``GET /api/v1/performance``: the served prices against the sale prices that came back.

Reports are computed off the request path, one at a time, and cached by
:class:`~api.app.operations.performance_reports.PerformanceReports` (the same
reports ``/metrics`` turns into gauges); this handler parses ``since``, turns
it into a sale day (the cache key);
:func:`~api.app.routes.report_responses.report_response` answers that day's
report, waiting for it (an await, no thread held).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.app.core.query_params import QueryCheckedRoute
from api.app.core.security import Access, requires_key
from api.app.operations.drift_reports import window_start
from api.app.operations.performance_reports import PerformanceReports
from api.app.routes.report_responses import (
    ERROR_RESPONSES,
    SINCE_FORMATS,
    report_response,
    since_moment,
)
from api.app.schemas.performance import PerformanceReport

router = APIRouter(prefix="/api/v1", tags=["model"], route_class=QueryCheckedRoute)

_DAY_SECONDS = 86400
_SINCE_DESCRIPTION = (
    "only houses sold from that day on (UTC): an ISO 8601 time or date, or a span back from "
    "now (`30d`, `12w`); the time of day is dropped (sale dates are days). Times before year "
    "1 or after 9999 (in UTC) count as the earliest or latest day there is. Anything else "
    "is a 422."
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
        **ERROR_RESPONSES,
    },
    summary="Realised performance",
)
async def get_performance(
    request: Request,
    since: Annotated[
        str | None,
        Query(
            description=_SINCE_DESCRIPTION,
            json_schema_extra=SINCE_FORMATS,
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
    reports: PerformanceReports | None = request.app.state.performance_reports
    # window_start: the day in UTC without overflowing at year 1 or 9999.
    key = None if since is None else window_start(since_moment(since), _DAY_SECONDS).date()
    return await report_response(
        request,
        reports,
        key,
        lambda model: model.manifest,
        name="performance",
        too_many="too many performance reports are being computed: retry later",
    )
