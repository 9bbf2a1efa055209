"""Structured logs: one JSON object per line, with the request id, and no payloads."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.core.settings import Settings
from api.app.core.structured_logging import JsonFormatter
from api.app.main import create_app
from api.tests.helpers import wait_until_ready

MARKER_LABEL = "ZzPayloadMarker"
MARKER_AREA = 4321.5


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_access_lines_are_json_with_request_id_and_no_payload(
    capsys: pytest.CaptureFixture[str], house: dict[str, Any]
) -> None:
    app = create_app(Settings(log_level="info"))  # logs to the stdout captured here
    with TestClient(app) as client:
        wait_until_ready(client)
        capsys.readouterr()
        spoilt = {
            **house,
            "Neighborhood": MARKER_LABEL,
            "GrLivArea": MARKER_AREA,
            "OverallQual": 99,
        }
        response = client.post(
            "/api/v1/predict", json={"inputs": [house, spoilt]}, headers={"X-Request-ID": "log-1"}
        )
    assert response.status_code == 200
    output = capsys.readouterr().out
    lines = _json_lines(output)
    assert lines, output
    access = [
        line for line in lines if line["logger"] == "api.access" and line["request_id"] == "log-1"
    ]
    assert len(access) == 1
    line = access[0]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/api/v1/predict", 200)
    assert (line["houses"], line["priced"], line["rejected"]) == (2, 1, 1)
    assert line["duration_ms"] > 0 and line["level"] == "info" and line["pid"] > 0
    # Values the client sent never reach the log at INFO.
    assert MARKER_LABEL not in output and str(MARKER_AREA) not in output


def test_model_ready_line_has_the_tables_hash(capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(create_app(Settings())) as client:
        wait_until_ready(client)
    ready = [
        line for line in _json_lines(capsys.readouterr().out) if line["message"] == "model ready"
    ]
    assert ready and len(ready[0]["tables_sha256"]) == 64 and ready[0]["canary_price"] > 0


def test_formatter_writes_extra_fields_and_exceptions() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.LogRecord(
            "api.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None
        )
        record.exc_info = sys.exc_info()
    record.request_id = "r-1"
    record.rows = 3
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here"
    assert (entry["request_id"], entry["rows"], entry["level"]) == ("r-1", 3, "error")
    assert "ValueError: broken" in entry["exception"]
