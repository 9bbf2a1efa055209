"""Settings from the environment, the optional API key, CORS, the launcher."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from api.__main__ import main
from api.app.core.settings import Settings
from api.tests.conftest import make_client
from api.tests.helpers import API_PARENT, server_env, wait_until_ready

_ENV_NAMES = (
    "PORT", "WEB_CONCURRENCY", "LOG_LEVEL", "CORS_ORIGINS", "MAX_BODY_BYTES", "MAX_ROWS",
    "MAX_JSON_DEPTH", "API_KEY", "MODEL_WAIT_SECONDS", "GRACEFUL_SHUTDOWN_SECONDS",
)  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.port == 8001
    assert settings.web_concurrency == 1
    assert settings.api_key is None
    assert settings.cors_origins == []
    assert settings.max_rows >= 1459  # all of test.csv fits in one request


def test_environment_is_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PORT", "9123")
    clean_env.setenv("WEB_CONCURRENCY", "3")
    clean_env.setenv("LOG_LEVEL", "WARNING")
    clean_env.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    clean_env.setenv("MAX_ROWS", "10")
    clean_env.setenv("API_KEY", "s3cret")
    settings = Settings()
    assert (settings.port, settings.web_concurrency, settings.log_level) == (9123, 3, "warning")
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.max_rows == 10
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # never printed by accident


def test_an_empty_api_key_disables_auth(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("API_KEY", "  ")
    assert Settings().api_key is None


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "http"), ("PORT", "70000"), ("WEB_CONCURRENCY", "0")]
)
def test_invalid_settings_are_refused(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
    assert main([]) == 2  # the launcher says so and exits before starting a server


def test_launcher_help_names_the_environment() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api", "--help"],
        cwd=API_PARENT, env=server_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "$PORT" in result.stdout and "$WEB_CONCURRENCY" in result.stdout


def test_api_key_is_required_only_on_predict(house: dict[str, Any]) -> None:
    with make_client(api_key="s3cret") as client:
        wait_until_ready(client)
        body = {"inputs": [house]}
        missing = client.post("/api/v1/predict", json=body)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "X-API-Key"
        assert missing.json()["errors"][0]["field"] == "X-API-Key"
        wrong = client.post("/api/v1/predict", json=body, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401
        assert "s3cret" not in wrong.text
        right = client.post("/api/v1/predict", json=body, headers={"X-API-Key": "s3cret"})
        assert right.status_code == 200 and right.json()["predictions"][0] > 0
        for path in ("/api/v1/health", "/api/v1/ready", "/api/v1/model", "/"):
            assert client.get(path).status_code == 200, path
        assert 'id="api-key"' in client.get("/").text


def test_without_api_key_predict_is_open_and_the_page_asks_for_none(
    house: dict[str, Any],
) -> None:
    with make_client() as client:
        wait_until_ready(client)
        assert client.post("/api/v1/predict", json={"inputs": [house]}).status_code == 200
        assert 'id="api-key"' not in client.get("/").text


def test_cors_allows_only_configured_origins(house: dict[str, Any]) -> None:
    with make_client(cors_origins=["https://houses.example"]) as client:
        wait_until_ready(client)
        preflight = client.options(
            "/api/v1/predict",
            headers={
                "Origin": "https://houses.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://houses.example"
        allowed = client.post(
            "/api/v1/predict",
            json={"inputs": [house]},
            headers={"Origin": "https://houses.example"},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://houses.example"
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
        other = client.post(
            "/api/v1/predict", json={"inputs": [house]}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
