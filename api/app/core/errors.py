"""Every rejected request answered in the one error shape.

Client errors are raised as
:class:`~api.app.core.exceptions.RequestRejected` (or come from FastAPI /
Starlette as validation and HTTP errors) and are turned into an
:class:`~api.app.schemas.ErrorResponse` here. Unexpected exceptions never
get here: the request-context middleware answers them with a generic 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.app.core.exceptions import BODY, INPUTS, ModelUnavailableError, RequestRejected
from api.app.core.request_context import current_request_id
from api.app.schemas import ErrorDetail, ErrorResponse, IgnoredFieldDetail
from regression_model import __version__ as model_version
from regression_model import json_type


def error_response(
    status_code: int,
    errors: Sequence[ErrorDetail],
    *,
    predictions: list[float | None] | None = None,
    warnings: list[IgnoredFieldDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        predictions=predictions,
        errors=list(errors),
        warnings=warnings,
        version=model_version,
        request_id=current_request_id(),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def _envelope(request: Request) -> str:
    """``send a JSON object ...``: the body the request's route takes, as its
    request model's ``envelope`` says."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    shape = getattr(model, "envelope", None)
    return f"send a JSON object {shape}" if shape else "send a JSON object"


def _describe_validation_error(error: dict[str, Any], envelope: str) -> ErrorDetail:
    """One FastAPI/pydantic error as an :class:`ErrorDetail`."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    given = error.get("input")
    where, path = (loc[0], loc[1:]) if loc else ("body", ())
    if where != "body":  # a header, query or path parameter
        # Its name, not the position of a bad value of a repeated parameter.
        name = str(path[0]) if path else str(where)
        return ErrorDetail(row=None, field=name, message=str(error.get("msg", "invalid")))
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "malformed JSON")
        return ErrorDetail(row=None, field=BODY, message=f"invalid JSON: {detail}")
    if not path:
        if kind == "missing":
            message = f"the request has no body: {envelope}"
        else:
            message = f"expected a JSON object, got {json_type(given)}: {envelope}"
        return ErrorDetail(row=None, field=BODY, message=message)
    if path == (INPUTS,):
        if kind == "missing":
            message = f'"inputs" is required: {envelope}'
        elif kind == "too_short":
            message = "inputs is empty: send at least one house"
        elif kind == "list_type":
            message = f"expected an array of houses, got {json_type(given)}"
        else:
            message = str(error.get("msg", "invalid"))
        return ErrorDetail(row=None, field=INPUTS, message=message)
    row = path[1] if len(path) > 1 and path[0] == INPUTS and isinstance(path[1], int) else None
    field = ".".join(str(part) for part in path[2:] if not isinstance(part, int)) or "*"
    return ErrorDetail(row=row, field=field, message=str(error.get("msg", "invalid")))


async def _on_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestRejected)
    return error_response(
        exc.status_code,
        exc.errors,
        predictions=exc.predictions,
        warnings=exc.warnings,
        headers=exc.headers,
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    envelope = _envelope(request)
    details = [_describe_validation_error(dict(error), envelope) for error in exc.errors()]
    return error_response(422, details or [ErrorDetail(row=None, field=BODY, message="invalid")])


_FIELD_BY_STATUS = {404: "path", 405: "method", 401: "X-API-Key", 413: BODY, 415: "Content-Type"}
_MESSAGE_BY_STATUS = {
    404: "no such endpoint: see /docs for the API",
    405: "method not allowed on this endpoint: see /docs",
}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = _MESSAGE_BY_STATUS.get(status) or str(exc.detail)
    detail = ErrorDetail(row=None, field=_FIELD_BY_STATUS.get(status, "*"), message=message)
    return error_response(status, [detail], headers=exc.headers)


async def _on_model_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelUnavailableError)
    message = (
        "the model is still loading: retry in a few seconds"
        if exc.loading
        else "the model is unavailable; the operator has been told (see /api/v1/ready)"
    )
    detail = ErrorDetail(row=None, field="*", message=message)
    return error_response(503, [detail], headers={"Retry-After": "5"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestRejected, _on_rejected)
    app.add_exception_handler(ModelUnavailableError, _on_model_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
