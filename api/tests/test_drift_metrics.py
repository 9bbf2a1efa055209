"""Drift in ``/metrics``: the gauges say what ``GET /api/v1/drift`` says, only
when the prediction log is on, and a scrape never waits for a drift report
nor fails because one cannot be computed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from api.app.operations.drift_reports import DriftReports
from api.tests.conftest import make_client
from api.tests.helpers import running_server, wait_until_ready
from api.tests.test_metrics import scrape, value
from regression_model.monitoring.log_store import predictions

DRIFT_GAUGES = {
    "drift_report_timestamp_seconds",
    "drift_houses_compared",
    "drift_enough_houses",
    "drift_features_drifting",
    "drift_feature_psi",
    "drift_price_median_shift_ratio",
    "drift_price_psi",
}


def drift_samples(samples: dict[Any, float]) -> dict[Any, float]:
    return {key: v for key, v in samples.items() if key[0].startswith("drift_")}


def scrape_until_drift(client: Any, timeout: float = 30.0) -> dict[Any, float]:
    """Scrape until the background refresh has produced drift gauges."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(client)
        if drift_samples(samples):
            return samples
        assert time.monotonic() < deadline, f"no drift gauges after {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def logged_client(tmp_path: Path) -> Iterator[TestClient]:
    """An app logging to its own SQLite file."""
    with make_client(
        prediction_log_path=tmp_path / "log.sqlite3", prediction_log_flush_seconds=0.05
    ) as client:
        wait_until_ready(client)
        yield client


def log_houses(client: TestClient, houses: list[dict[str, Any]]) -> None:
    """Price the houses, then wait until the writer has stored them."""
    assert client.post("/api/v1/predict", json={"inputs": houses}).status_code == 200
    log = client.app.state.prediction_log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        with log.reader().connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(predictions))
        if stored >= len(houses):
            return
        assert time.monotonic() < deadline, "houses not logged within 10 s"
        time.sleep(0.05)


def test_gauges_are_the_drift_report(tmp_path: Path, test_houses: list[dict[str, Any]]) -> None:
    # A zero cache age: each /drift computes a report, so log_houses can wait for
    # the writer, and the first scrape after it starts a refresh of its own.
    with make_client(
        prediction_log_path=tmp_path / "log.sqlite3",
        prediction_log_flush_seconds=0.05,
        drift_cache_seconds=0,
    ) as client:
        wait_until_ready(client)
        log_houses(client, test_houses[:250])
        report = client.get("/api/v1/drift").json()
        samples = scrape_until_drift(client)
    assert {key[0] for key in drift_samples(samples)} == DRIFT_GAUGES
    assert value(samples, "drift_houses_compared") == report["houses"] == 250
    assert value(samples, "drift_enough_houses") == 1  # config.yml: min_records 200
    assert value(samples, "drift_features_drifting") == len(report["drifting"])
    psi = {dict(k[1])["feature"]: v for k, v in samples.items() if k[0] == "drift_feature_psi"}
    # one series per feature, labelled with the name clients send (1stFlrSF, not FirstFlrSF)
    assert psi == pytest.approx({f["input_field"]: f["psi"] for f in report["features"]})
    assert "1stFlrSF" in psi and len(psi) == len(report["features"])
    assert value(samples, "drift_price_median_shift_ratio") == pytest.approx(
        report["prices"]["shift"]
    )
    assert value(samples, "drift_price_psi") == pytest.approx(report["prices"]["psi"])
    assert abs(value(samples, "drift_report_timestamp_seconds") - time.time()) < 60


def test_a_report_is_shared_with_the_drift_route_and_reused(
    logged_client: TestClient, test_houses: list[dict[str, Any]], monkeypatch: Any
) -> None:
    """Within DRIFT_CACHE_SECONDS (30 s by default) a scrape shows the report
    that GET /drift computed, and computes nothing."""
    log_houses(logged_client, test_houses[:3])
    computed: list[object] = []
    original = DriftReports._compute

    def counting(self: DriftReports, *args: Any) -> dict[str, Any]:
        computed.append(args)
        return original(self, *args)

    monkeypatch.setattr(DriftReports, "_compute", counting)
    report = logged_client.get("/api/v1/drift").json()
    for _ in range(5):
        samples = scrape(logged_client)
        assert value(samples, "drift_houses_compared") == report["houses"] == 3
        assert value(samples, "drift_enough_houses") == 0
    assert len(computed) == 1  # the route's; the scrapes computed nothing


def test_a_drift_report_before_anything_was_logged_is_empty_not_an_error(
    logged_client: TestClient,
) -> None:
    """Nothing priced yet, so the writer has not created the table: the drift
    route migrates the log itself and reports no houses (it used to be a 503)."""
    response = logged_client.get("/api/v1/drift")
    assert response.status_code == 200, response.text
    assert response.json()["houses"] == 0 and response.json()["enough_houses"] is False


def test_no_drift_gauges_without_the_prediction_log(client: TestClient) -> None:
    assert client.app.state.drift_reports is None  # type: ignore[attr-defined]
    assert drift_samples(scrape(client)) == {}


def test_a_scrape_never_waits_for_a_report(
    tmp_path: Path, test_houses: list[dict[str, Any]], monkeypatch: Any
) -> None:
    """A report that takes long is computed beside the scrapes, which answer at
    once (without drift gauges until it is there)."""
    release = threading.Event()
    original = DriftReports._compute

    def slow(self: DriftReports, *args: Any) -> dict[str, Any]:
        assert release.wait(30)
        return original(self, *args)

    monkeypatch.setattr(DriftReports, "_compute", slow)
    with make_client(prediction_log_path=tmp_path / "log.sqlite3") as client:
        wait_until_ready(client)
        assert client.post("/api/v1/predict", json={"inputs": test_houses[:2]}).status_code == 200
        for _ in range(3):
            started = time.monotonic()
            samples = scrape(client)
            assert time.monotonic() - started < 2
            assert drift_samples(samples) == {}
            assert value(samples, "predict_houses_total", outcome="priced") > 0
        release.set()
        assert value(scrape_until_drift(client), "drift_houses_compared") >= 0


def test_a_failing_report_keeps_the_last_one_and_the_scrape_answers(
    tmp_path: Path, test_houses: list[dict[str, Any]], monkeypatch: Any
) -> None:
    with make_client(
        prediction_log_path=tmp_path / "log.sqlite3",
        prediction_log_flush_seconds=0.05,
        drift_cache_seconds=0.2,
    ) as client:
        wait_until_ready(client)
        log_houses(client, test_houses[:4])
        first = scrape_until_drift(client)
        stamp = value(first, "drift_report_timestamp_seconds")
        attempts: list[object] = []

        def unreadable(self: DriftReports, *args: Any) -> dict[str, Any]:
            attempts.append(args)
            raise OperationalError("SELECT", {}, Exception("database is locked"))

        monkeypatch.setattr(DriftReports, "_compute", unreadable)
        deadline = time.monotonic() + 10
        while len(attempts) < 3:  # refreshes fail, again and again
            samples = scrape(client)
            assert value(samples, "drift_report_timestamp_seconds") == stamp
            assert value(samples, "drift_houses_compared") == 4
            assert time.monotonic() < deadline, "no refresh was attempted"
            time.sleep(0.25)
        assert client.get("/api/v1/drift").status_code == 503


def test_no_drift_gauges_before_the_model_is_loaded(tmp_path: Path) -> None:
    """Without a model there is nothing to compare with: no refresh starts."""
    reports = DriftReports(
        make_client(prediction_log_path=tmp_path / "log.sqlite3").app.state.prediction_log,  # type: ignore[attr-defined]
        window=10,
        max_age_seconds=0,
    )
    # Other tests' apps may still have theirs (a feeding thread stops after a
    # minute idle): none may have been added.
    before = {t for t in threading.enumerate() if t.name == "drift-report"}
    assert reports.latest(None) is None
    assert {t for t in threading.enumerate() if t.name == "drift-report"} <= before
    assert reports._thread is None


@pytest.mark.server
@pytest.mark.timeout(180)
def test_two_workers_export_one_series_per_gauge(
    tmp_path: Path, test_houses: list[dict[str, Any]]
) -> None:
    """In multi-process mode each worker exports its own latest report (computed
    from the shared log), with no pid label: whichever worker answers, one
    series per gauge and feature, all with the same figures."""
    env = {
        "PREDICTION_LOG_PATH": str(tmp_path / "log.sqlite3"),
        "PREDICTION_LOG_FLUSH_SECONDS": "0.05",
        "DRIFT_CACHE_SECONDS": "0.5",
    }
    with running_server(tmp_path / "server.log", workers=2, env=env) as server:
        response = httpx.post(
            f"{server.url}/api/v1/predict", json={"inputs": test_houses[:5]}, timeout=30
        )
        assert response.status_code == 200
        seen: dict[str, dict[Any, float]] = {}
        deadline = time.monotonic() + 60
        while len(seen) < 2:
            assert time.monotonic() < deadline, f"drift gauges from {len(seen)} worker(s) only"
            with httpx.Client(base_url=server.url, timeout=30) as scraper:  # a new connection
                response = scraper.get("/metrics")
                samples = drift_samples(scrape(scraper))
            if value(samples, "drift_houses_compared") == 5:
                seen[response.headers["X-Worker-PID"]] = samples
            time.sleep(0.1)
        raw = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert raw.count("\ndrift_houses_compared ") == 1
    assert 'drift_feature_psi{feature="1stFlrSF"}' in raw
    first, second = seen.values()
    assert first.keys() == second.keys()
    stamp = "drift_report_timestamp_seconds"
    assert {k: v for k, v in first.items() if k[0] != stamp} == pytest.approx(
        {k: v for k, v in second.items() if k[0] != stamp}
    )
