"""Exceptions the handlers turn into responses (see ``errors.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException

from api.app.schemas import ErrorDetail, IgnoredFieldDetail

#: What parts of the request are called in error messages.
BODY = "body"
INPUTS = "inputs"
OUTCOMES = "outcomes"


class RequestRejected(HTTPException):
    """A client error, with the reasons in the API's error shape.

    A Starlette ``HTTPException`` so that FastAPI lets it through while it
    reads the body (where the strict JSON parser raises it).
    """

    def __init__(
        self,
        status_code: int,
        errors: Sequence[ErrorDetail],
        *,
        predictions: list[float | None] | None = None,
        warnings: list[IgnoredFieldDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=errors[0].message, headers=headers)
        self.errors = list(errors)
        self.predictions = predictions
        self.warnings = warnings


def request_error(
    status_code: int, field: str, message: str, headers: dict[str, str] | None = None
) -> RequestRejected:
    """A rejection about the request as a whole (not one house)."""
    return RequestRejected(
        status_code, [ErrorDetail(row=None, field=field, message=message)], headers=headers
    )


class ModelUnavailableError(RuntimeError):
    """The model is still loading, or failed to load (the log says why)."""

    def __init__(self, *, loading: bool) -> None:
        super().__init__("model loading" if loading else "model failed to load")
        self.loading = loading
