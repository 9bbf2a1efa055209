"""The API's response models describe the package's result types, field for
field (``api.app.schemas.package_types``)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import pytest
from pydantic import BaseModel, Field

import regression_model
from api.app.schemas import ErrorDetail, IgnoredFieldDetail, PredictionResponse
from api.app.schemas.package_types import documents, fields_of
from api.app.schemas.predict import Explanation, Factor, PriceRange

DESCRIBED = [
    (PredictionResponse, regression_model.PredictionResult),
    (Explanation, regression_model.Explanation),
    (Factor, regression_model.Factor),
    (PriceRange, regression_model.PriceRange),
    (ErrorDetail, regression_model.InputError),
    (IgnoredFieldDetail, regression_model.IgnoredField),
]


@pytest.mark.parametrize(("model", "shape"), DESCRIBED, ids=lambda x: x.__name__)
def test_each_response_model_has_the_fields_of_the_package_type(
    model: type[BaseModel], shape: type
) -> None:
    assert [(name, f.is_required()) for name, f in model.model_fields.items()] == fields_of(shape)


class _Shape(TypedDict):
    price: float
    note: NotRequired[str]


def test_a_model_that_differs_from_its_package_type_is_refused() -> None:
    @documents(_Shape)
    class Same(BaseModel):
        price: float = Field(description="dollars")
        note: str | None = None

    assert Same(price=1.0).price == 1.0
    with pytest.raises(TypeError, match="note"):

        @documents(_Shape)
        class Missing(BaseModel):
            price: float

    with pytest.raises(TypeError, match="cost"):

        @documents(_Shape)
        class Renamed(BaseModel):
            cost: float
            note: str | None = None

    with pytest.raises(TypeError, match="note"):

        @documents(_Shape)
        class Required(BaseModel):
            price: float
            note: str


def test_an_explained_price_has_the_keys_its_types_name(test_houses: list[Any]) -> None:
    result = regression_model.load_model().predict(test_houses[:5], explain=True)
    explanations = [e for e in result.get("explanations") or [] if e is not None]
    assert explanations
    for explanation in explanations:
        assert list(explanation) == [name for name, _ in fields_of(regression_model.Explanation)]
        for factor in explanation["factors"]:
            assert list(factor) == [name for name, _ in fields_of(regression_model.Factor)]


def test_a_priced_house_has_ranges_with_the_keys_their_type_names(test_houses: list[Any]) -> None:
    result = regression_model.load_model().predict([*test_houses[:5], {"GrLivArea": -1}])
    required = [name for name, needed in fields_of(regression_model.PredictionResult) if needed]
    assert list(result) == required  # explanations only with explain=True
    assert result["intervals"][-1] is None
    ranges = [r for row in result["intervals"][:-1] for r in row or []]
    assert len(ranges) == 5 * len(regression_model.load_model().coverages)
    for price_range in ranges:
        assert list(price_range) == [name for name, _ in fields_of(regression_model.PriceRange)]
    # and the response model reads them as they are
    described = PredictionResponse.model_validate(result).intervals[0]
    assert described is not None
    assert [r.model_dump() for r in described] == result["intervals"][0]
