"""Realised performance: outcomes joined to logged prices by the rule of
``outcome_join.py``, and the figures of ``performance.py``.

A SQLite log is filled as the API fills it (houses of train.csv priced by
the model, their model fields and ranges), outcomes inserted into the
``outcomes`` table directly; the join is checked case by case, the figures
against NumPy, the verdicts at their thresholds, and the command end to end.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text

from regression_model import __version__, load_model, make_prediction, model_fields
from regression_model.config.core import Config
from regression_model.monitoring.log_store import (
    create_log_engine,
    database_url,
    migrate,
    outcomes,
    predictions,
)
from regression_model.monitoring.outcome_join import matched_outcomes
from regression_model.monitoring.performance import (
    BELOW_NOMINAL,
    CONSISTENT,
    DECADE_SLICE,
    PREDICTED_PRICE_SLICE,
    TOO_FEW,
    WORSE,
    PerformanceAccumulator,
)

SOLD = date(2026, 10, 1)
DAY = timedelta(days=1)


def _houses(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # type: ignore[return-value]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_log_engine(str(tmp_path / "log.sqlite3"))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A fresh database on the server named by TEST_DATABASE_URL."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("TEST_DATABASE_URL is not set (REQUIRE_POSTGRES=1)")
        pytest.skip("TEST_DATABASE_URL is not set (.ci/run starts a server)")
    name = f"performance_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    engine = create_log_engine(base.rsplit("/", 1)[0] + f"/{name}")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The log in SQLite and in PostgreSQL: the join's SQL (a JSON field read
    as text, row-value IN lists) in both."""
    return request.getfixturevalue(f"{request.param}_engine")  # type: ignore[no-any-return]


def log_request(
    engine: Engine,
    houses: list[dict[str, Any]],
    *,
    request_id: str,
    logged_at: datetime,
    version: str = __version__,
    scale: float = 1.0,
) -> list[float | None]:
    """Log houses as one request as the API does; ``scale`` multiplies the
    prices and ranges logged (a worse model). Returns the logged prices."""
    result = make_prediction(input_data=houses)
    prices = [None if p is None else p * scale for p in result["predictions"]]
    ranges = [
        None
        if levels is None
        else [{**r, "low": r["low"] * scale, "high": r["high"] * scale} for r in levels]
        for levels in result["intervals"] or [None] * len(houses)
    ]
    rows = [
        {
            "log_id": f"{request_id}-{logged_at:%Y%m%d%H%M%S}"[:32],
            "row": row,
            "request_id": request_id,
            "logged_at": logged_at,
            "model_version": version,
            "inputs": model_fields(house)[0],
            "price": price,
            "errors": None if price is not None else [{"field": "*", "message": "rejected"}],
            "ignored_fields": None,
            "price_ranges": ranges[row],
        }
        for row, (house, price) in enumerate(zip(houses, prices, strict=True))
    ]
    with engine.begin() as connection:
        connection.execute(predictions.insert(), rows)
    return prices


def add_outcomes(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Outcomes as the ingestion stores them: a request's house or a key."""
    filled = []
    for row in rows:
        reference = (
            f"request:{row['request_id']}:{row['row']}"
            if "request_id" in row
            else f"key:{row['house_key']}"
        )
        filled.append(
            {
                "reference": reference,
                "request_id": row.get("request_id"),
                "row": row.get("row"),
                "house_key": row.get("house_key"),
                "sale_price": row["sale_price"],
                "sale_date": row.get("sale_date", SOLD),
                "received_at": datetime.now(UTC),
            }
        )
    with engine.begin() as connection:
        connection.execute(outcomes.insert(), filled)


def matched(engine: Engine, config: Config, **options: Any) -> dict[str, float]:
    """reference -> the logged price it was matched to."""
    found = {}
    for _, sales in matched_outcomes(engine, config, model_version=__version__, **options):
        found.update({sale.reference: sale.price for sale in sales})
    return found


def report_of(engine: Engine, config: Config, **options: Any) -> dict[str, Any]:
    accumulator = PerformanceAccumulator(load_model().manifest, config, keep_points=True)
    for read, sales in matched_outcomes(engine, config, model_version=__version__, **options):
        accumulator.add(read, sales)
    return accumulator.report(model_version=__version__)


def test_a_request_reference_matches_its_row_and_a_reused_request_id_the_latest(
    engine: Engine, config: Config, train_data: pd.DataFrame
) -> None:
    houses = _houses(train_data.drop(columns="SalePrice").head(3))
    noon = datetime(2026, 9, 1, 12, tzinfo=UTC)
    first = log_request(engine, houses, request_id="r1", logged_at=noon)
    again = log_request(engine, houses[::-1], request_id="r1", logged_at=noon + DAY)
    other_version = log_request(
        engine, houses, request_id="r2", logged_at=noon, version="0.0.1", scale=2
    )
    add_outcomes(
        engine,
        [
            {"request_id": "r1", "row": 0, "sale_price": 200_000},
            {"request_id": "r1", "row": 7, "sale_price": 200_000},  # no such row
            {"request_id": "r2", "row": 0, "sale_price": 200_000},  # another version's
        ],
    )
    assert matched(engine, config) == {"request:r1:0": again[0]}
    assert again[0] != first[0] and other_version[0] is not None


def test_a_key_matches_the_latest_priced_before_the_sale_else_the_latest_after(
    engine: Engine, config: Config, train_data: pd.DataFrame
) -> None:
    houses = _houses(train_data.drop(columns="SalePrice").head(2))
    # house 0 (Id 1) priced 40 and 10 days before its sale and 5 days after;
    # house 1 (Id 2) only after its sale; a refused copy of house 0 is never a candidate.
    start = datetime.combine(SOLD, datetime.min.time(), UTC)
    early = log_request(engine, houses[:1], request_id="a", logged_at=start - 40 * DAY, scale=1.1)
    late = log_request(engine, houses[:1], request_id="b", logged_at=start - 10 * DAY, scale=1.2)
    log_request(engine, houses[:1], request_id="c", logged_at=start + 5 * DAY, scale=1.3)
    first_after = log_request(engine, houses[1:], request_id="d", logged_at=start + 2 * DAY)
    log_request(engine, houses[1:], request_id="e", logged_at=start + 9 * DAY, scale=1.4)
    refused = {**houses[0], "GrLivArea": -1}
    assert log_request(engine, [refused], request_id="f", logged_at=start - DAY) == [None]
    add_outcomes(
        engine,
        [
            {"house_key": "1", "sale_price": 200_000},
            {"house_key": "2", "sale_price": 180_000},
            {"house_key": "99", "sale_price": 180_000},  # never priced
        ],
    )
    found = matched(engine, config)
    assert found["key:1"] == late[0] != early[0]
    # none before: the latest after (Id 2 was priced on days +2 and +9)
    assert first_after[0] is not None
    assert found["key:2"] == pytest.approx(first_after[0] * 1.4)
    assert "key:99" not in found
    report = report_of(engine, config)
    assert (report["outcomes"], report["matched"], report["unmatched"]) == (3, 2, 1)


def test_the_figures_are_the_log_errors_of_the_matched_sales(
    engine: Engine, config: Config, train_data: pd.DataFrame
) -> None:
    frame = train_data.head(150)
    houses = _houses(frame.drop(columns="SalePrice"))
    prices = np.asarray(
        log_request(engine, houses, request_id="big", logged_at=datetime(2026, 9, 1, tzinfo=UTC))
    )
    sold = frame["SalePrice"].to_numpy(dtype="float64")
    add_outcomes(
        engine,
        [{"request_id": "big", "row": i, "sale_price": float(p)} for i, p in enumerate(sold)],
    )
    report = report_of(engine, config, chunk_rows=40)  # chunks smaller than the sales
    errors = np.log(prices) - np.log(sold)
    overall = report["overall"]
    assert overall["outcomes"] == 150
    assert overall["rmsle"] == pytest.approx(math.sqrt(np.mean(errors**2)), rel=1e-12)
    assert overall["bias"] == pytest.approx(np.mean(errors), rel=1e-9)
    assert overall["mae"] == pytest.approx(np.mean(np.abs(prices - sold)), rel=1e-12)
    result = make_prediction(input_data=houses)
    for level in overall["coverage"]:
        bounds = np.array(
            [
                [r["low"], r["high"]]
                for ranges in result["intervals"] or ()
                for r in ranges or ()
                if r["coverage"] == level["coverage"]
            ]
        )
        inside = (bounds[:, 0] <= sold) & (sold <= bounds[:, 1])
        assert level["realised"] == pytest.approx(inside.mean())
        assert level["outcomes"] == 150
    assert [level["coverage"] for level in overall["coverage"]] == [0.8, 0.9]
    cv = load_model().manifest["metrics"]["cross_validation"]
    assert overall["cross_validation"]["rmsle"] == cv["rmsle_mean"]
    # Slices: each label's sales add up to all of them, as training labels its houses.
    assert set(report["slices"]) == {*config.model.slice_vars, DECADE_SLICE, PREDICTED_PRICE_SLICE}
    for rows in report["slices"].values():
        assert sum(row["outcomes"] for row in rows) == 150
    names = {row["label"] for row in report["slices"]["Neighborhood"]}
    assert names == set(frame["Neighborhood"])
    decades = {row["label"] for row in report["slices"][DECADE_SLICE]}
    assert decades == {f"{y // 10 * 10}s" for y in frame["YearBuilt"]}
    assert {row["label"] for row in report["slices"][PREDICTED_PRICE_SLICE]} <= set(
        config.model.price_band_labels
    )
    collgcr = next(r for r in report["slices"]["Neighborhood"] if r["label"] == "CollgCr")
    manifest_row = next(
        r for r in load_model().manifest["slices"]["by"]["Neighborhood"] if r["label"] == "CollgCr"
    )
    assert collgcr["cross_validation"]["rmsle"] == manifest_row["rmsle"]
    # The sales missed most, largest first.
    largest = np.argsort(-np.abs(errors), kind="stable")[:10]
    assert [sale["log_error"] for sale in report["largest_errors"]] == pytest.approx(
        errors[largest].tolist(), rel=1e-12
    )
    assert report["largest_errors"][0]["reference"] == f"request:big:{largest[0]}"
    # Judged: 150 sales >= min_outcomes (100) overall; the small slices are not.
    assert report["verdict"] == CONSISTENT
    assert collgcr["outcomes"] < 100 and collgcr["verdict"] == TOO_FEW


def test_verdicts_too_few_then_worse_then_ranges_below_nominal(
    engine: Engine, config: Config, train_data: pd.DataFrame
) -> None:
    frame = train_data.iloc[200:320]
    houses = _houses(frame.drop(columns="SalePrice"))
    sold = frame["SalePrice"].to_numpy(dtype="float64")
    moment = datetime(2026, 9, 1, tzinfo=UTC)
    # Prices 25 % too high: RMSLE about ln 1.25 = 0.22, above 0.106 x 1.2; and
    # most sale prices fall below their ranges.
    log_request(engine, houses, request_id="high", logged_at=moment, scale=1.25)
    add_outcomes(
        engine,
        [
            {"request_id": "high", "row": i, "sale_price": float(p)}
            for i, p in enumerate(sold[:99])
        ],
    )
    few = report_of(engine, config)
    assert few["matched"] == 99 and not few["enough_outcomes"]
    assert few["verdict"] == TOO_FEW
    assert all(level["verdict"] == TOO_FEW for level in few["overall"]["coverage"])
    add_outcomes(
        engine,
        [
            {"request_id": "high", "row": i, "sale_price": float(sold[i])}
            for i in range(99, len(sold))
        ],
    )
    worse = report_of(engine, config)
    assert worse["enough_outcomes"] and worse["verdict"] == WORSE
    unscaled = np.asarray(make_prediction(input_data=houses)["predictions"], dtype="float64")
    assert worse["overall"]["bias"] == pytest.approx(
        math.log(1.25) + float(np.mean(np.log(unscaled) - np.log(sold))), rel=1e-9
    )
    assert {level["verdict"] for level in worse["overall"]["coverage"]} == {BELOW_NOMINAL}
    # --since: sales before the day are left out.
    assert report_of(engine, config, since=SOLD + DAY)["outcomes"] == 0


def test_the_command_prints_the_table_writes_json_and_a_png(
    tmp_path: Path, sqlite_engine: Engine, train_data: pd.DataFrame
) -> None:
    engine = sqlite_engine
    frame = train_data.iloc[400:520]
    houses = _houses(frame.drop(columns="SalePrice"))
    log_request(engine, houses, request_id="cli", logged_at=datetime.now(UTC) - 30 * DAY)
    recent = (datetime.now(UTC) - 10 * DAY).date()
    add_outcomes(
        engine,
        [
            {"request_id": "cli", "row": i, "sale_price": float(p), "sale_date": recent}
            for i, p in enumerate(frame["SalePrice"])
        ]
        + [{"house_key": "1", "sale_price": 1.0, "sale_date": date(2020, 1, 1)}],  # before --since
    )
    plot, summary = tmp_path / "performance.png", tmp_path / "performance.json"
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "performance", "--database-url",
         str(engine.url.database), "--since", "90d", "--plot", str(plot), "--json",
         str(summary), "--fail-on-worse"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["sales", "RMSLE", "CV", "bias"]
    assert lines[1].startswith("overall") and lines[1].endswith(CONSISTENT)
    assert "by Neighborhood" in done.stdout and "by predicted price band" in done.stdout
    report = json.loads(summary.read_text())
    assert (report["outcomes"], report["matched"]) == (120, 120)
    assert report["verdict"] == CONSISTENT
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000
