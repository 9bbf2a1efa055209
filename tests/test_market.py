"""Retraining on the market: sold houses out of the prediction log
(``monitoring/market_export.py``, ``regression-model market-data``) and into
the training data of the next version (``training/market.py``, the config's
``market_data_files``).

A SQLite log is filled as the API fills it (houses priced by the model, their
model fields with their Id), outcomes inserted into the ``outcomes`` table
directly; the export is read back against the houses it came from, then
trained on with a listinger config (one repeat of the cross-validation).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from regression_model import __version__, load_model, make_prediction, model_fields
from regression_model.cli import main
from regression_model.config.core import CONFIG_ENV_VAR, Config, load_config
from regression_model.data import dataset_path, load_dataset
from regression_model.monitoring.log_store import create_log_engine, migrate, outcomes, predictions
from regression_model.monitoring.market_export import export_market_data, training_columns
from regression_model.training.market import add_market_data
from regression_model.training.train import TrainingDataError, TrainingResult, run_training

LOGGED = datetime(2026, 9, 1, tzinfo=UTC)
SOLD = date(2026, 10, 1)


def _houses(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # type: ignore[return-value]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_log_engine(str(tmp_path / "log.sqlite3"))
    migrate(engine)
    yield engine
    engine.dispose()


def log_request(
    engine: Engine,
    houses: list[dict[str, Any]],
    request_id: str,
    *,
    logged_at: datetime = LOGGED,
    version: str = __version__,
) -> None:
    """Log houses as one request, as the API does (its model fields and Id)."""
    prices = make_prediction(input_data=houses)["predictions"]
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
            "price_ranges": None,
        }
        for row, (house, price) in enumerate(zip(houses, prices, strict=True))
    ]
    with engine.begin() as connection:
        connection.execute(predictions.insert(), rows)


def add_outcome(
    engine: Engine, price: float, *, request: tuple[str, int] | None = None,
    key: str | None = None, sold: date = SOLD,
) -> None:  # fmt: skip
    reference = f"request:{request[0]}:{request[1]}" if request else f"key:{key}"
    with engine.begin() as connection:
        connection.execute(
            outcomes.insert(),
            {
                "reference": reference,
                "request_id": request[0] if request else None,
                "row": request[1] if request else None,
                "house_key": key,
                "sale_price": price,
                "sale_date": sold,
                "received_at": datetime.now(UTC),
            },
        )


def test_the_export_is_the_logged_houses_with_their_sale_prices(
    engine: Engine, tmp_path: Path, config: Config, train_data: pd.DataFrame
) -> None:
    houses = train_data.head(8).drop(columns=[config.model.target])
    log_request(engine, _houses(houses), "r1")
    # The same house (row 2) priced again by another version, later and
    # before its sale: its inputs are the same, the row is one.
    log_request(engine, _houses(houses.iloc[[2]]), "r2", logged_at=LOGGED + timedelta(days=3),
                version="0.2.0")  # fmt: skip
    no_id = _houses(train_data.iloc[[20]].drop(columns=["Id", config.model.target]))
    log_request(engine, no_id, "r3")
    ids = houses["Id"].tolist()
    add_outcome(engine, 200_000.0, request=("r1", 0))
    add_outcome(engine, 150_500.5, request=("r1", 1))
    add_outcome(engine, 123_456.0, key=str(ids[2]))
    add_outcome(engine, 99_000.0, key=str(ids[4]), sold=SOLD - timedelta(days=30))
    add_outcome(engine, 101_000.0, request=("r1", 4))  # the same house, sold again later
    add_outcome(engine, 300_000.0, request=("r3", 0))  # logged without an Id
    add_outcome(engine, 250_000.0, request=("no-such-request", 0))  # unmatched

    summary = export_market_data(engine, config, tmp_path / "sold.csv")
    assert (summary.outcomes, summary.unmatched, summary.without_id) == (7, 1, 1)
    assert (summary.superseded, summary.rows) == (1, 4)

    sold = pd.read_csv(tmp_path / "sold.csv")
    assert list(sold.columns) == training_columns(config) == list(train_data.columns)
    assert sold["Id"].tolist() == [ids[0], ids[1], ids[2], ids[4]]
    assert sold[config.model.target].tolist() == [200_000.0, 150_500.5, 123_456.0, 101_000.0]
    # Every model field as train.csv has it, under Kaggle's names.
    original = train_data.set_index("Id").loc[sold["Id"]].reset_index()
    fields = [c for c in sold.columns if sold[c].notna().any() and c != config.model.target]
    assert "1stFlrSF" in fields and len(fields) > 60
    pd.testing.assert_frame_equal(sold[fields], original[fields], check_dtype=False)
    # Read back as training data: it passes the schema as it is.
    market = add_market_data(train_data, _with_market_files(config, tmp_path / "sold.csv"))
    assert market.files[0]["rows"] == 4


def test_the_command_writes_the_file(engine: Engine, tmp_path: Path, config: Config,
                                     train_data: pd.DataFrame,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    log_request(engine, _houses(train_data.head(3).drop(columns=[config.model.target])), "r1")
    add_outcome(engine, 180_000.0, request=("r1", 2))
    output = tmp_path / "sold.csv"
    url = str(engine.url.database)
    assert main(["market-data", "--database-url", url, "--output", str(output)]) == 0
    assert "wrote 1 sold house(s)" in capsys.readouterr().out
    assert pd.read_csv(output)[config.model.target].tolist() == [180_000.0]
    missing = tmp_path / "no-such-dir" / "sold.csv"
    assert main(["market-data", "--database-url", url, "--output", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _with_market_files(config: Config, *paths: Path) -> Config:
    app = config.app.model_copy(update={"market_data_files": tuple(str(p) for p in paths)})
    return config.model_copy(update={"app": app})


def test_one_row_per_house_the_newest_data_wins(
    tmp_path: Path, config: Config, train_data: pd.DataFrame
) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    train_data.iloc[[0, 1]].assign(SalePrice=[1.0e5, 1.1e5]).to_csv(first, index=False)
    sold_again = train_data.iloc[[1]].assign(SalePrice=[1.2e5])
    new_house = train_data.iloc[[2]].assign(Id=[5000], SalePrice=[1.3e5])
    pd.concat([sold_again, new_house]).to_csv(second, index=False)

    market = add_market_data(train_data, _with_market_files(config, first, second))
    rows = market.rows.set_index("Id")
    assert len(rows) == len(train_data) + 1 and rows.index.is_unique
    first_id, second_id = train_data["Id"].iloc[0], train_data["Id"].iloc[1]
    assert rows.loc[first_id, "SalePrice"] == 1.0e5  # train.csv's row replaced by the file's
    assert rows.loc[second_id, "SalePrice"] == 1.2e5  # the later file's sale wins
    assert rows.loc[5000, "SalePrice"] == 1.3e5
    assert [f["replaced"] for f in market.files] == [2, 1]
    assert [f["rows"] for f in market.files] == [2, 2]
    # Without market data, train.csv is returned untouched (the same object).
    assert add_market_data(train_data, config).rows is train_data


def _listing_config(tmp_path: Path, *market_files: Path) -> Config:
    """The packaged config, with ``market_files`` as its market_data_files."""
    text = load_config().source.read_text()
    assert "\ntest_data_file: test.csv\n" in text
    # After the data files, whether or not the packaged config lists the key.
    text = text.replace("\nmarket_data_files:\n", "\n")
    listed = "".join(f"  - {path}\n" for path in market_files)
    if market_files:
        text = text.replace(
            "\ntest_data_file: test.csv\n",
            f"\ntest_data_file: test.csv\nmarket_data_files:\n{listed}",
        )
    path = tmp_path / f"listing-{len(market_files)}.yml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.slow
def test_training_on_sold_houses_records_them_and_moves_the_model(
    tmp_path: Path, config: Config, test_data: pd.DataFrame, engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Houses of test.csv (not in train.csv) priced, sold 30 % above their
    price, exported and trained on: the manifest records the file, and the
    model prices them higher than the same training without them."""
    houses = test_data.head(40)
    log_request(engine, _houses(houses), "r1")
    prices = make_prediction(input_data=_houses(houses))["predictions"]
    sold = [(row, price) for row, price in enumerate(prices) if price is not None]
    for row, price in sold:
        add_outcome(engine, round(price * 1.3, 2), request=("r1", row))
    market_file = tmp_path / "sold.csv"
    assert export_market_data(engine, config, market_file).rows == len(sold)

    # Training is deterministic: the packaged artifact is this same training
    # without the file (one training fewer).
    listing = _listing_config(tmp_path, market_file)
    trained = run_training(listing, artifact_dir=tmp_path / "with")
    packaged = load_model().manifest
    data = trained.manifest["training_data"]
    assert data["market_data"] == [
        {
            "file": "sold.csv",
            "sha256": hashlib.sha256(market_file.read_bytes()).hexdigest(),
            "rows": len(sold),
            "replaced": 0,
        }
    ]
    assert packaged["training_data"]["market_data"] == []
    before = packaged["training_data"]
    assert data["rows_used"] + data["rows_excluded"] == (
        before["rows_used"] + before["rows_excluded"] + len(sold)
    )
    assert trained.manifest["quality_gate"]["passed"] is True

    sold_houses = _houses(pd.read_csv(market_file).drop(columns=[config.model.target]))
    packaged_prices = _priced(make_prediction(input_data=sold_houses)["predictions"])
    retrained_prices = _prices(trained, listing, sold_houses, monkeypatch)
    moved = [
        math.log(new / old) for new, old in zip(retrained_prices, packaged_prices, strict=True)
    ]
    assert np.mean(moved) > 0.01, np.mean(moved)


def _prices(
    trained: TrainingResult, config: Config, houses: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> list[float]:  # fmt: skip
    """The houses priced by a trained artifact, verified against its config."""
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config.source))
    model = load_model(directory=trained.paths.pickle.parent)
    return _priced(model.predict(houses)["predictions"])


def _priced(prices: list[float | None]) -> list[float]:
    """Prices of houses that must all be priced (they were, to be sold)."""
    assert None not in prices
    return [float(price) for price in prices if price is not None]


def test_a_bad_row_stops_training_naming_the_file_row_and_field(
    tmp_path: Path, config: Config, train_data: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bad = train_data.head(6).copy()
    bad.loc[2, "OverallQual"] = 11
    bad.loc[4, "SalePrice"] = -5
    bad.loc[5, "Id"] = None
    bad["GrLivAera"] = 1  # a misspelt column
    bad_file = tmp_path / "bad.csv"
    bad.to_csv(bad_file, index=False)
    with pytest.raises(TrainingDataError) as failure:
        run_training(_listing_config(tmp_path, bad_file), artifact_dir=tmp_path / "out")
    message = str(failure.value)
    assert message.startswith("1 problem(s) in market data file ")
    assert "columns train.csv does not have: GrLivAera" in message
    assert not (tmp_path / "out").exists()

    bad.drop(columns=["GrLivAera"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(TrainingDataError) as failure:
        run_training(_listing_config(tmp_path, bad_file), artifact_dir=tmp_path / "out")
    message = str(failure.value)
    assert "3 problem(s) in market data file" in message and "bad.csv" in message
    assert "row 2 OverallQual: 11 is out of range" in message
    assert "row 4 SalePrice: -5 is not a price: must be above 0" in message
    assert "row 5 Id: missing: every sold house needs its Id" in message
    assert not (tmp_path / "out").exists()

    # The command says so and exits 1.
    listing = _listing_config(tmp_path, tmp_path / "bad.csv")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(listing.source))
    assert main(["train"]) == 1
    assert "row 2 OverallQual: 11 is out of range" in capsys.readouterr().err


def test_the_packaged_config_adds_no_market_data(config: Config) -> None:
    assert config.app.market_data_files == ()
    assert load_dataset(config.app.training_data_file).shape[0] == 1460
    assert dataset_path(config.app.training_data_file).exists()
