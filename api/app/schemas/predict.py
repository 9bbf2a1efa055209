"""``POST /api/v1/predict``: request and response.

The request schema is the package's own input schema: each house is
documented as ``house_input_model()`` (generated from ``config.yml``), and
validated by the package's ``validate_inputs``, per house, so one bad house
never fails the batch. Here a house is therefore accepted as any JSON value;
only the envelope (``{"inputs": [...]}``) is checked by pydantic.

The response is the package's ``PredictionResult``, sent as the package
returns it; its models here describe it, field for field (``documents``).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

import regression_model
from api.app.schemas.errors import ErrorDetail, IgnoredFieldDetail
from api.app.schemas.package_types import documents
from regression_model import house_input_model


@functools.cache
def _house_model() -> type[BaseModel]:
    return house_input_model()


@functools.cache
def house_schema() -> dict[str, Any]:
    """JSON schema of one house, with the names clients send (Kaggle's)."""
    return _house_model().model_json_schema(by_alias=True)


class _House:
    """Validation: none here (the package validates each house, so one bad house
    never fails the batch). JSON schema: the package's ``HouseInput``, as a
    named component, generated when the schema is first asked for."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.any_schema()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        house = _house_model().__pydantic_core_schema__
        # Wrapped as a definition so it becomes a $ref to a reusable component.
        reference = core_schema.definition_reference_schema(house["ref"])
        return handler(core_schema.definitions_schema(reference, [house]))


House = Annotated[Any, _House]


class PredictRequest(BaseModel):
    """Houses to price, as in Kaggle's test.csv (one object per house)."""

    # Other keys are kept, to be named back (never silently ignored).
    model_config = ConfigDict(extra="allow")
    #: What a body that is no such object is told to send.
    envelope: ClassVar[str] = '{"inputs": [house, ...]}'

    inputs: list[House] = Field(
        min_length=1,
        description="one object per house, fields as in test.csv (Kaggle names such as "
        "`1stFlrSF`, the Python names such as `FirstFlrSF`, or the course API's "
        "`ThreeSsnPortch`); missing fields are imputed; a field the model does not know is "
        "ignored and named in `warnings` (refused with `?strict=true`)",
    )


@documents(regression_model.Factor)
class Factor(BaseModel):
    """One term of the model's sum, for one house."""

    variable: str = Field(description="the input variable (its term may also use YrSold)")
    log_effect: float = Field(description="the term, in log-price")
    factor: float = Field(description="exp(log_effect): the price is multiplied by this")
    dollars: float = Field(
        description="the price change this term makes, applying terms largest first"
    )


@documents(regression_model.Explanation)
class Explanation(BaseModel):
    """Why this price: the model is a sum, so the price splits exactly into terms."""

    baseline: float = Field(
        description="the price of a house at the training average of every term"
    )
    log_baseline: float = Field(description="log(baseline), the model's intercept")
    factors: list[Factor] = Field(
        description="every non-zero term, largest effect first: log_baseline plus every "
        "log_effect is log(price); baseline times every factor, or baseline plus every "
        "dollars, is the price"
    )


@documents(regression_model.PriceRange)
class PriceRange(BaseModel):
    """A priced house's range at one coverage (a conformal prediction interval)."""

    coverage: float = Field(
        description="the share of houses like this one whose sale price falls in the range "
        "(0.8: 80 %), as calibrated on the training houses"
    )
    low: float = Field(description="the low end of the range, in dollars")
    high: float = Field(description="the high end of the range, in dollars (above the price)")


@documents(regression_model.PredictionResult)
class PredictionResponse(BaseModel):
    """A price per house, in input order, or null with that house's errors."""

    predictions: list[float | None] = Field(
        description="sale price in dollars per house, in input order; null when the house "
        "was rejected"
    )
    errors: list[ErrorDetail] | None = Field(
        description="why each rejected house was rejected; null when every house was priced"
    )
    warnings: list[IgnoredFieldDetail] | None = Field(
        description="fields the model does not know, ignored (the house is priced without "
        "them), with the known field each is closest to; null when there is none. With "
        "`?strict=true` they are errors instead"
    )
    version: str = Field(description="version of the model that priced the houses")
    intervals: list[list[PriceRange] | None] = Field(
        description="per house, in input order: its price's ranges, one per coverage asked "
        "with `?coverage=` (default: every coverage the model was calibrated for), each with "
        "low < price < high; null when the house was not priced"
    )
    explanations: list[Explanation | None] | None = Field(
        default=None,
        description="with `?explain=true`: per house, its price split into the model's "
        "terms (null for a house that was not priced); absent otherwise",
    )
