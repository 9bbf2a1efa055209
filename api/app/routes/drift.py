"""``GET /api/v1/drift``: the latest logged houses against the training profile.

Reports are computed off the request path, one at a time, and cached by
:class:`~api.app.operations.drift_reports.DriftReports` (the same reports ``/metrics``
turns into gauges); this handler parses ``since`` and rounds it to a cache key;
:func:`~api.app.routes.report_responses.report_response` answers that key's
report, waiting for it (an await, no thread held).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.app.core.query_params import QueryCheckedRoute
from api.app.core.security import Access, requires_key
from api.app.core.settings import Settings
from api.app.operations.drift_reports import DriftReports, window_start
from api.app.routes.report_responses import (
    ERROR_RESPONSES,
    SINCE_FORMATS,
    report_response,
    since_moment,
)
from api.app.schemas.drift import DriftReport

router = APIRouter(prefix="/api/v1", tags=["model"], route_class=QueryCheckedRoute)

_SINCE_DESCRIPTION = (
    "only houses logged from then on: an ISO 8601 time (UTC when it has no offset) or a span "
    "back from now (`30m`, `24h`, `7d`, `2w`). It is rounded down to a multiple of "
    "`DRIFT_SINCE_ROUNDING_SECONDS` (an hour by default, UTC) so that clients share cached "
    "reports; the report's `since` is the rounded time. Times before year 1 or after 9999 "
    "(in UTC) count as the earliest or latest time there is. Anything else is a 422."
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
        **ERROR_RESPONSES,
    },
    summary="Drift report",
)
async def get_drift(
    request: Request,
    since: Annotated[
        str | None,
        Query(
            description=_SINCE_DESCRIPTION,
            json_schema_extra=SINCE_FORMATS,
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
    reports: DriftReports | None = request.app.state.drift_reports
    key = (
        None
        if since is None
        else window_start(since_moment(since), settings.drift_since_rounding_seconds)
    )
    return await report_response(
        request,
        reports,
        key,
        lambda model: model,
        name="drift",
        too_many="too many drift reports are being computed: retry later, or use a `since` "
        "another client asked for",
    )
