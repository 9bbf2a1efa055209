"""Drift reports: logged houses against the training profile in the manifest.

A resample of test.csv (houses like the training ones) is not flagged; all
areas 50 % larger flag the area features and the prices; a new
neighbourhood flags ``Neighborhood``. The statistics agree with SciPy's, the
report does not depend on how the houses are chunked, and the command line
reads a SQLite log, prints the table, writes JSON and a PNG.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regression_model import __version__, load_model, make_prediction
from regression_model.config.core import Config
from regression_model.monitoring.drift import DriftAccumulator, kolmogorov_sf, ks_p_value, psi
from regression_model.monitoring.log_store import (
    create_log_engine,
    metadata,
    migrate,
    predictions,
)
from regression_model.monitoring.since import parse_since

AREAS = ("LotArea", "GrLivArea", "TotalBsmtSF", "1stFlrSF", "2ndFlrSF")
#: The areas' model names, as the report names features.
AREA_FEATURES = {"LotArea", "GrLivArea", "TotalBsmtSF", "FirstFlrSF", "SecondFlrSF"}


def _houses(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def resample(test_data: pd.DataFrame) -> list[dict[str, Any]]:
    """2000 houses drawn (with replacement) from test.csv."""
    rng = np.random.default_rng(7)
    houses = _houses(test_data)
    return [houses[i] for i in rng.integers(0, len(houses), 2000)]


def _report(houses: list[dict[str, Any]], config: Config, chunk: int = 10**9) -> dict[str, Any]:
    accumulator = DriftAccumulator(load_model().manifest, config)
    for start in range(0, len(houses), chunk):
        part = houses[start : start + chunk]
        accumulator.add(part, make_prediction(input_data=part)["predictions"])
    return accumulator.report()


def test_psi_and_ks_helpers_agree_with_scipy() -> None:
    assert psi(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0
    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) > 0.5
    for x in (0.3, 0.5, 1.0, 1.36, 2.0, 3.0):
        assert kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), abs=1e-12)
    assert kolmogorov_sf(0.0) == 1.0
    assert ks_p_value(0.0, 100, 100) == 1.0
    assert ks_p_value(0.5, 1000, 1000) < 1e-10


def test_an_unshifted_resample_of_test_csv_is_not_flagged(
    resample: list[dict[str, Any]], config: Config
) -> None:
    report = _report(resample, config)
    assert report["houses"] + report["rejected"] == 2000
    assert report["enough_houses"]
    assert report["drifting"] == [], [
        (f["name"], f["psi"], f["ks_statistic"]) for f in report["features"] if f["drifting"]
    ]
    assert not report["prices"]["drifting"]
    assert max(f["psi"] for f in report["features"]) < config.drift.psi / 2


def test_areas_fifty_percent_larger_flag_the_areas_and_the_prices(
    resample: list[dict[str, Any]], config: Config
) -> None:
    shifted = [
        {k: v * 1.5 if k in AREAS and isinstance(v, int | float) else v for k, v in h.items()}
        for h in resample
    ]
    report = _report(shifted, config)
    assert set(report["drifting"]) == AREA_FEATURES
    by_name = {f["name"]: f for f in report["features"]}
    for name in AREA_FEATURES:
        assert set(by_name[name]["reasons"]) == {"psi", "ks"}, by_name[name]
    assert report["prices"]["drifting"]
    assert report["prices"]["shift"] > config.drift.price_shift


def test_a_new_neighbourhood_is_flagged_as_unseen_labels(
    resample: list[dict[str, Any]], config: Config
) -> None:
    changed = [
        {**house, "Neighborhood": "Atlantis"} if i % 10 == 0 else house
        for i, house in enumerate(resample)
    ]
    report = _report(changed, config)
    assert report["drifting"] == ["Neighborhood"]
    neighbourhood = next(f for f in report["features"] if f["name"] == "Neighborhood")
    assert neighbourhood["unseen_share"] == pytest.approx(0.1, abs=0.005)
    assert neighbourhood["unseen_labels"] == ["Atlantis"]
    assert neighbourhood["reasons"] == ["psi", "unseen"]


def test_ks_statistic_at_the_recorded_points_is_close_to_scipy_on_the_full_samples(
    resample: list[dict[str, Any]], config: Config, train_data: pd.DataFrame
) -> None:
    """The profile keeps the training distribution at its percentiles: the
    statistic taken there is a lower bound of the exact two-sample one, and
    close to it."""
    report = _report(resample, config)
    logged = pd.DataFrame(resample)
    training = train_data[train_data["GrLivArea"] <= 4500]  # the training exclusions
    for name in ("GrLivArea", "LotArea", "YearBuilt", "OverallQual"):
        exact = stats.ks_2samp(training[name].dropna(), logged[name].dropna()).statistic
        ours = next(f for f in report["features"] if f["name"] == name)["ks_statistic"]
        assert ours <= exact + 1e-12
        assert exact - ours < 0.02, (name, ours, exact)


def test_chunks_give_the_same_report(resample: list[dict[str, Any]], config: Config) -> None:
    whole = _report(resample, config)
    chunked = _report(resample, config, chunk=333)
    assert json.dumps(chunked, sort_keys=True) == json.dumps(whole, sort_keys=True)


def test_rejected_houses_are_counted_not_compared(config: Config) -> None:
    houses: list[Any] = [{"GrLivArea": 1500}, {"OverallQual": 11}, 42]
    accumulator = DriftAccumulator(load_model().manifest, config)
    accumulator.add(houses, [make_prediction(input_data=houses[0])["predictions"][0], None, None])
    report = accumulator.report()
    assert (report["houses"], report["rejected"]) == (1, 2)
    assert not report["enough_houses"]
    assert report["drifting"] == []


def test_a_manifest_without_distributions_is_refused(config: Config) -> None:
    manifest = dict(load_model().manifest)
    manifest["features"] = [
        {k: v for k, v in f.items() if k != "ecdf"} for f in manifest["features"]
    ]
    with pytest.raises(ValueError, match="retrain"):
        DriftAccumulator(manifest, config)


def test_since_accepts_iso_times_and_spans() -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-11-01T00:00:00", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T02:00:00+02:00", now) == datetime(2026, 11, 1, tzinfo=UTC)


def test_the_migrations_create_exactly_the_table_the_code_uses(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_log_engine(str(tmp_path / "log.sqlite3"))
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()


def _fill_log(path: Path, houses: list[dict[str, Any]], logged_at: datetime) -> None:
    engine = create_log_engine(str(path))
    migrate(engine)
    prices = make_prediction(input_data=houses)["predictions"]
    rows = [
        {
            "log_id": f"{logged_at:%Y%m%d%H%M}{i // 100:020d}",
            "row": i % 100,
            "request_id": f"request-{i // 100}",
            "logged_at": logged_at,
            "model_version": __version__,
            "inputs": house,
            "price": price,
            "errors": None if price is not None else [{"field": "*", "message": "rejected"}],
        }
        for i, (house, price) in enumerate(zip(houses, prices, strict=True))
    ]
    with engine.begin() as connection:
        connection.execute(predictions.insert(), rows)
    engine.dispose()


def test_the_command_reads_the_log_prints_the_table_and_writes_json_and_a_png(
    tmp_path: Path, resample: list[dict[str, Any]]
) -> None:
    log = tmp_path / "log.sqlite3"
    now = datetime.now(UTC)
    old = [{**h, "GrLivArea": h["GrLivArea"] * 3} for h in resample[:500]]
    _fill_log(log, old, now - timedelta(days=3))  # drifted, but before --since
    new = [{**h, "Neighborhood": "Atlantis"} if i % 4 == 0 else h for i, h in enumerate(resample)]
    _fill_log(log, new, now)
    plot, summary = tmp_path / "drift.png", tmp_path / "drift.json"
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "drift", "--database-url", str(log),
         "--since", "24h", "--plot", str(plot), "--json", str(summary), "--fail-on-drift"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # --fail-on-drift: something drifts
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["feature", "type", "missing", "tr/log"]
    assert lines[1].split()[0] == "Neighborhood" and lines[1].endswith("psi, unseen")
    assert "drifting features: Neighborhood" in done.stdout
    report = json.loads(summary.read_text())
    assert report["drifting"] == ["Neighborhood"]  # the old, drifted houses are not counted
    assert report["houses"] == 2000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 20_000


def test_the_command_says_where_the_log_must_be(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items()}
    env.pop("DATABASE_URL", None)
    env.pop("PREDICTION_LOG_PATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "drift"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--database-url" in done.stderr


def test_log_migrate_creates_the_schema(tmp_path: Path) -> None:
    log = tmp_path / "new" / "log.sqlite3"
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "log-migrate", "--database-url", str(log)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    engine = create_log_engine(str(log))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
            ("0004",)
        ]
    engine.dispose()
