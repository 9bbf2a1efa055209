"""A field a house names twice (Kaggle's name, the Python-safe one, an alias
of config.yml) is refused for that house, naming both: neither value is
dropped silently, whichever was meant. Rows, small frames, large frames and
files give the same verdict."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from regression_model.config.core import get_config
from regression_model.predict import make_prediction
from regression_model.scoring.column_validation import validate_columns
from regression_model.scoring.schema import schema_for
from regression_model.scoring.tables import ROW_BY_ROW_MAX
from regression_model.scoring.validation import frame_rows, validate_inputs, validate_rows


@pytest.fixture(scope="module")
def good_house(test_data: pd.DataFrame) -> dict[str, Any]:
    row = test_data.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"1stFlrSF": -5, "FirstFlrSF": 2000}, "1stFlrSF",
         "given twice, as 1stFlrSF and FirstFlrSF (names of the same field): send one"),
        ({"FirstFlrSF": 2000, "1stFlrSF": 2000}, "FirstFlrSF",
         "given twice, as FirstFlrSF and 1stFlrSF (names of the same field): send one"),
        ({"2ndFlrSF": 0, "SecondFlrSF": 700}, "2ndFlrSF", "given twice, as 2ndFlrSF and"),
        ({"3SsnPorch": 0, "ThreeSsnPortch": 100}, "3SsnPorch",
         "given twice, as 3SsnPorch and ThreeSsnPortch (names of the same field)"),
        ({"ThreeSsnPortch": 1, "ThreeSsnPorch": 2, "3SsnPorch": "x"}, "ThreeSsnPortch",
         "given 3 times, as ThreeSsnPortch, ThreeSsnPorch and 3SsnPorch"),
    ],
)  # fmt: skip
def test_a_field_given_twice_refuses_its_house_naming_both(
    good_house: dict[str, Any], given: dict[str, Any], field: str, message: str
) -> None:
    house = {k: v for k, v in good_house.items() if k not in ("1stFlrSF", "2ndFlrSF", "3SsnPorch")}
    result = make_prediction(input_data=[good_house, {**house, **given}])
    assert result["predictions"][0] is not None and result["predictions"][1] is None
    assert result["errors"] is not None
    (error,) = result["errors"]  # one error, not also the check of one of the values
    assert (error["row"], error["field"]) == (1, field)
    assert error["message"].startswith(message)


def test_one_value_and_the_other_names_null_is_priced(good_house: dict[str, Any]) -> None:
    moved = {k: v for k, v in good_house.items() if k != "1stFlrSF"}
    want = make_prediction(input_data=good_house)["predictions"]
    for extra in (
        {"FirstFlrSF": good_house["1stFlrSF"], "1stFlrSF": None},
        {"1stFlrSF": float("nan"), "FirstFlrSF": good_house["1stFlrSF"]},
        {"FirstFlrSF": good_house["1stFlrSF"], "3SsnPorch": None, "ThreeSsnPortch": 0},
    ):
        result = make_prediction(input_data={**moved, **extra})
        assert result["errors"] is None, extra
        assert result["predictions"] == want


def test_a_frame_gives_the_verdict_of_its_rows(test_data: pd.DataFrame) -> None:
    """A frame with both columns: each row giving both is refused, the others
    priced, whether checked value by value (a small frame) or a column at a
    time (a large one)."""
    frame = test_data.head(12).copy()
    frame["FirstFlrSF"] = [None] * 6 + frame["1stFlrSF"].iloc[6:].tolist()
    frame.loc[frame.index[8], "1stFlrSF"] = None
    schema = schema_for(get_config().model)
    by_columns = validate_columns(frame, schema)
    assert by_columns.errors == validate_rows(frame_rows(frame), schema).errors
    assert [(e.row, e.field) for e in by_columns.errors] == [
        (r, "1stFlrSF") for r in (6, 7, 9, 10, 11)
    ]
    assert by_columns.errors[0].message.startswith("given twice, as 1stFlrSF and FirstFlrSF")
    assert len(frame) > ROW_BY_ROW_MAX >= 3
    small = frame.iloc[5:8].reset_index(drop=True)
    assert [(e.row, e.field) for e in validate_inputs(small).errors] == [
        (1, "1stFlrSF"),
        (2, "1stFlrSF"),
    ]
    refused = [p is None for p in make_prediction(input_data=frame)["predictions"]]
    assert refused == [r in (6, 7, 9, 10, 11) for r in range(12)]


def test_a_file_giving_a_field_twice_has_those_rows_rejected(
    test_data: pd.DataFrame, tmp_path: Path
) -> None:
    """regression-model predict: the rows giving both are rejected (exit
    status 3), their errors column saying why; the others are priced."""
    frame = test_data.head(5).copy()
    frame["FirstFlrSF"] = [None, 900, None, None, None]
    source, output = tmp_path / "twice.csv", tmp_path / "prices.csv"
    frame.to_csv(source, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "predict", "--input", str(source),
         "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "priced 4 of 5 rows" in done.stderr and "1 rejected" in done.stderr
    prices = pd.read_csv(output, keep_default_na=False)
    assert prices["errors"].tolist() == [
        "",
        "1stFlrSF: given twice, as 1stFlrSF and FirstFlrSF (names of the same field): send one",
        "",
        "",
        "",
    ]
