"""``POST /api/v1/predict``: price houses with the package's ``Model`` (loaded once per worker)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic_core import to_json

from api.app.core.exceptions import INPUTS, RequestRejected, request_error
from api.app.core.json_body import StrictJSONRoute
from api.app.core.offload import run_cpu_bound
from api.app.core.request_context import current_request_id
from api.app.core.security import Access, requires_key
from api.app.core.settings import Settings
from api.app.model_service import ModelService
from api.app.operations import metrics
from api.app.operations.log_writer import PredictionLog
from api.app.operations.shadow import Shadow
from api.app.schemas import (
    ErrorDetail,
    ErrorResponse,
    IgnoredFieldDetail,
    PredictionResponse,
    PredictRequest,
)
from regression_model import UnknownCoverageError, ValidationResult, shown_name

router = APIRouter(prefix="/api/v1", tags=["predictions"], route_class=StrictJSONRoute)

#: Batches up to this many houses are scored on the event loop (tens of
#: microseconds a house: cheaper than a hop to the threadpool); larger ones in
#: the threadpool, so the loop keeps serving other requests meanwhile.
INLINE_HOUSES = 16

#: The query parameter that asks for ranges at some coverages only.
COVERAGE = "coverage"
#: At most this many ``coverage`` values a request (a model has a few
#: coverages; the bound keeps an error naming them short).
MAX_COVERAGES = 10

_ERRORS = {
    401: {
        "model": ErrorResponse,
        "description": "API_KEY is set and X-API-Key is missing or wrong",
    },
    413: {"model": ErrorResponse, "description": "body or number of houses over the limit"},
    415: {
        "model": ErrorResponse,
        "description": "the body is not sent as application/json, or is compressed",
    },
    422: {
        "model": ErrorResponse,
        "description": "malformed body (invalid JSON, NaN/Infinity, wrong envelope), a "
        "`coverage` the model has no range for, or no house could be priced (`predictions` "
        "then holds one null per house)",
    },
    503: {"model": ErrorResponse, "description": "the model is not loaded (see /api/v1/ready)"},
}


@router.post(
    "/predict",
    response_model=PredictionResponse,
    responses=_ERRORS,  # type: ignore[arg-type]
    # Checked before the body is read (StrictJSONRoute).
    dependencies=[requires_key(Access.KEYED)],
    summary="Price houses",
)
async def predict(
    body: PredictRequest,
    request: Request,
    explain: Annotated[
        bool, Query(description="also split each price into the model's terms")
    ] = False,
    strict: Annotated[
        bool | None,
        Query(
            description="refuse fields the model does not know (an error of the house) instead "
            "of ignoring them with a warning; default: the server's STRICT_FIELDS setting"
        ),
    ] = None,
    coverage: Annotated[
        list[float] | None,
        Query(
            max_length=MAX_COVERAGES,
            description="the ranges to return, by coverage (repeatable: `?coverage=0.8"
            "&coverage=0.9`); default: every coverage the model was calibrated for (the model "
            "card and this parameter's `enum` list them). Another is a 422 naming them",
        ),
    ] = None,
) -> Response:
    """Price each house; a house that cannot be priced gets `null` and errors
    naming its row and field, while the others are still priced (200). When no
    house can be priced the answer is 422 with the same errors.

    With `?explain=true`, each priced house also gets its explanation: the
    model is a sum, so the price splits exactly into one term per variable.

    A field the model does not know is never dropped silently: the house is
    priced without it and `warnings` names it (with the known field it is
    closest to, if any); with `?strict=true` it is an error of that house.

    Each priced house also gets its price's ranges in `intervals`: at each
    coverage, the range a house like it sells within that often (80 %: four
    houses in five); `?coverage=0.9` returns that range only.
    """
    # Read directly, not as FastAPI dependencies: resolving those per request
    # cost more than pricing the house.
    settings: Settings = request.app.state.settings
    service: ModelService = request.app.state.model_service
    if len(body.inputs) > settings.max_rows:
        raise request_error(
            413,
            INPUTS,
            f"{len(body.inputs)} houses in one request; at most {settings.max_rows} are "
            "accepted: split the batch",
        )
    wait = settings.model_wait_seconds
    # Stage timings for the metrics and the Server-Timing header (the JSON
    # parser put "parse" here).
    timings: dict[str, float] = request.scope.setdefault("state", {}).setdefault("timings", {})
    if strict is None:
        strict = settings.strict_fields
    envelope = _unknown_request_keys(body, strict=strict)
    if envelope and strict:
        raise RequestRejected(422, [ErrorDetail(**detail) for detail in envelope])
    shadow: Shadow | None = request.app.state.shadow
    # The champion's validation results, kept for a shadow challenger: it
    # prices the same houses by the same rules without checking them again.
    validated: list[ValidationResult] | None = [] if shadow and shadow.shadowing else None
    try:
        if len(body.inputs) <= INLINE_HOUSES and service.is_ready:
            result = service.predict(
                body.inputs,
                wait,
                explain=explain,
                strict=strict,
                coverages=coverage,
                timings=timings,
                validated=validated,
            )
        else:
            result = await run_cpu_bound(
                service.predict,
                body.inputs,
                wait,
                explain=explain,
                strict=strict,
                coverages=coverage,
                timings=timings,
                validated=validated,
            )
    except UnknownCoverageError as unknown:
        raise request_error(422, COVERAGE, f"{unknown} (leave {COVERAGE} out for all)") from None
    if envelope:
        result["warnings"] = [*envelope, *(result["warnings"] or [])]
    if settings.metrics:
        metrics.observe_prediction(
            len(body.inputs),
            result["predictions"],
            result["errors"],
            timings,
            service.input_fields,
            warnings=result["warnings"],
        )
    log: PredictionLog | None = request.app.state.prediction_log
    log_id = None
    if log is not None:
        # It serialises the houses: a few microseconds each, off the event
        # loop for batches that were scored off it.
        entry = (
            current_request_id() or "",
            body.inputs,
            result["predictions"],
            result["errors"],
            result["version"],
        )
        if len(body.inputs) <= INLINE_HOUSES:
            log_id = log.record(*entry, ranges=result["intervals"])
        else:
            log_id = await run_cpu_bound(log.record, *entry, ranges=result["intervals"])
    priced = sum(price is not None for price in result["predictions"])
    if shadow is not None and validated is not None and priced:
        # The challenger prices the same houses later, in its own thread.
        shadow.submit(log_id, body.inputs, validated, strict=strict)
    # Counts (never values) for the access log line.
    request.state.houses = len(body.inputs)
    request.state.priced = priced
    request.state.rejected = len(body.inputs) - priced
    if priced == 0:
        errors = [ErrorDetail.model_validate(error) for error in result["errors"] or []]
        warnings = [IgnoredFieldDetail.model_validate(w) for w in result["warnings"] or []]
        raise RequestRejected(
            422, errors, predictions=result["predictions"], warnings=warnings or None
        )
    # The package's result already has the response's shape (PredictionResponse,
    # which documents it): serialised as it is, without a second validation.
    return Response(to_json(result), media_type="application/json")


def _unknown_request_keys(body: PredictRequest, *, strict: bool) -> list[dict[str, Any]]:
    """Keys of the request other than ``inputs``, named back like a house's
    unknown fields (``row`` null): a client that puts ``strict`` or ``explain``
    in the body instead of the query must learn that they did nothing."""
    if not body.model_extra:  # the usual request: no message to build
        return []
    what = (
        "unknown field of the request, refused (strict mode)"
        if strict
        else ("unknown field of the request, ignored")
    )
    hint = "; the request has only inputs (strict and explain are query parameters)"
    return [
        {"row": None, "field": shown_name(key), "message": what + hint}
        for key in body.model_extra or {}
    ]
