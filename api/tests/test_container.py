"""The container: build the image from the unchanged Dockerfile, run it, wait
for readiness, price houses exactly as the package does, stop it with SIGTERM.

Uses docker where a docker engine answers, else podman (in CI prepared by
``eval "$(../shared/ci/offline-container-base.sh)"``, which provides a local
``python:3.11-slim`` stand-in, hence ``--pull=never``). Elsewhere a missing
base image is pulled first (``tooling.py``); when no registry answers, the
tests skip. Skips when neither engine works, or the base image cannot be had,
unless REQUIRE_CONTAINER=1 (CI), where that is a failure. Needs the
source tree (Dockerfile beside ``api/``): a copy of ``api/`` alone has nothing
to build and skips.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest

from api.app.examples import example_houses
from api.tests.conftest import FIGURES, as_json_houses
from api.tests.helpers import API_PARENT
from api.tests.tooling import (
    Engine,
    base_images,
    container_engine,
    numerics_environment,
    pull_if_missing,
)
from regression_model import load_model, make_prediction
from testkit import free_port

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

ROOT = API_PARENT
IMAGE = "house-prices-api:test"
CONTAINER_PORT = 8001
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30


@pytest.fixture(scope="module")
def engine() -> Engine:
    if not (ROOT / "Dockerfile").is_file() or not (ROOT / "regression_model").is_dir():
        pytest.skip(f"no source tree beside api/ ({ROOT}): nothing to build")
    return container_engine(required_by="REQUIRE_CONTAINER")


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    started = time.monotonic()
    engine.build(IMAGE, ROOT)
    FIGURES["container_build_seconds"] = round(time.monotonic() - started, 1)
    size = int(engine.run("image", "inspect", IMAGE, "--format", "{{.Size}}"))
    FIGURES["image_size_mb"] = round(size / 1e6, 1)
    return IMAGE


@dataclass
class Running:
    engine: Engine
    name: str
    url: str
    ready_seconds: float

    def logs(self) -> str:
        result = subprocess.run(
            [self.engine.name, "logs", self.name], capture_output=True, text=True, timeout=60
        )
        return result.stdout + result.stderr


def _numerics_flags() -> list[str]:
    """The host's numpy SIMD level and BLAS kernel, passed on: the container's
    prices are compared exactly with this process's."""
    return [arg for key in numerics_environment() for arg in ("-e", key)]


def _start(
    engine: Engine, image: str, *extra: str, container_port: int = CONTAINER_PORT
) -> Running:
    name = f"house-prices-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = time.monotonic()
    engine.run(
        "run", "--detach", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}",
        *_numerics_flags(), *extra, image,
    )  # fmt: skip
    running = Running(engine, name, f"http://127.0.0.1:{port}", 0.0)
    deadline = started + READY_TIMEOUT
    while True:
        try:
            if httpx.get(running.url + "/api/v1/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        state = engine.run("inspect", name, "--format", "{{.State.Status}}", check=False)
        if state in ("exited", "dead") or time.monotonic() > deadline:
            logs = running.logs()
            engine.run("rm", "-f", name, check=False)
            raise AssertionError(f"container not ready ({state}):\n{logs[-4000:]}")
        time.sleep(0.1)
    running.ready_seconds = time.monotonic() - started
    return running


def _stop(running: Running) -> tuple[float, int]:
    """SIGTERM (``stop``), wait; returns (seconds, exit code)."""
    started = time.monotonic()
    running.engine.run(
        "stop", "--time", str(STOP_TIMEOUT), running.name, timeout=STOP_TIMEOUT + 60
    )
    seconds = time.monotonic() - started
    code = int(running.engine.run("inspect", running.name, "--format", "{{.State.ExitCode}}"))
    return seconds, code


@pytest.fixture(scope="module")
def container(engine: Engine, image: str) -> Iterator[Running]:
    running = _start(engine, image)
    FIGURES["container_start_to_ready_seconds"] = round(running.ready_seconds, 2)
    try:
        yield running
    finally:
        engine.run("rm", "-f", running.name, check=False)


def test_the_image_prices_every_test_house_exactly_as_the_package(
    container: Running, test_frame: pd.DataFrame
) -> None:
    one = example_houses()[0]
    response = httpx.post(container.url + "/api/v1/predict", json={"inputs": [one]}, timeout=60)
    assert response.status_code == 200
    assert response.json()["predictions"] == make_prediction(input_data=[one])["predictions"]

    response = httpx.post(
        container.url + "/api/v1/predict", json={"inputs": as_json_houses(test_frame)}, timeout=120
    )
    assert response.status_code == 200
    assert response.json()["predictions"] == make_prediction(input_data=test_frame)["predictions"]


def test_the_image_logs_predictions_and_counts_them(container: Running) -> None:
    """The image logs to its SQLite file (the app user may write there and only
    there) and serves /metrics across workers."""
    one = example_houses()[0]
    response = httpx.post(container.url + "/api/v1/predict", json={"inputs": [one]}, timeout=60)
    request_id = response.headers["X-Request-ID"]
    metrics = httpx.get(container.url + "/metrics", timeout=30).text
    assert 'http_requests_total{method="POST",route="/api/v1/predict",status="200"}' in metrics
    query = f"select count(*) from predictions where request_id = '{request_id}'"
    count = (
        "import sqlite3, time\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        db = sqlite3.connect('/var/lib/house-prices/predictions.sqlite3')\n"
        f"        rows = db.execute({query!r}).fetchone()[0]\n"
        "    except sqlite3.OperationalError:\n"
        "        rows = 0\n"
        "    if rows: break\n"
        "    time.sleep(0.1)\n"
        "print(rows)\n"
    )
    assert container.engine.run("exec", container.name, "python", "-c", count) == "1"


def test_the_image_serves_the_artifact_the_tests_verified(container: Running) -> None:
    card = httpx.get(container.url + "/api/v1/model", timeout=30).json()
    assert card["artifact"]["sha256"] == load_model().manifest["artifact"]["sha256"]


def test_the_image_is_configured_for_production(
    engine: Engine, image: str, container: Running
) -> None:
    inspected: dict[str, Any] = json.loads(engine.run("image", "inspect", image))[0]
    config = inspected["Config"]
    assert config["User"] not in ("", "0", "root", "0:0")
    assert f"{CONTAINER_PORT}/tcp" in config["ExposedPorts"]
    assert "PORT=8001" in config["Env"]
    # docker keeps the health check in Config, podman at the top level
    healthcheck = config.get("Healthcheck") or inspected.get("Healthcheck") or {}
    assert healthcheck.get("Test", [""])[0] in ("CMD", "CMD-SHELL")
    assert "/api/v1/ready" in " ".join(healthcheck["Test"])
    assert config.get("StopSignal", "SIGTERM") in ("SIGTERM", "15")
    assert config["Cmd"][0] != "sh"  # exec form: the server is PID 1 and gets SIGTERM
    assert engine.run("exec", container.name, "id", "-u") != "0"
    assert engine.run(
        "exec", container.name, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"
    ).startswith("python")
    if engine.name == "podman":  # without systemd, podman runs health checks on demand
        engine.run("healthcheck", "run", container.name)
    env = engine.run("exec", container.name, "env")
    for secret in ("PIP_INDEX_URL", "TWINE_PASSWORD", "API_KEY="):
        assert secret not in env
    history = engine.run("history", "--no-trunc", image)
    assert "pip_index_url" not in history.replace("id=pip_index_url", "")


def test_port_is_honoured(engine: Engine, image: str) -> None:
    running = _start(engine, image, "-e", "PORT=9000", container_port=9000)
    try:
        assert httpx.get(running.url + "/api/v1/health", timeout=10).status_code == 200
    finally:
        engine.run("rm", "-f", running.name, check=False)


def test_sigterm_stops_the_container_cleanly(engine: Engine, image: str) -> None:
    running = _start(engine, image)
    try:
        assert httpx.get(running.url + "/api/v1/health", timeout=10).status_code == 200
        seconds, code = _stop(running)
        logs = running.logs()
    finally:
        engine.run("rm", "-f", running.name, check=False)
    FIGURES["container_stop_seconds"] = round(seconds, 2)
    assert code in (0, 143), logs[-2000:]  # 137 would mean it had to be killed
    assert seconds < STOP_TIMEOUT - 5
    assert "Application shutdown complete." in logs and "Finished server process" in logs


#: An image no registry has: ``localhost:9`` (the discard port) answers nothing.
MISSING_IMAGE = "localhost:9/house-prices-no-such-base:never"


def test_a_missing_base_image_is_pulled_else_the_test_skips_or_fails(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path a user without the base image takes, with an image no registry
    has: the pull is tried, fails, and the test skips saying why, or fails
    when its REQUIRE_* variable is 1 (CI)."""
    reason = pull_if_missing(engine.name, MISSING_IMAGE, timeout=120)
    assert reason is not None and MISSING_IMAGE in reason and "pull" in reason
    variable = "REQUIRE_HOUSE_PRICES_TEST_ONLY"
    strict = Engine(engine.name, variable)
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(pytest.skip.Exception, match="pull"):
        strict.ensure_image(MISSING_IMAGE)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{variable}=1 but"):
        strict.ensure_image(MISSING_IMAGE)


def test_the_dockerfiles_base_image_is_here(engine: Engine, image: str) -> None:
    """After the build (which made it present: CI's stand-in, or pulled), a
    second look finds it without pulling."""
    for base in base_images(ROOT / "Dockerfile"):
        assert pull_if_missing(engine.name, base, timeout=1) is None
