"""``POST /api/v1/outcomes``: sale prices of houses priced earlier, stored
beside the prediction log (the rules: ``regression_model.monitoring.outcomes``;
the storing: ``api.app.operations.outcome_store``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json

from api.app.core.exceptions import OUTCOMES, RequestRejected, request_error
from api.app.core.json_body import StrictJSONRoute
from api.app.core.security import Access, requires_key
from api.app.core.settings import Settings
from api.app.operations.outcome_store import OutcomeStore, OutcomeStoreUnavailableError
from api.app.schemas import ErrorDetail, ErrorResponse
from api.app.schemas.outcomes import OutcomesRequest, OutcomesResponse
from regression_model import json_type, shown_name

router = APIRouter(prefix="/api/v1", tags=["outcomes"], route_class=StrictJSONRoute)

_ENVELOPE = '{"outcomes": [outcome, ...]}'
_LOG_OFF = (
    "outcomes are kept in the prediction log, which is off: set DATABASE_URL or "
    "PREDICTION_LOG_PATH"
)
#: Seconds a client is asked to wait after the database failed.
RETRY_AFTER = "5"

_ERRORS = {
    401: {
        "model": ErrorResponse,
        "description": "API_KEY is set and X-API-Key is missing or wrong",
    },
    409: {
        "model": ErrorResponse,
        "description": "no outcome was accepted and each refused one quotes a house already "
        "recorded with another sale price or date (a recorded outcome is not changed)",
    },
    413: {"model": ErrorResponse, "description": "body or number of outcomes over the limit"},
    415: {
        "model": ErrorResponse,
        "description": "the body is not sent as application/json, or is compressed",
    },
    422: {
        "model": ErrorResponse,
        "description": "malformed body (invalid JSON, NaN/Infinity, wrong envelope, a key "
        "other than `outcomes`), or no outcome was accepted and one at least is invalid",
    },
    503: {
        "model": ErrorResponse,
        "description": "the prediction log is off, or its database cannot store outcomes "
        "(nothing was stored: retry after `Retry-After` seconds)",
    },
}


@router.post(
    "/outcomes",
    response_model=OutcomesResponse,
    responses=_ERRORS,  # type: ignore[arg-type]
    # Checked before the body is read (StrictJSONRoute).
    dependencies=[requires_key(Access.KEYED)],
    summary="Record sale prices",
)
async def post_outcomes(body: OutcomesRequest, request: Request) -> Response:
    """Record the realised sale price of houses priced earlier, each quoted by
    the request that priced it (`request_id`: the response's X-Request-ID,
    and `row`: the house's position in it) or by the id sent with it (`key`).

    Each outcome is checked on its own: a bad one gets errors naming its row
    and field, the others are stored (200). Posting an outcome again stores
    nothing and counts it in `already_recorded`; the same house with another
    price or date is refused (an error of that row: a recorded outcome is not
    changed). An outcome whose request and row are not a priced house of the
    log is stored and listed in `unmatched`. When no outcome is accepted the
    answer is 409 if each was a conflict, 422 otherwise."""
    settings: Settings = request.app.state.settings
    store: OutcomeStore | None = request.app.state.outcome_store
    envelope = [
        ErrorDetail(
            row=None,
            field=shown_name(key),
            message="unknown field of the request, refused: the request has only outcomes",
        )
        for key in body.model_extra or {}
    ]
    if not isinstance(body.outcomes, list) or not body.outcomes:
        envelope.append(
            ErrorDetail(row=None, field=OUTCOMES, message=_not_outcomes(body.outcomes))
        )
    if envelope:
        raise RequestRejected(422, envelope)
    if len(body.outcomes) > settings.max_rows:
        raise request_error(
            413,
            OUTCOMES,
            f"{len(body.outcomes)} outcomes in one request; at most {settings.max_rows} are "
            "accepted: split the batch",
        )
    if store is None:
        raise request_error(503, "*", _LOG_OFF)
    try:
        recorded = await store.record(body.outcomes)
    except OutcomeStoreUnavailableError as exc:
        raise request_error(503, "*", str(exc), headers={"Retry-After": RETRY_AFTER}) from None
    stored = recorded.stored
    errors = sorted([*recorded.errors, *stored.conflicts], key=lambda e: e["row"])
    if not stored.stored and not stored.already_recorded:
        status = 409 if not recorded.errors else 422
        raise RequestRejected(status, [ErrorDetail.model_validate(e) for e in errors])
    answer = {
        "stored": len(stored.stored),
        "already_recorded": len(stored.already_recorded),
        "unmatched": stored.unmatched or None,
        "errors": errors or None,
    }
    return Response(to_json(answer), media_type="application/json")


def _not_outcomes(value: Any) -> str:
    if value is None:
        return f"the request has no outcomes: send {_ENVELOPE}"
    if isinstance(value, list):
        return "outcomes is empty: send at least one outcome"
    return f"expected an array of outcomes, got {json_type(value)}: send {_ENVELOPE}"
