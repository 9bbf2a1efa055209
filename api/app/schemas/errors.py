"""The one error shape of the API: ``{"row", "field", "message"}`` items.

It is the shape ``make_prediction`` reports per-row errors in, reused for
every rejected request (malformed body, limits, authentication, unknown
path, server error), so a client parses one structure.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.app.schemas.package_types import documents
from regression_model import IgnoredField, InputError


@documents(InputError)
class ErrorDetail(BaseModel):
    """Why (part of) a request was rejected."""

    row: int | None = Field(
        description="position of the house in `inputs` (0-based); null when the error "
        "is about the request rather than one house"
    )
    field: str = Field(
        description="the input field as sent (Kaggle or Python name), `*` for a whole "
        "house, or the part of the request: `body`, `inputs`, `Content-Type`, "
        "`X-API-Key`, `path`, `method`"
    )
    message: str = Field(description="what is wrong and, where possible, how to fix it")


@documents(IgnoredField)
class IgnoredFieldDetail(BaseModel):
    """A field sent with a house that is not a model input."""

    row: int | None = Field(
        description="position of the house in `inputs` (0-based); null for a key of the "
        "request itself, next to `inputs`"
    )
    field: str = Field(description="the field as sent")
    message: str = Field(
        description="`unknown field, ignored`, with `did you mean <field>?` when a known "
        "field is close"
    )


class ErrorResponse(BaseModel):
    """Body of every 4xx and 5xx response."""

    predictions: list[float | None] | None = Field(
        default=None,
        description="for a batch in which no house could be priced: one null per house; "
        "otherwise null",
    )
    errors: list[ErrorDetail] = Field(min_length=1)
    warnings: list[IgnoredFieldDetail] | None = Field(
        default=None,
        description="for a batch in which no house could be priced: the fields the model "
        "does not know, ignored (as in a 200); otherwise null",
    )
    version: str = Field(description="model version of this service")
    request_id: str | None = Field(
        default=None, description="also in the X-Request-ID header; quote it when reporting"
    )
