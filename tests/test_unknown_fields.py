"""Nothing is dropped silently: a field the model does not know is named back
(with the known field it is closest to), or refused in strict mode; the
course API's spellings are aliases, priced exactly as the model's names."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from regression_model.config.core import Config
from regression_model.predict import make_prediction
from regression_model.scoring import chunks
from regression_model.scoring.model import load_model
from regression_model.scoring.schema import model_fields
from regression_model.scoring.unknown_fields import NAMED_FIELDS_MAX
from regression_model.scoring.validation import validate_inputs
from regression_model.scoring.validation_result import WHOLE_ROW


def as_houses(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: missing values left out."""
    return [
        {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        for row in frame.to_dict(orient="records")
    ]


@pytest.fixture(scope="module")
def houses(test_data: pd.DataFrame) -> list[dict[str, Any]]:
    return as_houses(test_data)


def test_a_misspelled_field_is_named_with_the_field_it_is_closest_to(
    houses: list[dict[str, Any]],
) -> None:
    house = dict(houses[0])
    living_area = house.pop("GrLivArea")
    typo = {**house, "GrLivArae": living_area}
    result = make_prediction(input_data=[typo])
    # priced (as if the living area were missing), but never silently
    assert result["predictions"] == make_prediction(input_data=[house])["predictions"]
    assert result["errors"] is None
    assert result["warnings"] == [
        {
            "row": 0,
            "field": "GrLivArae",
            "message": "unknown field, ignored — did you mean GrLivArea?",
        }
    ]


def test_known_fields_give_no_warnings_and_the_key_is_known(
    houses: list[dict[str, Any]],
) -> None:
    result = make_prediction(input_data=houses)
    assert "Id" in houses[0]
    assert result["warnings"] is None
    assert result["errors"] is None


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("grlivarea", "unknown field, ignored — did you mean GrLivArea?"),
        ("Gr_Liv_Area", "unknown field, ignored — did you mean GrLivArea?"),
        ("Neighbourhood", "unknown field, ignored — did you mean Neighborhood?"),
        ("1stFlrSf", "unknown field, ignored — did you mean 1stFlrSF?"),
        ("ThreeSsnPorh", "unknown field, ignored — did you mean ThreeSsnPorch?"),
        ("owner_email", "unknown field, ignored"),
        ("ssn", "unknown field, ignored"),
        (
            "SalePrice",
            "unknown field, ignored: the sale price is what the model predicts, not an input",
        ),
    ],
)
def test_messages_of_unknown_fields(sent: str, expected: str) -> None:
    result = validate_inputs([{"OverallQual": 5, sent: 1}])
    assert [(w.row, w.field, w.message) for w in result.ignored] == [(0, sent, expected)]
    assert result.valid.all()


def test_per_row_where_rows_differ() -> None:
    rows = [{"OverallQual": 5}, {"OverallQual": 5, "colour": "red", "Colour": 2}, {"LotArea": 9}]
    result = make_prediction(input_data=rows)
    assert [(w["row"], w["field"]) for w in result["warnings"] or []] == [
        (1, "colour"),
        (1, "Colour"),
    ]
    assert None not in result["predictions"]


def test_the_course_api_spelling_prices_exactly_as_the_model_name(
    houses: list[dict[str, Any]],
) -> None:
    # The course's clients send ThreeSsnPortch: every house of test.csv, and
    # above all the 13 with a three-season porch, must price the same.
    porches = [h for h in houses if h.get("3SsnPorch")]
    assert len(porches) == 13
    course = [
        {("ThreeSsnPortch" if k == "3SsnPorch" else k): v for k, v in house.items()}
        for house in houses
    ]
    ours = make_prediction(input_data=houses)
    theirs = make_prediction(input_data=course)
    assert theirs["predictions"] == ours["predictions"]
    assert theirs["warnings"] is None and theirs["errors"] is None
    # and the porch matters, so dropping it would have shown
    without = [{k: v for k, v in h.items() if k != "3SsnPorch"} for h in porches]
    assert (
        make_prediction(input_data=without)["predictions"]
        != make_prediction(input_data=porches)["predictions"]
    )
    # a bad value under the alias is named as sent
    bad = make_prediction(input_data=[{**course[0], "ThreeSsnPortch": -1}])
    assert [(e["row"], e["field"]) for e in bad["errors"] or []] == [(0, "ThreeSsnPortch")]


def test_strict_mode_refuses_unknown_fields_per_row(houses: list[dict[str, Any]]) -> None:
    rows = [houses[0], {**houses[1], "GrLivArae": 1500, "owner": "x"}, houses[2]]
    result = make_prediction(input_data=rows, strict=True)
    assert result["predictions"][1] is None
    assert result["predictions"][0] is not None and result["predictions"][2] is not None
    assert result["warnings"] is None
    assert result["errors"] == [
        {
            "row": 1,
            "field": "GrLivArae",
            "message": "unknown field, refused (strict mode) — did you mean GrLivArea?",
        },
        {"row": 1, "field": "owner", "message": "unknown field, refused (strict mode)"},
    ]


def test_a_row_of_unknown_fields_only_is_an_error_and_named(
    houses: list[dict[str, Any]],
) -> None:
    result = make_prediction(input_data=[{"Colour": "red"}])
    assert result["predictions"] == [None]
    assert [e["field"] for e in result["errors"] or []] == [WHOLE_ROW]
    assert [w["field"] for w in result["warnings"] or []] == ["Colour"]
    strict = make_prediction(input_data=[{"Colour": "red"}], strict=True)
    assert [e["field"] for e in strict["errors"] or []] == [WHOLE_ROW, "Colour"]


@pytest.mark.parametrize("rows", [3, 50])  # value by value, and a column at a time
def test_a_frame_names_each_unknown_column_once(test_data: pd.DataFrame, rows: int) -> None:
    frame = test_data.iloc[:rows].rename(columns={"GrLivArea": "GrLivArae"})
    frame["SalePrice"] = 1.0
    result = make_prediction(input_data=frame)
    assert [(w["row"], w["field"]) for w in result["warnings"] or []] == [
        (None, "GrLivArae"),
        (None, "SalePrice"),
    ]
    strict = make_prediction(input_data=frame, strict=True)
    assert strict["predictions"] == [None] * rows
    assert strict["warnings"] is None
    assert [(e["row"], e["field"]) for e in strict["errors"] or []] == [
        (row, name) for row in range(rows) for name in ("GrLivArae", "SalePrice")
    ]


def test_a_chunked_frame_names_its_columns_once(
    test_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 100)
    frame = test_data.iloc[:350].assign(Notes="x")
    result = make_prediction(input_data=frame)
    assert result["warnings"] == [
        {"row": None, "field": "Notes", "message": "unknown field, ignored"}
    ]
    assert result["predictions"] == make_prediction(input_data=test_data.iloc[:350])["predictions"]


def test_suggestions_are_bounded_per_batch() -> None:
    # Thousands of made-up names cost microseconds each: only the first 32
    # distinct ones are matched against the known names.
    houses = [
        {"OverallQual": 5, **{f"GrLivArea{20 * row + i}": 1 for i in range(20)}}
        for row in range(10)
    ]
    result = validate_inputs(houses)
    suggested = [w for w in result.ignored if "did you mean" in w.message]
    assert len(result.ignored) == 200
    assert [w.field for w in suggested] == [f"GrLivArea{i}" for i in range(32)]


@pytest.mark.parametrize("strict", [False, True])
def test_a_house_of_made_up_keys_names_twenty_and_counts_the_rest(strict: bool) -> None:
    """300,000 made-up keys cost what 20 do, and the answer stays small: the
    first 20 are named (in the order sent), one more entry counts the rest."""
    house = {"OverallQual": 5, **{f"k{i}": 1 for i in range(300_000)}}
    result = make_prediction(input_data=[house, {"OverallQual": 5, "Nots": 1}], strict=strict)
    named = result["errors"] if strict else result["warnings"]
    first = [(w["row"], w["field"]) for w in named if w["row"] == 0]
    assert first == [(0, f"k{i}") for i in range(NAMED_FIELDS_MAX)] + [(0, WHOLE_ROW)]
    assert named[NAMED_FIELDS_MAX]["message"].startswith(
        f"{300_000 - NAMED_FIELDS_MAX:,} more fields the model does not know, "
        + ("refused" if strict else "ignored")
    )
    assert [(w["row"], w["field"]) for w in named if w["row"] == 1] == [(1, "Nots")]
    assert (result["predictions"][0] is None) == strict


def test_a_frame_of_many_unknown_columns_names_twenty() -> None:
    frame = pd.DataFrame([{"OverallQual": 5, **{f"c{i}": 1 for i in range(50)}}] * 3)
    result = validate_inputs(frame)
    assert [w.field for w in result.ignored] == [f"c{i}" for i in range(20)] + [WHOLE_ROW]
    assert result.ignored[-1].message.startswith("30 more fields the model does not know")


def test_huge_names_are_not_echoed_whole() -> None:
    result = validate_inputs([{"OverallQual": 5, "x" * 100_000: 1}])
    (ignored,) = result.ignored
    assert len(ignored.field) == 100 and ignored.field.endswith("...")


def test_model_fields_are_what_the_log_keeps() -> None:
    fields, ignored = model_fields(
        {"Id": 7, "ThreeSsnPortch": 5, "1stFlrSF": 900, "GrLivArae": 1, "ssn": "x", "PoolQC": None}
    )
    assert fields == {"FirstFlrSF": 900, "ThreeSsnPorch": 5, "Id": 7}
    assert ignored == ["GrLivArae", "ssn"]


def test_an_alias_cannot_shadow_a_variable(config: Config, tmp_path: Path) -> None:
    from regression_model.config.core import ConfigError, load_config

    text = config.source.read_text()  # type: ignore[union-attr]
    bad = text.replace("ThreeSsnPortch: ThreeSsnPorch", "GrLivArea: ThreeSsnPorch")
    assert bad != text
    path = tmp_path / "config.yml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match="input_aliases: already the name of a variable"):
        load_config(path)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regression_model", *args],
        env=dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_names_unknown_columns_and_refuses_them_with_strict(
    test_data: pd.DataFrame, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    source = tmp_path / "houses.csv"
    test_data.iloc[:5].rename(columns={"GrLivArea": "GrLivArae"}).to_csv(source, index=False)
    done = cli(
        "predict", "--input", str(source), "--output", "out.csv", "--allow-missing-columns",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: column 'GrLivArae': unknown field, ignored — did you mean GrLivArea?" in (
        done.stderr
    )
    assert "1 unknown column(s) ignored" in done.stderr
    assert pd.read_csv(tmp_path / "out.csv")["SalePrice"].notna().all()
    strict = cli(
        "predict", "--input", str(source), "--output", "strict.csv", "--allow-missing-columns",
        "--strict", cwd=tmp_path,
    )  # fmt: skip
    assert strict.returncode == 3, strict.stderr
    written = pd.read_csv(tmp_path / "strict.csv", keep_default_na=False)
    assert (written["SalePrice"] == "").all()
    assert (
        written["errors"]
        .str.contains("GrLivArae: unknown field, refused (strict mode)", regex=False)
        .all()
    )


@pytest.mark.parametrize("engine", ["tables", "pipeline"])
def test_a_slip_of_a_listed_label_is_priced_as_sent_and_named(
    engine: str, test_data: pd.DataFrame
) -> None:
    """ "rl" is priced as a label the model does not know (its rule), and the
    row is told which label it probably meant; a label the model does not
    list and that is no slip ("Blueste": rare in training) gets no hint."""
    house = {k: v for k, v in test_data.iloc[0].to_dict().items() if not pd.isna(v)}
    houses = [
        house,
        {**house, "MSZoning": "rl"},
        {**house, "Neighborhood": " NAmes\t"},
        {**house, "Neighborhood": "Blueste"},
    ]
    model = load_model(engine=engine)  # type: ignore[call-overload]
    result = model.predict(houses)
    assert all(price is not None for price in result["predictions"])
    assert result["predictions"][1] != result["predictions"][0]
    hints = [(w["row"], w["field"]) for w in result["warnings"]]
    assert hints == [(1, "MSZoning"), (2, "Neighborhood")]
    assert "did you mean 'RL'?" in result["warnings"][0]["message"]
    assert "did you mean 'NAmes'?" in result["warnings"][1]["message"]


def test_a_file_of_one_slip_names_twenty_rows_and_counts_the_rest(test_data: pd.DataFrame) -> None:
    frame = test_data.iloc[:300].assign(MSZoning="rl")
    warnings = make_prediction(input_data=frame)["warnings"]
    assert [w["row"] for w in warnings] == list(range(20))
    assert warnings[-1]["message"].endswith("(and so in 280 more rows after this one)")
