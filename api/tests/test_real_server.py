"""The API as it runs in production: ``python -m api`` (uvicorn) in a subprocess
on a free loopback port, driven over real HTTP."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from api.tests.conftest import FIGURES, as_json_houses
from api.tests.helpers import run_load, running_server, stop
from regression_model import __version__ as model_version
from regression_model.predict import make_prediction
from testkit import Server

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(log) as running:
        yield running


def test_every_test_house_is_priced_exactly_as_make_prediction_prices_it(
    server: Server, test_frame: pd.DataFrame
) -> None:
    houses = as_json_houses(test_frame)
    assert len(houses) == 1459
    response = httpx.post(f"{server.url}/api/v1/predict", json={"inputs": houses}, timeout=120)
    assert response.status_code == 200
    body = response.json()
    expected = make_prediction(input_data=test_frame)
    assert body["version"] == expected["version"] == model_version
    assert len(body["predictions"]) == 1459
    assert body["predictions"] == expected["predictions"]  # exactly, to the last bit
    assert body["errors"] == expected["errors"]
    assert sum(p is not None for p in body["predictions"]) == 1459


def test_the_event_loop_answers_while_a_big_batch_is_scored(
    tmp_path: Path, test_frame: pd.DataFrame
) -> None:
    """Parsing, validation and scoring run off the event loop: /health keeps
    being answered while eight copies of test.csv (11,672 houses, 17 MB) are
    priced on the same, single worker. No answer waits as long as the batch's
    validation and scoring took (its Server-Timing says how long): were they
    on the event loop, one would wait for all of it (checked, by scoring
    inline; and the body's depth, once measured by a regex holding the GIL,
    stalled the loop for half a second)."""
    houses = as_json_houses(test_frame) * 8
    content = json.dumps({"inputs": houses}).encode()
    limits = {"MAX_ROWS": str(len(houses)), "MAX_BODY_BYTES": str(len(content) + 1024)}
    done = threading.Event()
    result: dict[str, Any] = {}
    with running_server(tmp_path / "server.log", env=limits) as server:

        def big_batch() -> None:
            result["started"] = time.monotonic()
            result["response"] = httpx.post(
                f"{server.url}/api/v1/predict",
                content=content,
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            result["seconds"] = time.monotonic() - result["started"]
            done.set()

        thread = threading.Thread(target=big_batch)
        thread.start()
        latencies: list[float] = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not done.is_set():
                began = time.monotonic()
                assert client.get("/api/v1/health").status_code == 200
                # The last one too: a /health held up by the batch ends with it.
                latencies.append(time.monotonic() - began)
                time.sleep(0.01)
        thread.join()
    response = result["response"]
    assert response.status_code == 200
    assert None not in response.json()["predictions"]
    stages = {
        name: float(duration) / 1000
        for name, duration in re.findall(r"(\w+);dur=([\d.]+)", response.headers["Server-Timing"])
    }
    work = stages["validate"] + stages["score"]
    longest = max(latencies)
    FIGURES["/health during a batch of 11,672 houses (1 worker)"] = (
        f"{len(latencies)} answers in {result['seconds']:.2f} s, the longest wait "
        f"{longest * 1000:.0f} ms; the batch's validation and scoring {work * 1000:.0f} ms"
    )
    assert len(latencies) >= 10, (len(latencies), result["seconds"])
    assert longest < 0.5 * work, (longest, stages)


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    """Graceful: uvicorn finishes the shutdown, then exits by the SIGTERM it got
    (uvicorn re-raises the signal so the exit status says what stopped it)."""
    with running_server(tmp_path / "server.log") as server:
        assert httpx.get(f"{server.url}/api/v1/health").status_code == 200
        started = time.monotonic()
        code = stop(server.process)
        elapsed = time.monotonic() - started
        output = server.output()
    assert code in (0, -signal.SIGTERM), output[-2000:]
    assert elapsed < 15
    assert "Application shutdown complete." in output
    assert "Finished server process" in output


@pytest.mark.timeout(300)
def test_two_workers_both_serve_keep_alive_load(tmp_path: Path) -> None:
    with running_server(tmp_path / "server.log", workers=2) as server:
        report = run_load(server.url, connections=8, seconds=4)
        output = server.output()
    assert report.failures == 0
    assert report.requests >= 8
    assert len(report.per_worker) == 2, (report, output[-2000:])
    assert all(count > 0 for count in report.per_worker.values())
