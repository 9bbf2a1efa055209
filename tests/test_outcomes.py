"""Outcomes (sale prices that come back): each row checked on its own, with
its row and field named; stored once however often it is sent; another
price or date for a recorded house refused; a request reference looked up
in the log; and ``regression-model outcomes import`` storing a held-out part
of train.csv (Id, SalePrice, YrSold/MoSold) with line numbers for bad lines.
SQLite here; PostgreSQL through the API's tests (api/tests/test_outcomes.py).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, select

from regression_model.cli import main as cli_main
from regression_model.monitoring.log_store import (
    create_log_engine,
    insert_records,
    migrate,
    outcomes,
    record_time,
)
from regression_model.monitoring.outcomes import (
    Outcome,
    store_outcomes,
    validate_outcome,
    validate_outcomes,
)

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
GOOD = {"key": 1461, "sale_price": 208500, "sale_date": "2010-06-01"}


def _problems(item: Any) -> list[tuple[str, str]]:
    outcome, problems = validate_outcome(item, now=NOW)
    assert (outcome is None) == bool(problems)
    return problems


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"sale_price": -1}, "sale_price", "-1 is out of range: must be between 1,000 and"),
        ({"sale_price": 0}, "sale_price", "out of range"),
        ({"sale_price": 1e9}, "sale_price", "out of range"),
        ({"sale_price": math.nan}, "sale_price", "not a finite number"),
        ({"sale_price": math.inf}, "sale_price", "not a finite number"),
        ({"sale_price": "208500"}, "sale_price", "expected a number of dollars, got string"),
        ({"sale_price": True}, "sale_price", "got boolean"),
        ({"sale_price": None}, "sale_price", "missing"),
        ({"sale_date": "2010-13-01"}, "sale_date", "is not a date"),
        ({"sale_date": "2010/06/01"}, "sale_date", "expected a date as YYYY-MM-DD"),
        ({"sale_date": "2010-06-01T00:00:00"}, "sale_date", "expected a date as YYYY-MM-DD"),
        ({"sale_date": 20100601}, "sale_date", "got number"),
        ({"sale_date": "2026-12-08"}, "sale_date", "is in the future"),
        ({"sale_date": "0206-05-01"}, "sale_date", "before 1900-01-01"),
        ({"sale_date": None}, "sale_date", "missing"),
        ({"key": None}, "*", "no reference to a priced house"),
        ({"key": ""}, "key", "empty"),
        ({"key": "a" * 65}, "key", "65 characters long; at most 64"),
        ({"key": "14 61"}, "key", "whitespace or a control character"),
        ({"key": "1461\x00"}, "key", "whitespace or a control character"),
        ({"key": 1461.5}, "key", "expected a string or whole number, got 1461.5"),
        ({"key": False}, "key", "got boolean"),
        # JSON keeps integers whole, of any length (pydantic-core's parser
        # does; Python's refuses over 4300 digits, and the API's then reads
        # them as floats): too long for a float is infinite, not an error.
        ({"sale_price": 10**400}, "sale_price", "inf is not a finite number"),
        ({"sale_price": -(10**400)}, "sale_price", "-inf is not a finite number"),
        ({"sale_price": 10**20}, "sale_price", "1e+20 is out of range"),
        ({"key": 10**400}, "key", "a whole number of over 64 digits; at most 64"),
        ({"key": 10**64}, "key", "65 characters long; at most 64"),
        # A 30-digit float is no longer that whole number exactly.
        ({"key": 1.2345678901234568e29}, "key", "got 1.23457e+29"),
        ({"request_id": "abc", "row": 0}, "key", "give key or request_id and row, not both"),
        ({"SalePrice": 1}, "SalePrice", "unknown field, refused — did you mean sale_price?"),
        ({"saledate": 1}, "saledate", "did you mean sale_date?"),
        ({"notes": "x"}, "notes", "unknown field, refused (an outcome has request_id, row,"),
    ],
)
def test_each_bad_value_is_named_by_field(change: dict[str, Any], field: str, says: str) -> None:
    problems = _problems({**GOOD, **change})
    assert field in {name for name, _ in problems}
    assert any(name == field and says in message for name, message in problems), problems


@pytest.mark.parametrize(
    ("item", "field", "says"),
    [
        ({"request_id": "abc"}, "row", "missing: the house's position"),
        ({"row": 3}, "request_id", "missing: a row needs the request_id"),
        ({"request_id": "abc", "row": -1}, "row", "-1 is out of range"),
        ({"request_id": "abc", "row": True}, "row", "expected a whole number"),
        ({"request_id": "abc", "row": 1.5}, "row", "expected a whole number"),
        ({"request_id": "abc", "row": 2.0**40}, "row", "out of range"),
        ({"request_id": "abc", "row": 10**400}, "row", "inf is out of range"),
        ({"request_id": 5, "row": 1}, "request_id", "as a string, got number"),
        ({"request_id": "a b", "row": 1}, "request_id", "whitespace"),
    ],
)
def test_a_request_reference_needs_both_parts(item: dict[str, Any], field: str, says: str) -> None:
    problems = _problems({"sale_price": 150000, "sale_date": "2010-06-01", **item})
    assert any(name == field and says in message for name, message in problems), problems


def test_a_row_that_is_not_an_object_is_refused_alone() -> None:
    good, errors = validate_outcomes([GOOD, 42, [1]], now=NOW)
    assert [position for position, _ in good] == [0]
    assert [(e["row"], e["field"]) for e in errors] == [(1, "*"), (2, "*")]
    assert "expected an object (an outcome), got number" in errors[0]["message"]


def test_good_rows_and_their_references() -> None:
    by_key, problems = validate_outcome(GOOD, now=NOW)
    assert problems == [] and by_key == Outcome(None, None, "1461", 208500.0, date(2010, 6, 1))
    # A key sent as a number or as text is the same house.
    assert by_key.reference == "key:1461"
    assert validate_outcome({**GOOD, "key": "1461"}, now=NOW)[0] == by_key
    assert validate_outcome({**GOOD, "key": 1461.0}, now=NOW)[0] == by_key  # JSON's one number
    by_request, _ = validate_outcome(
        {"request_id": "18ee:9e-x.1", "row": 3, "sale_price": 99.5e3, "sale_date": "2026-12-07"},
        now=NOW,
    )
    assert by_request is not None and by_request.reference == "request:18ee:9e-x.1:3"
    # Today anywhere on Earth (UTC+14) is not the future; the day after is.
    assert _problems({**GOOD, "sale_date": "2026-12-07"}) == []


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_log_engine(str(tmp_path / "log.sqlite3"))
    migrate(engine)
    return engine


def stored_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(outcomes)).mappings()
        return {row["reference"]: dict(row) for row in rows}


def _log(engine: Engine, request_id: str, prices: list[float | None]) -> None:
    """A logged request of these prices (None: a rejected house)."""
    records = [
        {
            "log_id": f"{request_id:0>32}"[:32],
            "row": row,
            "request_id": request_id,
            "logged_at": record_time(NOW),
            "model_version": "0.3.0",
            "inputs": b'{"GrLivArea": 1000}',
            "price": price,
            "errors": None if price else [{"field": "GrLivArea", "message": "bad"}],
            "ignored_fields": None,
            "price_ranges": None,
        }
        for row, price in enumerate(prices)
    ]
    with engine.begin() as connection:
        insert_records(connection, records)


def test_stored_once_a_second_post_is_already_recorded(engine: Engine) -> None:
    _log(engine, "req-1", [180000.0, None])
    items = [
        GOOD,
        {"request_id": "req-1", "row": 0, "sale_price": 175000, "sale_date": "2010-02-01"},
        {"request_id": "req-1", "row": 1, "sale_price": 90000.5, "sale_date": "2009-07-01"},
        {"request_id": "pruned", "row": 4, "sale_price": 120000, "sale_date": "2009-07-01"},
        {**GOOD, "key": "1461"},  # the first row again, in the same batch
    ]
    checked, errors = validate_outcomes(items, now=NOW)
    assert errors == []
    first = store_outcomes(engine, checked, now=NOW)
    assert (first.stored, first.already_recorded, first.conflicts) == ([0, 1, 2, 3], [4], [])
    # The request reference of a priced house matches; a rejected or unknown one is flagged.
    assert [(u["row"], u["reference"]) for u in first.unmatched] == [
        (2, "request:req-1:1"),
        (3, "request:pruned:4"),
    ]
    assert "not priced" in first.unmatched[0]["message"]
    assert "may have been pruned" in first.unmatched[1]["message"]
    rows = stored_rows(engine)
    assert rows["key:1461"] == {
        "reference": "key:1461",
        "request_id": None,
        "row": None,
        "house_key": "1461",
        "sale_price": 208500.0,
        "sale_date": date(2010, 6, 1),
        "received_at": NOW.replace(tzinfo=None),
    }
    assert rows["request:req-1:1"]["sale_price"] == 90000.5
    assert (rows["request:req-1:0"]["request_id"], rows["request:req-1:0"]["row"]) == ("req-1", 0)
    assert len(rows) == 4

    again = store_outcomes(engine, checked, now=datetime.now(UTC))
    assert (again.stored, again.already_recorded, again.conflicts) == ([], [0, 1, 2, 3, 4], [])
    assert stored_rows(engine) == rows  # received_at unchanged: nothing rewritten


def test_another_price_or_date_for_a_recorded_house_is_a_conflict(engine: Engine) -> None:
    store_outcomes(engine, validate_outcomes([GOOD], now=NOW)[0])
    items = [
        {**GOOD, "sale_price": 210000},
        {**GOOD, "sale_date": "2010-07-01", "sale_price": 1000},
        {"key": 7, "sale_price": 100000, "sale_date": "2008-01-01"},
        {"key": 7, "sale_price": 100001, "sale_date": "2008-01-01"},
    ]
    result = store_outcomes(engine, validate_outcomes(items, now=NOW)[0])
    assert result.stored == [2] and result.already_recorded == []
    conflicts = [(c["row"], c["field"]) for c in result.conflicts]
    assert conflicts == [(0, "sale_price"), (1, "sale_price"), (1, "sale_date"), (3, "sale_price")]
    assert (
        "key:1461 is already recorded with sale_price 208500.0 (this row: 210000.0)"
        in (result.conflicts[0]["message"])
    )
    assert "already recorded by row 2 with sale_price 100000.0" in result.conflicts[3]["message"]
    assert stored_rows(engine)["key:1461"]["sale_price"] == 208500.0  # unchanged


# ---- regression-model outcomes import ---------------------------------------------------


@pytest.fixture(scope="module")
def held_out(train_data: pd.DataFrame) -> pd.DataFrame:
    """The last fifth of train.csv: houses priced earlier whose sales come back."""
    return train_data.tail(len(train_data) // 5).reset_index(drop=True)


def _import(
    path: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    status = cli_main(["outcomes", "import", str(path), "--database-url", str(database)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_import_a_held_out_part_of_train_csv(
    held_out: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    held_out[["Id", "SalePrice", "YrSold", "MoSold"]].to_csv(sales, index=False)
    database = tmp_path / "log.sqlite3"
    status, out, err = _import(sales, database, capsys)
    n = len(held_out)
    assert status == 0, err
    assert f"{n} lines: {n} stored, 0 already recorded, 0 refused" in out
    engine = create_log_engine(str(database))
    rows = stored_rows(engine)
    assert len(rows) == n
    for house in held_out[["Id", "SalePrice", "YrSold", "MoSold"]].to_dict("records"):
        row = rows[f"key:{house['Id']}"]
        assert row["sale_price"] == float(house["SalePrice"])
        # Kaggle gives the year and month only: the first of that month.
        assert row["sale_date"] == date(int(house["YrSold"]), int(house["MoSold"]), 1)

    # The whole rows of train.csv: the other columns are named, not read.
    whole = tmp_path / "whole.csv"
    held_out.to_csv(whole, index=False)
    status, out, err = _import(whole, database, capsys)
    assert status == 0 and f"{n} lines: 0 stored, {n} already recorded, 0 refused" in out
    assert "columns ignored: MSSubClass, MSZoning," in err and "and 67 more" in err
    assert stored_rows(engine) == rows


def test_import_names_each_bad_line_and_stores_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "Id,SalePrice,YrSold,MoSold\n"
        "1,208500,2008,2\n"  # line 2: good
        "2,-5,2007,8\n"  # line 3: bad price
        "3,181500,2010,13\n"  # line 4: no such month
        ",223500,2008,9\n"  # line 5: no reference
        "5,abc,2008,9\n"  # line 6: not a number
        "6,140000,2006,2\n"  # line 7: good
    )
    database = tmp_path / "log.sqlite3"
    status, out, err = _import(sales, database, capsys)
    assert status == 3
    assert "6 lines: 2 stored, 0 already recorded, 4 refused" in out
    assert "line 3: sale_price: -5 is out of range" in err
    assert "line 4: YrSold/MoSold: '2010'/'13' is no year and month (1-12)" in err
    assert "line 5: *: no reference to a priced house" in err
    assert "line 6: sale_price: expected a number of dollars, got string" in err
    assert set(stored_rows(create_log_engine(str(database)))) == {"key:1", "key:6"}

    # A corrected price for a recorded house is refused, the rest already recorded.
    sales.write_text("Id,SalePrice,YrSold,MoSold\n1,208500,2008,2\n6,141000,2006,2\n")
    status, out, err = _import(sales, database, capsys)
    assert status == 3 and "2 lines: 0 stored, 1 already recorded, 1 refused" in out
    assert "line 3: sale_price: key:6 is already recorded with sale_price 140000.0" in err


def test_import_by_request_and_row_with_a_sale_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text("request_id,row,sale_price,sale_date\nreq-9,0,150000,2010-05-17\n")
    database = tmp_path / "log.sqlite3"
    status, out, err = _import(sales, database, capsys)
    assert status == 0 and "1 lines: 1 stored" in out
    assert "1 outcomes quote a request and row that is no priced house" in err
    [row] = stored_rows(create_log_engine(str(database))).values()
    assert (row["reference"], row["sale_date"]) == ("request:req-9:0", date(2010, 5, 17))


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("SalePrice,YrSold,MoSold", "no column says which house"),
        ("Id,YrSold,MoSold", "no sale price column: sale_price or SalePrice"),
        ("Id,SalePrice", "no sale date: a sale_date column, or YrSold and MoSold"),
        ("Id,key,SalePrice,sale_date", "both key and Id columns"),
        ("request_id,SalePrice,sale_date", "a request_id column needs a row column"),
    ],
)
def test_a_file_without_the_columns_stores_nothing(
    header: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    status, _, err = _import(sales, tmp_path / "log.sqlite3", capsys)
    assert status == 1 and says in err and "nothing stored" in err


def test_a_database_that_fails_is_exit_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text("Id,SalePrice,YrSold,MoSold\n1,208500,2008,2\n")
    not_a_database = tmp_path / "a-directory"
    not_a_database.mkdir()
    status, _, err = _import(sales, not_a_database, capsys)
    assert status == 2
    assert "error: the prediction log's database failed (OperationalError" in err
    assert "Traceback" not in err


def test_a_column_named_twice_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both Ids were read and the last one stored, silently."""
    sales = tmp_path / "sales.csv"
    sales.write_text("Id,Id,SalePrice,sale_date\n1,2,150000,2010-06-01\n")
    database = tmp_path / "log.sqlite3"
    status, _, err = _import(sales, database, capsys)
    assert status == 1
    assert err == (
        f"error: {sales}: duplicated column names: Id (keep one of each) (nothing stored)\n"
    )
    assert not database.exists()


def test_a_line_with_more_fields_than_the_header_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The extra field was dropped and the line stored, silently."""
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "Id,SalePrice,sale_date\n1471,150000,2010-06-01,extra\n1472,150000,2010-06-01\n"
    )
    database = tmp_path / "log.sqlite3"
    status, out, err = _import(sales, database, capsys)
    assert status == 3
    assert "2 lines: 1 stored, 0 already recorded, 1 refused" in out
    assert "line 2: fields: 4 fields where the header has 3 columns" in err
    assert set(stored_rows(create_log_engine(str(database)))) == {"key:1472"}


def test_a_byte_that_is_not_utf8_names_its_line_and_nothing_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_bytes(  # old Mac line ends (CR only) are lines too
        b"Id,SalePrice,sale_date\r1471,150000,2010-06-01\n1472,150000,2010-06-01 caf\xe9\n"
    )
    database = tmp_path / "log.sqlite3"
    status, _, err = _import(sales, database, capsys)
    assert status == 1
    assert err == (
        f"error: {sales}: line 3: not UTF-8: byte 0xe9 at character 27 "
        "(save the file as UTF-8) (nothing stored)\n"
    )
    assert not database.exists()
