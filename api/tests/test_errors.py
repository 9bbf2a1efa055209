"""The last-resort 500, and evidence that client input never reaches it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app.core.settings import Settings
from api.app.main import create_app
from api.tests.helpers import wait_until_ready
from regression_model import CompiledModel, get_config

SECRET = "secret-internal-detail-/etc/passwd"


def _boom() -> None:
    raise RuntimeError(SECRET)


def test_an_unhandled_exception_is_a_generic_500_logged_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings())
    app.add_api_route("/boom", _boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-500"
    body = response.json()
    assert body["request_id"] == "req-500"
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(None, "*")]
    assert "internal error" in body["errors"][0]["message"]
    for leak in (SECRET, "RuntimeError", "Traceback", "boom"):
        assert leak not in response.text
    logged = [r for r in caplog.records if r.name == "api.errors"]
    assert len(logged) == 1
    assert getattr(logged[0], "request_id", None) == "req-500"
    assert logged[0].exc_info is not None and SECRET in str(logged[0].exc_info[1])


def test_a_failure_inside_prediction_is_a_generic_500(
    monkeypatch: pytest.MonkeyPatch, house: dict[str, Any]
) -> None:
    app = create_app(Settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_until_ready(client)

        def broken(*_: Any, **__: Any) -> Any:
            raise ValueError(SECRET)

        # The service prices with the model object it loaded.
        monkeypatch.setattr(CompiledModel, "predict", broken)
        response = client.post("/api/v1/predict", json={"inputs": [house]})
    assert response.status_code == 500
    assert SECRET not in response.text
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


# --- Fuzzing: whatever a client sends, the answer is never a 5xx. -----------------

_FEATURES = get_config().model.features
_RAW_NAMES = list(get_config().model.variables_to_rename)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
field_names = st.sampled_from([*_FEATURES, *_RAW_NAMES]) | st.text(max_size=12)
houses = st.dictionaries(field_names, json_values, max_size=12)
bodies = (
    st.fixed_dictionaries({"inputs": st.lists(houses | json_values, max_size=6)})
    | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
    | json_values
)

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def last_resort_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the 500 handler (``api.errors``) while the fuzz tests run."""
    handler = _Collect()
    logger = logging.getLogger("api.errors")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def _assert_client_error_or_success(response: Any, log: list[logging.LogRecord]) -> None:
    assert not log, "the last-resort 500 handler was reached"
    assert response.status_code in {200, 413, 415, 422}, response.text[:300]
    body = response.json()
    assert all(set(e) == {"row", "field", "message"} for e in body["errors"] or [])
    if response.status_code == 200:
        assert any(price is not None for price in body["predictions"])


@_FUZZ
@given(body=bodies)
def test_any_json_body_gets_a_documented_answer(
    client: TestClient, last_resort_log: list[logging.LogRecord], body: Any
) -> None:
    response = client.post(
        "/api/v1/predict",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    _assert_client_error_or_success(response, last_resort_log)


@_FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_get_a_documented_answer(
    client: TestClient, last_resort_log: list[logging.LogRecord], raw: bytes
) -> None:
    response = client.post(
        "/api/v1/predict", content=raw, headers={"Content-Type": "application/json"}
    )
    _assert_client_error_or_success(response, last_resort_log)


@_FUZZ
@given(
    value=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400]),
    name=st.sampled_from(_FEATURES),
)
def test_non_finite_and_huge_numbers_in_any_field_are_4xx(
    client: TestClient, last_resort_log: list[logging.LogRecord], value: str, name: str
) -> None:
    content = '{"inputs": [{"%s": %s}]}' % (name, value)  # noqa: UP031 (JSON text on purpose)
    response = client.post(
        "/api/v1/predict", content=content, headers={"Content-Type": "application/json"}
    )
    assert not last_resort_log
    assert response.status_code == 422
    assert (0, name) in {(e["row"], e["field"]) for e in response.json()["errors"]}
