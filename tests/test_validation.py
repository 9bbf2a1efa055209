from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from regression_model.config.core import Config
from regression_model.predict import make_prediction
from regression_model.scoring.model import load_model
from regression_model.scoring.schema import house_input_model
from regression_model.scoring.validation import validate_inputs
from regression_model.scoring.validation_result import WHOLE_ROW


@pytest.fixture(scope="module")
def good_house(test_data: pd.DataFrame) -> dict[str, Any]:
    """A real house from test.csv as a client would send it (JSON-like values)."""
    row = test_data.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


# (fields to change, field named in the error, text the message must contain)
BAD_ROWS: list[tuple[dict[str, Any], str, str]] = [
    ({"GrLivArea": -1200}, "GrLivArea", "out of range"),
    ({"LotArea": 0}, "LotArea", "out of range"),  # log(0) is impossible
    ({"1stFlrSF": -5}, "1stFlrSF", "out of range"),
    ({"TotalBsmtSF": -1.0}, "TotalBsmtSF", "out of range"),
    ({"OverallQual": 11}, "OverallQual", "between 1 and 10"),
    ({"OverallQual": 0}, "OverallQual", "between 1 and 10"),
    ({"OverallCond": 7.5}, "OverallCond", "whole number"),
    ({"YearBuilt": 1066}, "YearBuilt", "out of range"),
    ({"YrSold": 3000}, "YrSold", "out of range"),
    ({"MoSold": 13}, "MoSold", "between 1 and 12"),
    ({"GarageCars": 2.5}, "GarageCars", "whole number"),
    ({"GrLivArea": "big"}, "GrLivArea", "expected a number, got text 'big'"),
    ({"LotArea": "11622"}, "LotArea", "expected a number"),
    ({"FullBath": True}, "FullBath", "boolean"),
    ({"LotArea": float("inf")}, "LotArea", "finite"),
    ({"GrLivArea": -float("inf")}, "GrLivArea", "finite"),
    ({"LotArea": 1e308}, "LotArea", "out of range"),
    # integers too large for a float (a dict from Python, or a JSON parser
    # that keeps them whole) are infinite, not an OverflowError
    ({"LotArea": 10**400}, "LotArea", "finite"),
    ({"GrLivArea": -(10**400)}, "GrLivArea", "finite"),
    ({"BedroomAbvGr": [3]}, "BedroomAbvGr", "expected a number"),
    ({"ExterQual": "Excellent"}, "ExterQual", "unknown code 'Excellent'"),
    ({"KitchenQual": "ex"}, "KitchenQual", "unknown code"),
    ({"PoolQC": "TA?"}, "PoolQC", "unknown code"),
    ({"MSSubClass": 25}, "MSSubClass", "unknown code 25"),
    # a whole float (a column with gaps) is named as the code, not "25.0"
    ({"MSSubClass": 25.0}, "MSSubClass", "unknown code 25; expected"),
    ({"MSSubClass": "sixty"}, "MSSubClass", "unknown code"),
    ({"MSSubClass": True}, "MSSubClass", "unknown code"),
    ({"Neighborhood": 7}, "Neighborhood", "expected a text label"),
    ({"Street": {"paved": True}}, "Street", "expected a text label"),
    ({"SaleType": "W" * 500}, "SaleType", "longer than"),
    ({"Alley": "   "}, "Alley", "must not be empty"),
    ({"ScreenPorch": -3, "PoolArea": -1}, "ScreenPorch", "out of range"),
    ({"3SsnPorch": "none"}, "3SsnPorch", "expected a number"),
    ({"WoodDeckSF": {"sqft": 10}}, "WoodDeckSF", "got object"),
    ({"PoolArea": [1, 2]}, "PoolArea", "got array"),
    ({"MiscVal": 1e300}, "MiscVal", "1e+300 is out of range"),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_ROWS)
def test_malformed_row_gets_a_precise_error(
    good_house: dict[str, Any], changes: dict[str, Any], field: str, message: str
) -> None:
    result = make_prediction(input_data=[good_house, {**good_house, **changes}])
    assert result["predictions"][0] is not None
    assert result["predictions"][1] is None
    errors = result["errors"]
    assert errors is not None
    assert {e["row"] for e in errors} == {1}
    mine = [e for e in errors if e["field"] == field]
    assert mine, f"no error names {field}: {errors}"
    assert message in mine[0]["message"]
    # one error per field that was wrong, none for fields that were fine
    assert {e["field"] for e in errors} == set(changes)


def test_all_missing_row_is_an_error(good_house: dict[str, Any]) -> None:
    result = make_prediction(input_data=[{}, {"Id": 5, "colour": "red"}, good_house])
    assert result["predictions"][:2] == [None, None]
    assert isinstance(result["predictions"][2], float)
    assert result["errors"] is not None
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(0, WHOLE_ROW), (1, WHOLE_ROW)]


def test_nan_and_none_mean_missing_and_are_imputed(good_house: dict[str, Any]) -> None:
    holes = {**good_house, "LotFrontage": float("nan"), "KitchenQual": None, "MSZoning": np.nan}
    result = make_prediction(input_data=holes)
    assert result["errors"] is None
    assert result["predictions"][0] is not None


def test_na_label_means_missing(good_house: dict[str, Any]) -> None:
    with_na = make_prediction(input_data={**good_house, "PoolQC": "NA", "Fence": "NA"})
    without = make_prediction(input_data={**good_house, "PoolQC": None, "Fence": None})
    assert with_na["predictions"] == without["predictions"]


def test_mixed_batch_prices_the_good_rows_in_order(good_house: dict[str, Any]) -> None:
    batch = [
        good_house,
        {**good_house, "GrLivArea": -1},
        {**good_house, "GrLivArea": 2000},
        {**good_house, "ExterQual": "Superb", "MoSold": 0},
        good_house,
    ]
    result = make_prediction(input_data=batch)
    predictions = result["predictions"]
    assert len(predictions) == 5
    assert [p is None for p in predictions] == [False, True, False, True, False]
    assert predictions[0] == predictions[4]
    assert predictions[2] != predictions[0]
    assert result["errors"] is not None
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (1, "GrLivArea"),
        (3, "MoSold"),
        (3, "ExterQual"),
    ]


def test_raw_and_safe_names_are_equivalent(good_house: dict[str, Any]) -> None:
    safe = dict(good_house)
    for raw, new in (
        ("1stFlrSF", "FirstFlrSF"),
        ("2ndFlrSF", "SecondFlrSF"),
        ("3SsnPorch", "ThreeSsnPorch"),
    ):
        safe[new] = safe.pop(raw)
    assert (
        make_prediction(input_data=safe)["predictions"]
        == make_prediction(input_data=good_house)["predictions"]
    )
    bad = make_prediction(input_data={**safe, "FirstFlrSF": -1})
    assert bad["errors"] == [
        {
            "row": 0,
            "field": "FirstFlrSF",
            "message": "-1 is out of range: must be between 1 and 100000",
        }
    ]


def test_absurd_prediction_is_refused_not_returned(good_house: dict[str, Any]) -> None:
    # every value in range, but together far outside anything seen in training
    huge = {
        **good_house,
        "LotArea": 9_000_000,
        "GrLivArea": 99_000,
        "1stFlrSF": 99_000,
        "GarageArea": 99_000,
        "MiscVal": 9_000_000,
        "PoolArea": 99_000,
    }
    result = make_prediction(input_data=[good_house, huge])
    assert result["predictions"][0] is not None
    assert result["predictions"][1] is None
    assert result["errors"] is not None
    (error,) = result["errors"]
    assert (error["row"], error["field"]) == (1, WHOLE_ROW)
    assert "outside the plausible range 1,000 to 100,000,000" in error["message"]


def test_extra_columns_are_ignored(good_house: dict[str, Any]) -> None:
    noisy = {**good_house, "colour": "blue", "SalePrice": 1, "nested": {"a": [1]}}
    assert (
        make_prediction(input_data=noisy)["predictions"]
        == make_prediction(input_data=good_house)["predictions"]
    )


def test_unseen_nominal_category_is_priced(good_house: dict[str, Any]) -> None:
    result = make_prediction(input_data={**good_house, "Neighborhood": "Atlantis"})
    assert result["errors"] is None
    assert result["predictions"][0] is not None


def test_caller_data_is_never_mutated(test_data: pd.DataFrame) -> None:
    frame = test_data.head(50).copy()
    before = frame.copy()
    records = frame.to_dict(orient="records")
    records_before = [dict(r) for r in records]
    make_prediction(input_data=frame)
    make_prediction(input_data=records)
    pd.testing.assert_frame_equal(frame, before)
    assert records == records_before or all(
        all(
            (a == b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
            for a, b in zip(r1.values(), r2.values(), strict=True)
        )
        for r1, r2 in zip(records, records_before, strict=True)
    )


def test_empty_input_gives_an_empty_result() -> None:
    for empty in ([], pd.DataFrame()):
        result = make_prediction(input_data=empty)
        assert result["predictions"] == []
        assert result["errors"] is None


def test_repeated_columns_are_refused_naming_them(test_data: pd.DataFrame) -> None:
    frame = pd.concat([test_data.head(3), test_data[["GrLivArea"]].head(3)], axis=1)
    with pytest.raises(ValueError, match="repeated column names: GrLivArea"):
        make_prediction(input_data=frame)


def test_wrong_container_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="list of dicts"):
        make_prediction(input_data="GrLivArea=5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="row 1"):
        make_prediction(input_data=[{"GrLivArea": 5}, 7])  # type: ignore[list-item]


def test_rows_that_are_not_objects_are_errors_of_their_rows_when_asked(
    good_house: dict[str, Any],
) -> None:
    """Parsed JSON (the API's call): any value may stand where a house should;
    it is an error of its row, and the houses are priced as without it."""
    model = load_model()
    rows: list[Any] = [7, good_house, "x", None, [good_house], {"GrLivArea": True}]
    result = model.predict(rows, refuse_non_objects=True)
    assert result["predictions"][1] == model.predict([good_house])["predictions"][0]
    assert result["errors"] == [
        {
            "row": 0,
            "field": WHOLE_ROW,
            "message": "expected a JSON object (one house), got number",
        },
        {
            "row": 2,
            "field": WHOLE_ROW,
            "message": "expected a JSON object (one house), got string",
        },
        {"row": 3, "field": WHOLE_ROW, "message": "expected a JSON object (one house), got null"},
        {"row": 4, "field": WHOLE_ROW, "message": "expected a JSON object (one house), got array"},
        {"row": 5, "field": "GrLivArea", "message": "expected a number, got a boolean"},
    ]


def test_verdict_of_a_row_does_not_depend_on_its_batch(
    test_data: pd.DataFrame, config: Config
) -> None:
    whole = validate_inputs(test_data, config.model)
    bounds = range(0, len(test_data), 211)
    parts = [validate_inputs(test_data.iloc[i : i + 211], config.model) for i in bounds]
    assert sum(len(p.features) for p in parts) == len(whole.features)
    rejoined = pd.concat([p.features for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(rejoined, whole.features.reset_index(drop=True))


BAD_IDS = [
    (1.5, "expected a string or whole number, got 1.5"),
    (math.inf, "expected a string or whole number, got inf"),
    (True, "got boolean"),
    ([1], "got array"),
    ({"a": 1}, "got object"),
    ("", "empty"),
    ("A 1", "whitespace or a control character"),
    ("x" * 65, "65 characters long; at most 64"),
    ("x" * 100_000, "100000 characters long; at most 64"),
    (10**64, "65 characters long; at most 64"),
    (10**400, "a whole number of over 64 digits"),
]


@pytest.mark.parametrize("frame_rows", [1, 300])  # value by value, column by column
def test_an_id_no_outcome_could_quote_refuses_its_house(
    good_house: dict[str, Any], frame_rows: int
) -> None:
    """The id comes back with the price, is logged, and is what an outcome
    quotes (``key``): one that could not be (or is megabytes long) is named."""
    good_ids = [1461, "A-1461", 7.0, -3, "x" * 64, None, math.nan]
    houses = [{**good_house, "Id": i} for i, _ in BAD_IDS] + [
        {**good_house, "Id": i} for i in good_ids
    ]
    result = make_prediction(input_data=houses)
    bad = len(BAD_IDS)
    assert result["predictions"][:bad] == [None] * bad
    assert all(p is not None for p in result["predictions"][bad:])
    errors = result["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(row, "Id") for row in range(bad)]
    for error, (_, says) in zip(errors, BAD_IDS, strict=True):
        assert says in error["message"], error
    # A frame's typed columns: floats and strings are checked in bulk.
    numbers = pd.DataFrame([good_house] * frame_rows).assign(Id=1.0)
    numbers.loc[frame_rows - 1, "Id"] = 2.5
    texts = pd.DataFrame([good_house] * frame_rows).assign(Id="A-1")
    texts.loc[0, "Id"] = "A\t1"
    if frame_rows > 1:
        texts.loc[frame_rows - 1, "Id"] = None  # a missing id is no suspect
    for frame, row in ((numbers, frame_rows - 1), (texts, 0)):
        found = validate_inputs(frame).errors
        assert [(e.row, e.field) for e in found] == [(row, "Id")]


def test_house_input_model_is_derived_from_config(config: Config) -> None:
    schema = house_input_model(config.model).model_json_schema(by_alias=True)
    properties = schema["properties"]
    assert len(properties) == len(config.model.features)
    assert "1stFlrSF" in properties
    assert "FirstFlrSF" not in properties
    overall = properties["OverallQual"]["anyOf"][0]
    assert (overall["minimum"], overall["maximum"]) == (1, 10)
    assert properties["ExterQual"]["anyOf"][0]["enum"] == config.model.quality_codes


@pytest.mark.parametrize("rows", [1, 8])
def test_multiindex_columns_are_refused_by_both_drivers(rows: int) -> None:
    columns = pd.MultiIndex.from_tuples([("GrLivArea", "x"), ("Neighborhood", "y")])
    frame = pd.DataFrame([[800, "NAmes"]] * rows, columns=columns)
    with pytest.raises(ValueError, match="MultiIndex columns"):
        make_prediction(input_data=frame)


@pytest.mark.parametrize(
    "house",
    [
        {"GrLivArea": Decimal("NaN")},
        {"KitchenQual": "NA"},
        {"KitchenQual": "NA", "GrLivArea": float("nan"), "colour": "red"},
    ],
)
@pytest.mark.parametrize("rows", [1, 8])  # the row driver, the column driver
def test_values_meaning_missing_do_not_make_a_house_given(
    house: dict[str, Any], rows: int
) -> None:
    result = make_prediction(input_data=pd.DataFrame([house] * rows))
    assert result["predictions"] == [None] * rows
    assert result["errors"] is not None
    assert {(e["field"], e["message"].split(":")[0]) for e in result["errors"]} == {
        (WHOLE_ROW, "no feature values")
    }
    assert make_prediction(input_data=house)["errors"] == result["errors"][:1]


@pytest.mark.parametrize("rows", [1, 8])
def test_signaling_decimal_nan_is_an_error_of_its_row(
    good_house: dict[str, Any], rows: int
) -> None:
    house = {**good_house, "GrLivArea": Decimal("sNaN"), "Neighborhood": Decimal("sNaN")}
    result = make_prediction(input_data=pd.DataFrame([house] * rows))
    assert result["predictions"] == [None] * rows
    assert result["errors"] is not None
    assert {(e["field"], e["message"]) for e in result["errors"]} == {
        ("GrLivArea", "expected a number, got Decimal('sNaN')"),
        ("Neighborhood", "expected a text label, got Decimal('sNaN')"),
    }
    quiet = make_prediction(input_data={**good_house, "GrLivArea": Decimal("NaN")})
    assert (
        quiet["predictions"]
        == make_prediction(input_data={**good_house, "GrLivArea": None})["predictions"]
    )
