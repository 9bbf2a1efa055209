"""``POST /api/v1/outcomes``: request and response.

Each outcome is checked by the package (``regression_model.monitoring.outcomes``),
one by one, so one bad row never fails the others: here an outcome is
accepted as any JSON value and only described, as one of the two ways of
quoting a priced house (:class:`OutcomeByRequest`, :class:`OutcomeByKey`).
The sale price's bounds in the description are the model's
``plausible_price_range`` (config.yml), read when the document is generated.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from api.app.schemas.errors import ErrorDetail
from regression_model import MAX_KEY_LENGTH, get_config
from regression_model.monitoring.outcomes import MAX_ROW

#: A request id or key as stored: no whitespace or control characters.
_PLAIN_TEXT = f"^[^\\x00-\\x20\\x7f]{{1,{MAX_KEY_LENGTH}}}$"


def _plausible_prices(schema: dict[str, Any]) -> None:
    low, high = get_config().model.plausible_price_range
    schema.update(minimum=low, maximum=high)


_SALE_PRICE = Field(
    description="the realised sale price in dollars, within the model's plausible_price_range",
    json_schema_extra=_plausible_prices,
)
_SALE_DATE = Field(
    description="the day the sale closed (ISO 8601, YYYY-MM-DD): not in the future, not "
    "before 1900"
)


class OutcomeByRequest(BaseModel):
    """The sale price of a house quoted as /predict answered it: its request and row."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        pattern=_PLAIN_TEXT,
        description="the X-Request-ID header of the /predict response that priced the house",
    )
    row: int = Field(ge=0, le=MAX_ROW, description="the house's position in that request (from 0)")
    sale_price: float = _SALE_PRICE
    sale_date: date = _SALE_DATE


class OutcomeByKey(BaseModel):
    """The sale price of a house quoted by the id the client sent with it."""

    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, Field(pattern=_PLAIN_TEXT)] | int = Field(
        description="the id sent with the house (its `Id`), a string or a whole number "
        '(compared as text: 5 and "5" are the same key)'
    )
    sale_price: float = _SALE_PRICE
    sale_date: date = _SALE_DATE


class _Outcomes:
    """Validation: none here (the route says what is wrong with the envelope,
    the package with each row). JSON schema: an array of outcomes, each in
    either form."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.any_schema()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        forms: list[core_schema.CoreSchema | tuple[core_schema.CoreSchema, str]] = [
            OutcomeByRequest.__pydantic_core_schema__,
            OutcomeByKey.__pydantic_core_schema__,
        ]
        return handler(core_schema.list_schema(core_schema.union_schema(forms), min_length=1))


class OutcomesRequest(BaseModel):
    """Sale prices of houses priced earlier."""

    # Other keys are kept, to be refused by name (never silently ignored), and
    # a missing `outcomes` is named by the route: the document says both.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"required": ["outcomes"], "additionalProperties": False},
    )
    #: What a body that is no such object is told to send.
    envelope: ClassVar[str] = '{"outcomes": [outcome, ...]}'

    outcomes: Annotated[Any, _Outcomes] = Field(
        default=None,
        description="one object per sold house: request_id and row, or key, with sale_price "
        "and sale_date; any other field is refused (an error of that row)",
    )


class UnmatchedOutcome(BaseModel):
    """An outcome accepted although its request reference finds no priced house in the log."""

    row: int = Field(description="position of the outcome in `outcomes` (0-based)")
    reference: str = Field(description='the reference, "request:<request_id>:<row>"')
    message: str = Field(description="why it matches no priced house (the log may be pruned)")


class OutcomesResponse(BaseModel):
    """What became of each outcome."""

    stored: int = Field(description="outcomes stored by this request")
    already_recorded: int = Field(
        description="outcomes recorded before with the same price and date (or repeated in "
        "this request): nothing written again"
    )
    unmatched: list[UnmatchedOutcome] | None = Field(
        description="accepted outcomes quoting a request and row that is not a priced house "
        "of the log (pruned, never logged, or rejected); null when none. Keys are matched "
        "when performance is computed, not here"
    )
    errors: list[ErrorDetail] | None = Field(
        description="why each refused outcome was refused (its row, field and why: a bad "
        "value, an unknown field, or a reference already recorded with another price or "
        "date); null when none was"
    )
