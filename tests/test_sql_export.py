"""The model as SQL (``regression_model.export.to_sql``): run in SQLite,
DuckDB and PostgreSQL, every test.csv house and generated houses (valid and
invalid values) get the package's verdict — the same rows refused, for the
same first field — and a price and price ranges within 1e-12 relative of
``Model.predict``.
Spark SQL runs in Spark itself (pyspark and a Java runtime, as tox's
test_package and .ci/run have them), on every test.csv house and fixed hostile
ones. The other dialects are written and parsed back, and run in DuckDB after
sqlglot translates them back.

PostgreSQL uses ``TEST_DATABASE_URL`` (skipped without it, failing with
``REQUIRE_POSTGRES=1``), as the prediction log's tests do.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regression_model import CompiledModel, load_model
from regression_model.cli import main
from regression_model.config.core import get_config
from regression_model.data import load_dataset
from regression_model.export import DIALECTS, EXECUTED_DIALECTS, input_columns, to_sql
from regression_model.scoring.schema import schema_for

REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
RELATIVE = 1e-12

CONFIG = get_config().model
COLUMNS = input_columns(CONFIG)
KEY = CONFIG.id_column
#: Each rule under its Kaggle column name.
RULES = {name: rule for (name, _), rule in zip(COLUMNS[1:], schema_for(CONFIG).rules, strict=True)}
#: The price's range at each coverage the model was calibrated for (80 % and 90 %).
RANGES = ["SalePrice_low_80", "SalePrice_high_80", "SalePrice_low_90", "SalePrice_high_90"]

Row = dict[str, Any]
#: Runs a query on rows (a table "houses" of COLUMNS), giving per row
#: (key, price, each of RANGES, reason).
Engine = Callable[[list[Row], str], list[tuple[Any, ...]]]


def _model() -> CompiledModel:
    model = load_model()
    assert isinstance(model, CompiledModel)
    return model


@functools.cache
def _query(dialect: str, explain: bool = False) -> str:
    return to_sql(_model(), dialect, explain=explain)


def _values(rows: list[Row]) -> list[tuple[Any, ...]]:
    return [tuple(row.get(name) for name, _ in COLUMNS) for row in rows]


def _sqlite(rows: list[Row], sql: str, *, setup: str = "") -> list[tuple[Any, ...]]:
    # Untyped columns: SQLite keeps each value's own type (text in a number's
    # column included), which the query's typeof checks see.
    with sqlite3.connect(":memory:") as connection:
        names = ", ".join(f'"{name}"' for name, _ in COLUMNS)
        connection.execute(f"CREATE TABLE houses ({names})")
        marks = ", ".join("?" for _ in COLUMNS)
        connection.executemany(f"INSERT INTO houses VALUES ({marks})", _values(rows))
        connection.executescript(setup)
        return connection.execute(sql).fetchall()


_ARROW_TYPES = {"DOUBLE": pa.float64(), "BIGINT": pa.int64(), "TEXT": pa.string()}


def _arrow(rows: list[Row], *, whole: bool = False) -> pa.Table:
    """``rows`` as a table of COLUMNS' types; with ``whole``, the numbers a
    rule wants whole as BIGINT."""

    def kind(name: str, declared: str) -> pa.DataType:
        rule = RULES.get(name)
        if whole and rule is not None and rule.numerical and rule.integer:
            return pa.int64()
        return _ARROW_TYPES[declared]

    return pa.table(
        {
            name: pa.array([row.get(name) for row in rows], kind(name, declared))
            for name, declared in COLUMNS
        }
    )


def _duckdb(rows: list[Row], sql: str, *, whole: bool = False) -> list[tuple[Any, ...]]:
    with duckdb.connect() as connection:
        connection.register("frame", _arrow(rows, whole=whole))
        connection.execute("CREATE TABLE houses AS SELECT * FROM frame")
        return connection.execute(sql).fetchall()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Engine]:
    """A schema of its own on the server named by TEST_DATABASE_URL."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if REQUIRE_POSTGRES:
            pytest.fail("TEST_DATABASE_URL is not set (REQUIRE_POSTGRES=1)")
        pytest.skip("TEST_DATABASE_URL is not set (.ci/run starts a server)")
    import psycopg

    schema = f"sql_export_{uuid.uuid4().hex[:12]}"
    types = {"DOUBLE": "DOUBLE PRECISION", "BIGINT": "BIGINT", "TEXT": "TEXT"}
    columns = ", ".join(f'"{name}" {types[kind]}' for name, kind in COLUMNS)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(f"SET search_path TO {schema}")

        def run(rows: list[Row], sql: str) -> list[tuple[Any, ...]]:
            connection.execute("DROP TABLE IF EXISTS houses")
            connection.execute(f"CREATE TABLE houses ({columns})")
            with connection.cursor() as cursor, cursor.copy("COPY houses FROM STDIN") as copy:
                for values in _values(rows):
                    copy.write_row(values)
            return connection.execute(sql).fetchall()

        try:
            yield run
        finally:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=EXECUTED_DIALECTS)
def engine(request: pytest.FixtureRequest) -> tuple[str, Engine]:
    dialect = request.param
    if dialect == "postgres":
        return dialect, request.getfixturevalue("postgres")
    return dialect, {"sqlite": _sqlite, "duckdb": _duckdb}[dialect]


def _package_verdicts(
    rows: list[Row], model: CompiledModel | None = None
) -> tuple[np.ndarray, dict[int, str]]:
    """The package's prices and ranges (a row per house: the price, then the
    low and high at each coverage; NaN where refused) and each refused row's
    first field."""
    frame = pd.DataFrame(rows, columns=[name for name, _ in COLUMNS])
    result = (model or _model()).predict(frame)
    prices = np.full((len(rows), 1 + len(RANGES)), math.nan)
    for position, (price, ranges) in enumerate(
        zip(result["predictions"], result["intervals"], strict=True)
    ):
        if price is not None and ranges is not None:
            bounds = [bound for r in ranges for bound in (r["low"], r["high"])]
            prices[position] = [price, *bounds]
    first: dict[int, str] = {}
    for error in result["errors"] or ():
        first.setdefault(error["row"], error["field"])
    return prices, first


def _assert_same_verdicts(
    rows: list[Row], found: list[tuple[Any, ...]], model: CompiledModel | None = None
) -> None:
    prices, first = _package_verdicts(rows, model)
    by_key = {key: (values, reason) for key, *values, reason in found}
    assert len(by_key) == len(rows)
    for position, row in enumerate(rows):
        values, reason = by_key[row[KEY]]
        assert len(values) == 1 + len(RANGES)
        if position in first:
            assert values == [None] * len(values), (row, reason)
            assert reason is not None and reason.split(": ", 1)[0] == first[position], (
                reason,
                first[position],
            )
        else:
            assert reason is None, reason
            relative = np.abs(np.array(values, dtype=float) / prices[position] - 1)
            assert (relative <= RELATIVE).all(), (values, prices[position])


def _test_houses() -> list[Row]:
    frame = load_dataset(get_config().app.test_data_file)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{name: row.get(name) for name, _ in COLUMNS} for row in rows]


TEST_HOUSES = _test_houses()


def test_every_test_house_priced_as_by_the_package(engine: tuple[str, Engine]) -> None:
    dialect, run = engine
    _assert_same_verdicts(TEST_HOUSES, run(TEST_HOUSES, _query(dialect)))


def test_a_house_of_missing_markers_only_is_refused_as_by_the_package(
    engine: tuple[str, Engine],
) -> None:
    # "NA" means missing: a house of nothing else has no feature values.
    rows = [
        {KEY: 1, "KitchenQual": "NA"},
        {KEY: 2, "Neighborhood": "NA", "Fence": "NA", "GrLivArea": None},
        {KEY: 3, "MSSubClass": -5},  # an unknown code is a value, refused as such
    ]
    _assert_same_verdicts(rows, engine[1](rows, _query(engine[0])))


# Generated houses: a test.csv house with a few of its values replaced.
_TEXT = st.text(alphabet="abcXYZ _-\t", max_size=6)
#: Labels the rules refuse or take specially: missing, blank, too long, and
#: quality codes in and out of their case.
_ODD_LABELS = ["NA", "", "  ", "\t", "x" * 41, "é" * 40, "Po", "Ex", "ta"]


def _number_values(name: str, *, typed: bool) -> st.SearchStrategy[Any]:
    rule = RULES[name]
    inside = st.floats(rule.low, rule.high)
    values = [
        st.none(),
        st.integers(int(rule.low), int(rule.high)),
        inside,
        st.sampled_from([rule.low, rule.high, rule.low - 1, rule.high + 0.5, math.inf, -math.inf]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.just(math.nan),
    ]
    if not typed:  # SQLite's dynamic types: text in a number's column
        values.append(st.sampled_from(["12", "abc", ""]))
    return st.one_of(values)


def _label_values(name: str, *, typed: bool) -> st.SearchStrategy[Any]:
    rule = RULES[name]
    if rule.codes is not None:
        codes = st.sampled_from(rule.codes)
        wrong = st.integers(-5, 300)
        if typed:
            return st.one_of(st.none(), codes, wrong)
        return st.one_of(
            st.none(), codes, wrong, codes.map(str), codes.map(float), st.just("60.0")
        )
    term = next(t for t in _model().tables.lookup if t.variable == rule.name)
    values = [
        st.none(),
        st.sampled_from(sorted(term.table)),
        st.sampled_from(_ODD_LABELS),
        _TEXT,
    ]
    if not typed:
        values.append(st.sampled_from([3, 2.5]))
    return st.one_of(values)


def _houses(*, typed: bool) -> st.SearchStrategy[list[Row]]:
    names = [name for name, _ in COLUMNS[1:]]

    @st.composite
    def house(draw: st.DrawFn) -> Row:
        if draw(st.integers(0, 20)) == 0:
            return {}  # no feature values
        row = dict(draw(st.sampled_from(TEST_HOUSES)))
        for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
            kind = _number_values if RULES[name].numerical else _label_values
            row[name] = draw(kind(name, typed=typed))
        return row

    def keyed(rows: list[Row]) -> list[Row]:
        return [{**row, KEY: key} for key, row in enumerate(rows)]

    return st.lists(house(), min_size=1, max_size=12).map(keyed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_houses(typed=False))
def test_generated_houses_in_sqlite(rows: list[Row]) -> None:
    _assert_same_verdicts(rows, _sqlite(rows, _query("sqlite")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_houses(typed=True))
def test_generated_houses_in_duckdb(rows: list[Row]) -> None:
    _assert_same_verdicts(rows, _duckdb(rows, _query("duckdb")))


def test_whole_numbers_in_integer_columns_in_duckdb() -> None:
    # DuckDB's query skips the whole-number test for a column of an integer
    # type: such a column is priced and refused as a DOUBLE one is.
    integer = [name for name, rule in RULES.items() if rule.numerical and rule.integer]
    rows = [
        {**row, **{n: None if row.get(n) is None else int(row[n]) for n in integer}}
        for row in TEST_HOUSES[:300]
    ]
    for position, name in enumerate(integer):
        rule = RULES[name]
        out = int(rule.high) + 1 if position % 2 else int(rule.low) - 1
        rows[position] = {**rows[position], name: out}
    rows = [{**row, KEY: key} for key, row in enumerate(rows)]
    _assert_same_verdicts(rows, _duckdb(rows, _query("duckdb"), whole=True))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rows=_houses(typed=True))
def test_generated_houses_in_postgres(postgres: Engine, rows: list[Row]) -> None:
    _assert_same_verdicts(rows, postgres(rows, _query("postgres")))


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d not in EXECUTED_DIALECTS])
def test_other_dialects_parse_back_and_price_alike(dialect: str) -> None:
    """Written in the dialect, parsed back by sqlglot, translated to DuckDB's
    and run there: the same verdicts and prices."""
    sql = _query(dialect)
    (statement,) = sqlglot.parse(sql, read=dialect)
    assert statement is not None
    assert statement.named_selects == [KEY, "price", *RANGES, "reason"]
    rows = TEST_HOUSES[:200]
    _assert_same_verdicts(rows, _duckdb(rows, statement.sql("duckdb")))


def _hostile_houses() -> list[Row]:
    """test.csv houses each with one value replaced, column by column, by
    values the rules refuse or take specially (out of range, fractional,
    infinite, NaN, unknown, ``NA``, blank, too long), and a house with no
    value at all: the generated houses' kinds, fixed, for engines too slow
    to start for each example."""
    numbers = [-1.0, 0.5, 1e9, math.inf, -math.inf, math.nan, None]
    labels = [*_ODD_LABELS, "abc", None]
    rows: list[Row] = [{KEY: 0}]
    for position, (name, _) in enumerate(COLUMNS[1:]):
        rule = RULES[name]
        kinds: list[Any] = (
            numbers if rule.numerical else [-5, 61, None] if rule.codes is not None else labels
        )
        for offset, value in enumerate(kinds):
            house = TEST_HOUSES[(position * 11 + offset) % len(TEST_HOUSES)]
            rows.append({**house, name: value, KEY: len(rows)})
    return rows


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local Spark session (pyspark and a Java runtime: tox's test_package
    installs pyspark, .ci/run the JRE); skipped without them, failing with
    ``REQUIRE_SPARK=1``."""
    try:
        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .getOrCreate()
        )
    except Exception as exc:  # pyspark missing, or no Java to start it
        if os.environ.get("REQUIRE_SPARK") == "1":
            pytest.fail(f"Spark cannot start (REQUIRE_SPARK=1): {exc}")
        pytest.skip(f"Spark cannot start: {exc}")
    try:
        yield session
    finally:
        session.stop()


# pyspark 4.3 warns on any pandas >= 3 when making a DataFrame; none is used here.
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_prices_as_the_package(spark: Any) -> None:
    """The query written for Spark SQL, run by Spark itself (ANSI mode, its
    default), on every test.csv house and the hostile ones: the package's
    verdicts, prices and ranges within 1e-12."""
    from pyspark.sql import types

    kinds = {"DOUBLE": types.DoubleType(), "BIGINT": types.LongType(), "TEXT": types.StringType()}
    schema = types.StructType([types.StructField(n, kinds[k], True) for n, k in COLUMNS])
    rows = [*_hostile_houses(), *({**h, KEY: 10_000 + h[KEY]} for h in TEST_HOUSES)]
    typed = [
        tuple(
            None if value is None else float(value) if kind == "DOUBLE" else value
            for value, (_, kind) in zip(values, COLUMNS, strict=True)
        )
        for values in _values(rows)
    ]
    spark.createDataFrame(typed, schema).createOrReplaceTempView("houses")
    found = spark.sql(_query("spark").rstrip().rstrip(";")).collect()
    _assert_same_verdicts(rows, [tuple(row) for row in found])
    assert sum(row["reason"] is not None for row in found) > 200  # the hostile rows refused


def test_explain_columns_are_the_package_terms() -> None:
    # A label no table lists nor the training data has, which the rules
    # take: the table's "other" (DuckDB's lookups by list complete it).
    novel = {
        column
        for column, rule in RULES.items()
        if rule.codes is None and rule.quality_codes is None and not rule.numerical
    }
    rows = [
        {**row, **({name: "Novel label" for name in novel} if position % 5 == 0 else {})}
        for position, row in enumerate(TEST_HOUSES[:50])
    ]
    result = _model().predict(pd.DataFrame(rows), explain=True)
    with duckdb.connect() as connection:
        connection.register("houses", _arrow(rows))
        found = connection.execute(_query("duckdb", explain=True)).fetch_df()
    terms = [t.variable for t in _model().tables.terms]
    assert list(found.columns) == [
        KEY,
        "price",
        *RANGES,
        "reason",
        *(f"log_effect_{t}" for t in terms),
    ]
    for position, explanation in enumerate(result["explanations"]):
        assert explanation is not None
        effects = dict.fromkeys(terms, 0.0)
        effects.update({f["variable"]: f["log_effect"] for f in explanation["factors"]})
        for variable, effect in effects.items():
            assert found[f"log_effect_{variable}"][position] == pytest.approx(effect, abs=1e-13)


def test_the_command_writes_a_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "model.sql"
    argv = ["export", "sql", "--dialect", "sqlite", "--view", "prices", "--output", str(output)]
    assert main(argv) == 0
    assert "sqlite SQL" in capsys.readouterr().err
    rows = TEST_HOUSES[:20]
    _assert_same_verdicts(rows, _sqlite(rows, 'SELECT * FROM "prices"', setup=output.read_text()))


def test_an_unknown_dialect_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "sql", "--dialect", "cobol"]) == 2
    assert "dialect must be one of sqlite, duckdb, postgres" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "name", "fault"),
    [
        ("--table", "a.b.c.d", "has 4 parts"),  # was FROM "b"."c"."d", its first part dropped
        ("--table", "", "is empty"),  # was FROM "", exit 0
        ("--view", "", "is empty"),  # was CREATE VIEW "" AS, exit 0
        ("--view", " ", "is empty"),
        ("--table", "shop..houses", "has an empty part"),
        ("--table", "shop.", "has an empty part"),
    ],
)
def test_a_name_sql_cannot_take_is_refused(
    option: str, name: str, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "sql", option, name]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    what = option.removeprefix("--")
    assert err == (
        f"error: the {what} name {name!r} {fault}: give NAME, SCHEMA.NAME or CATALOG.SCHEMA.NAME\n"
    )


def test_a_table_named_with_its_catalog_and_schema() -> None:
    sql = to_sql(_model(), "duckdb", table="shop.sales.houses", view="prices.v")
    assert 'FROM "shop"."sales"."houses"' in sql
    assert sql.startswith('CREATE VIEW "prices"."v" AS')


def test_what_sql_does_not_check_is_as_documented() -> None:
    """README, "The model in SQL": other columns are not read (the package
    names them back and prices alike), and ``reason`` gives a row's first
    problem only, naming the rule rather than the value."""
    house = dict(TEST_HOUSES[0])
    two_problems = {**house, KEY: 1, "LotArea": -5.0, "MSZoning": " "}
    rows = [{**house, KEY: 0}, two_problems]
    result = _model().predict(pd.DataFrame([{**rows[0], "GrLivArae": 1.0}, two_problems]))
    assert result["warnings"] is not None  # the package names the unknown column
    with duckdb.connect() as connection:
        connection.register("frame", _arrow(rows))
        connection.execute("CREATE TABLE houses AS SELECT *, 1.0 AS GrLivArae FROM frame")
        found = connection.execute(_query("duckdb")).fetchall()
    assert found[0][1] == pytest.approx(result["predictions"][0], rel=RELATIVE)
    assert [e["field"] for e in result["errors"] or ()] == ["LotArea", "MSZoning"]
    assert found[1][1:] == (
        *[None] * (1 + len(RANGES)),
        "LotArea: must be a finite number between 1 and 1e+07",
    )


def test_ranges_of_a_constant_width_as_the_package_gives_them(
    engine: tuple[str, Engine],
) -> None:
    """A model whose ranges have no difficulty model (every house the same
    width in log price) prices its ranges in SQL as the package does."""
    model = _model()
    assert model.tables.intervals is not None
    tables = dataclasses.replace(
        model.tables, intervals=dataclasses.replace(model.tables.intervals, difficulty=None)
    )
    constant = CompiledModel(model.config, tables, model.manifest)
    dialect, run = engine
    rows = TEST_HOUSES[:300]
    sql = to_sql(constant, dialect)
    assert '"scale"' not in sql
    _assert_same_verdicts(rows, run(rows, sql), constant)
    # the widths in log price are the same for every house, and not the model's own
    found = np.array([row[1:-1] for row in run(rows, sql) if row[1] is not None], dtype=float)
    widths = np.log(found[:, 2]) - np.log(found[:, 1])
    assert np.ptp(widths) < 1e-9
    assert not np.allclose(
        _package_verdicts(rows)[0][:, 1], _package_verdicts(rows, constant)[0][:, 1]
    )


def test_coverage_chooses_the_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    rows = TEST_HOUSES[:30]
    with duckdb.connect() as connection:
        connection.register("houses", _arrow(rows))
        found = connection.execute(to_sql(_model(), "duckdb", coverages=[0.9])).fetch_df()
    assert list(found.columns) == [KEY, "price", "SalePrice_low_90", "SalePrice_high_90", "reason"]
    prices, _ = _package_verdicts(rows)
    assert np.allclose(found["SalePrice_high_90"], prices[:, 4], rtol=RELATIVE, atol=0)
    assert main(["export", "sql", "--coverage", "0.8"]) == 0
    assert '"SalePrice_high_80"' in capsys.readouterr().out
    assert main(["export", "sql", "--coverage", "0.95"]) == 2
    assert "no price range at coverage 0.95" in capsys.readouterr().err


def test_a_value_near_zero_underflows_in_no_engine(engine: tuple[str, Engine]) -> None:
    """PostgreSQL raises an error where a product underflows to zero (IEEE
    gives 0), as a spline's ``(t - 0) ** 3`` at ``t = 1e-188`` does: the
    query scores such a value as 0 there, to the same price."""
    dialect, run = engine
    rows = [
        {**house, KEY: key, "BsmtFinSF2": value}
        for key, (house, value) in enumerate(
            zip(TEST_HOUSES, [7.5e-188, 5e-324, 0.0], strict=False)
        )
    ]
    _assert_same_verdicts(rows, run(rows, _query(dialect)))


def test_an_input_no_term_reads_is_still_checked(engine: tuple[str, Engine]) -> None:
    """A value that breaks its rule makes its term, so the price, NULL: that is
    how the query finds the rows to refuse. A model with no term for an input
    (a label and a number here) must still refuse a bad value of it."""
    model = _model()
    dropped = {"Street", "PoolArea", "MSSubClass"}
    tables = dataclasses.replace(
        model.tables,
        numeric=[t for t in model.tables.numeric if t.variable not in dropped],
        lookup=[t for t in model.tables.lookup if t.variable not in dropped],
    )
    partial = CompiledModel(model.config, tables, model.manifest)
    dialect, run = engine
    bad = {"Street": " ", "PoolArea": -1.0, "MSSubClass": 999}
    rows = [
        {**TEST_HOUSES[0], KEY: 0},
        {**TEST_HOUSES[1], KEY: 1, "Street": "NA", "PoolArea": None, "MSSubClass": None},
        *(
            {**TEST_HOUSES[2], KEY: 2 + i, name: value}
            for i, (name, value) in enumerate(bad.items())
        ),
    ]
    sql = to_sql(partial, dialect)
    assert '"log_effect_Street"' not in to_sql(partial, dialect, explain=True)
    found = run(rows, sql)
    _assert_same_verdicts(rows, found, partial)
    assert [row[-1] is None for row in sorted(found)] == [True, True, False, False, False]
