"""``/metrics``: Prometheus text that counts what the service did.

In-process (one registry shared by the session's apps, so counts are read
as differences), then a real server with two workers in multi-process mode:
a known number of requests gives the same counts in ``/metrics``, whichever
worker answers the scrape.
"""

from __future__ import annotations

import re
import time
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from api.app import metrics
from api.tests.conftest import make_client
from api.tests.helpers import running_server, wait_until_ready
from regression_model import __version__ as model_version


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels (pid dropped)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            key = (sample.name, labels)
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_houses_prices_and_failures_are_counted(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    before = scrape(client)
    good = {"inputs": test_houses[:3]}
    mixed = {"inputs": [test_houses[3], {"OverallQual": 11, "KitchenQual": "Superb"}]}
    for _ in range(4):
        assert client.post("/api/v1/predict", json=good).status_code == 200
    assert client.post("/api/v1/predict", json=mixed).status_code == 200
    assert client.post("/api/v1/predict", json={"inputs": [{"GrLivArea": -1}]}).status_code == 422
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "POST", "route": "/api/v1/predict"}
    assert delta("http_requests_total", **route, status="200") == 5
    assert delta("http_requests_total", **route, status="422") == 1
    assert delta("http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("http_request_duration_seconds_count", **route, status="200") == 5
    assert delta("predict_houses_per_request_count") == 6
    assert delta("predict_houses_per_request_sum") == 4 * 3 + 2 + 1
    assert delta("predict_houses_total", outcome="priced") == 13
    assert delta("predict_houses_total", outcome="rejected") == 2
    assert delta("predict_price_dollars_count") == 13
    assert delta("predict_validation_failures_total", field="OverallQual") == 1
    assert delta("predict_validation_failures_total", field="KitchenQual") == 1
    assert delta("predict_validation_failures_total", field="GrLivArea") == 1
    for stage in ("parse", "validate", "score"):
        assert delta("predict_stage_seconds_count", stage=stage) == 6
    info = [k for k in after if k[0] == "model_info"]
    assert len(info) == 1 and dict(info[0][1])["version"] == model_version
    assert value(after, "model_artifact_age_seconds") > 0


def test_stage_timings_are_sent_as_server_timing(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    response = client.post("/api/v1/predict", json={"inputs": test_houses[:2]})
    header = response.headers["Server-Timing"]
    stages = dict(re.findall(r"(\w+);dur=([\d.]+)", header))
    assert set(stages) == {"parse", "validate", "score"}
    assert all(float(ms) >= 0 for ms in stages.values())
    assert "Server-Timing" not in client.get("/api/v1/health").headers


def test_metrics_can_be_switched_off() -> None:
    with make_client(metrics=False) as client:
        wait_until_ready(client)
        response = client.get("/metrics")
        assert response.status_code == 404
        assert response.json()["errors"][0]["message"] == "metrics are off (METRICS=false)"


@pytest.mark.server
@pytest.mark.timeout(180)
def test_two_workers_count_into_one_scrape(
    tmp_path: Path, test_houses: list[dict[str, Any]]
) -> None:
    """40 requests of 3 houses over fresh connections reach both workers; the
    scrape (answered by either) counts all of them, once."""
    body = {"inputs": test_houses[:3]}
    answered: Tally[str] = Tally()
    with running_server(tmp_path / "server.log", workers=2) as server:
        for _ in range(40):  # a new connection each: the kernel spreads them
            response = httpx.post(f"{server.url}/api/v1/predict", json=body, timeout=30)
            assert response.status_code == 200
            answered[response.headers["X-Worker-PID"]] += 1
        # Each worker adds its tallies to the shared files every FLUSH_SECONDS.
        time.sleep(metrics.FLUSH_SECONDS + 0.5)
        scrapes = []
        for _ in range(6):
            with httpx.Client(base_url=server.url, timeout=30) as scraper:
                response = scraper.get("/metrics")
                scrapes.append((response.headers["X-Worker-PID"], scrape(scraper)))
    assert len(answered) == 2, answered
    for _, samples in scrapes:
        route = {"method": "POST", "route": "/api/v1/predict", "status": "200"}
        assert value(samples, "http_requests_total", **route) == 40
        assert value(samples, "predict_houses_total", outcome="priced") == 120
        assert value(samples, "predict_houses_per_request_count") == 40
        assert value(samples, "predict_price_dollars_count") == 120


def test_tallies_add_up_to_what_observing_one_by_one_records() -> None:
    """The request path tallies, then adds many observations at once through
    prometheus-client's histogram internals: the result must be the same as
    calling observe() for each value (bucket edges included)."""
    registry = CollectorRegistry()
    buckets = (0.001, 0.01, 0.1, 1.0)
    direct = Histogram("direct", "one by one", buckets=buckets, registry=registry)
    tallied = Histogram("tallied", "tallied", buckets=buckets, registry=registry)
    counted = Counter("counted", "tallied", registry=registry)
    tally, count = metrics._Tally(tallied), metrics._Tally(counted)
    values = [0.0, 0.001, 0.0010001, 0.01, 0.05, 0.1, 1.0, 1.5, 99.0]
    for v in values:
        direct.observe(v)
        tally.observe(v)
        count.count += 1
    tally.flush()
    count.flush()
    tally.flush()  # nothing new: adds nothing
    samples = {
        (s.name.replace("tallied", "direct"), tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith("tallied")
    }
    expected = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith("direct") and not s.name.endswith("_created")
    }
    assert {k: v for k, v in samples.items() if not k[0].endswith("_created")} == expected
    assert counted._value.get() == len(values)
