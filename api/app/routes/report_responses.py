"""What ``GET /api/v1/drift`` and ``GET /api/v1/performance`` share: their
``since`` (documented as :data:`SINCE_FORMATS`, parsed by :func:`since_moment`),
their errors (:data:`ERROR_RESPONSES`), and the answer once each has turned
``since`` into its cache key (:func:`report_response`): the cached report when
fresh, else a wait (an await, no thread held) of up to ``DRIFT_WAIT_SECONDS``
for its computation, the previous report when that takes longer, or a 503
with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.app.core.exceptions import request_error
from api.app.core.settings import Settings
from api.app.model_service import ModelService
from api.app.operations.report_cache import CachedReport, ReportCache, ReportError
from api.app.schemas import ErrorResponse
from regression_model import Model
from regression_model.monitoring.since import SPAN, parse_since

Key = TypeVar("Key")
Source = TypeVar("Source")

#: ``since``'s schema: what parse_since takes (an RFC 3339 time, a date, or a
#: span); the handler parses it, so the 422 names ``since`` in the API's own words.
SINCE_FORMATS: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": "^" + SPAN.pattern + "$"},
    ]
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "`since` is not a time nor a span"},
    503: {
        "model": ErrorResponse,
        "description": "the model is not loaded, the prediction log is off, its database "
        "cannot be read, or the report is still being computed after `DRIFT_WAIT_SECONDS` "
        "(or too many others are waiting): retry after `Retry-After` seconds",
    },
}


def since_moment(since: str) -> datetime:
    """``since`` as a time (see :func:`~regression_model.monitoring.since.parse_since`);
    a 422 naming ``since`` when it is none."""
    try:
        return parse_since(since)
    except ValueError as exc:
        raise request_error(422, "since", str(exc)) from None


def answer(entry: CachedReport) -> Response:
    # The bytes were rendered once, when the report was computed; `Age` says
    # how old the report is (older than DRIFT_CACHE_SECONDS while it refreshes).
    return Response(
        entry.body, media_type="application/json", headers={"Age": str(int(entry.age()))}
    )


async def report_response(
    request: Request,
    reports: ReportCache[Key, Source] | None,
    key: Key | None,
    source: Callable[[Model], Source],
    *,
    name: str,
    too_many: str,
) -> Response:
    """``key``'s report from ``reports`` (None: the prediction log is off),
    computed from ``source(model)`` when it is stale or missing. ``name`` is
    the report's (``drift``, ``performance``) in the 503s' messages;
    ``too_many`` the message when too many others wait."""
    # Read directly, not as FastAPI dependencies (cheaper per request: these
    # routes must stay cheap when flooded).
    settings: Settings = request.app.state.settings
    service: ModelService = request.app.state.model_service
    if reports is None:
        raise request_error(
            503, "*", "the prediction log is off: set DATABASE_URL or PREDICTION_LOG_PATH"
        )
    cached = reports.cached(key)
    if cached is not None and reports.is_fresh(cached):
        return answer(cached)
    loaded = service.model
    # Still loading: wait for it as /predict does.
    model = (
        loaded
        if loaded is not None
        else await run_in_threadpool(service.wait, settings.model_wait_seconds)
    )
    job = reports.refresh(source(model), key)
    retry_after = str(max(1, math.ceil(settings.drift_wait_seconds)))
    if job is None and cached is None:
        raise request_error(503, "*", too_many, headers={"Retry-After": retry_after})
    if job is not None:
        # asyncio.wait, not wait_for: a timeout must not cancel the computation,
        # which other requests and the cache share.
        waited = asyncio.wrap_future(job)
        await asyncio.wait([waited], timeout=settings.drift_wait_seconds)
        if waited.done():
            error = waited.exception()
            if error is None:
                return answer(waited.result())
            if isinstance(error, SQLAlchemyError) or (
                isinstance(error, ReportError) and error.database
            ):
                message = f"the prediction log's database cannot be read ({_error_name(error)})"
            else:
                message = f"the {name} report could not be computed (the server log says why)"
            raise request_error(503, "*", message, headers={"Retry-After": retry_after})
    if cached is not None:
        return answer(cached)  # the previous report, while its refresh goes on
    raise request_error(
        503,
        "*",
        f"the {name} report is still being computed: retry in {retry_after} s",
        headers={"Retry-After": retry_after},
    )


def _error_name(error: BaseException) -> str:
    if isinstance(error, ReportError):
        return str(error).split(":", 1)[0]
    return type(error).__name__
