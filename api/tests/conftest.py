"""Shared fixtures: apps built with explicit settings, test.csv as JSON houses,
and the helpers the real-server tests use to start and stop ``python -m api``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

# Starlette's TestClient warns that it will move to httpx2; the tests use httpx as pinned.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from api.app.core.settings import Settings  # noqa: E402
from api.app.main import create_app  # noqa: E402
from api.tests.helpers import wait_until_ready  # noqa: E402
from regression_model.config.core import get_config  # noqa: E402
from regression_model.data import load_dataset  # noqa: E402

#: Measured figures (image size, start-to-ready, ...), printed after the run.
FIGURES: dict[str, Any] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("measured figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "server: starts the API as a real uvicorn process on loopback",
        "browser: drives the system's Chromium (REQUIRE_BROWSER=1 turns skips into failures)",
        "container: builds and runs the Docker image (REQUIRE_CONTAINER=1: no skipping)",
        "load: minutes of traffic, or servers and databases stopped under load (run once, in "
        "tox -e test_app; the release rehearsal leaves them out)",
    ):
        config.addinivalue_line("markers", marker)


def make_client(**overrides: Any) -> TestClient:
    """A client for an app with ``Settings(**overrides)`` (environment ignored)."""
    return TestClient(create_app(Settings(_env_file=None, **overrides)))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def app() -> FastAPI:
    return create_app(Settings())


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of a started app whose model is loaded (waits for /ready)."""
    with TestClient(app) as test_client:
        wait_until_ready(test_client)
        yield test_client


@pytest.fixture(scope="session")
def test_frame() -> pd.DataFrame:
    """Kaggle's test.csv as the package ships it (1459 houses)."""
    return load_dataset(get_config().app.test_data_file)


def as_json_houses(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client would send them: plain values, null where the file is empty."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def test_houses(test_frame: pd.DataFrame) -> list[dict[str, Any]]:
    return as_json_houses(test_frame)


@pytest.fixture
def house(test_houses: list[dict[str, Any]]) -> dict[str, Any]:
    """A fresh copy of the first house of test.csv."""
    return dict(test_houses[0])
