"""Liveness, readiness, the model card and the OpenAPI document."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api import __version__ as api_version
from api.app.core.settings import Settings
from api.app.examples import canary_house
from api.app.main import create_app
from api.tests.helpers import wait_until_ready
from regression_model import __version__ as model_version
from regression_model import load_model, make_prediction
from regression_model.config.core import get_config
from regression_model.scoring.schema import house_input_model


def test_health_names_the_service_and_both_versions(client: TestClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": "house-prices-api",
        "api_version": api_version,
        "model_version": model_version,
    }


def test_ready_is_503_until_the_app_starts_loading_then_200() -> None:
    app = create_app(Settings())
    unstarted = TestClient(app)  # no lifespan: the model never starts loading
    response = unstarted.get("/api/v1/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "loading"
    assert unstarted.get("/api/v1/health").status_code == 200  # liveness does not wait
    with TestClient(app) as started:
        wait_until_ready(started)
        body = started.get("/api/v1/ready").json()
    assert body == {
        "ready": True,
        "status": "ready",
        "model_version": model_version,
        "detail": None,
    }
    service = app.state.model_service
    assert service.canary_price == make_prediction(input_data=[canary_house()])["predictions"][0]


def test_model_card_is_the_verified_manifest(client: TestClient) -> None:
    response = client.get("/api/v1/model")
    assert response.status_code == 200
    card = response.json()
    manifest = load_model().manifest
    assert card["version"] == model_version == manifest["version"]
    assert card["artifact"] == manifest["artifact"]
    assert card["config"]["sha256"] == manifest["config"]["sha256"] == get_config().sha256
    assert (
        card["metrics"]["cross_validation"]["rmsle_mean"]
        == (manifest["metrics"]["cross_validation"]["rmsle_mean"])
    )
    cv = card["metrics"]["cross_validation"]
    assert (cv["repeats"], cv["folds"]) == (3, 5) and cv["r2_mean"] > 0.9
    assert card["evaluation"] == manifest["evaluation"]
    assert card["baselines"]["best"] == "small_linear" and card["baselines"]["passed"]
    assert card["slices"]["worst"] == manifest["slices"]["worst"]
    assert set(card["slices"]["by"]) >= {"Neighborhood", "price band"}
    features = {f["name"]: f for f in card["features"]}
    assert list(features) == get_config().model.features
    assert features["FirstFlrSF"]["input_field"] == "1stFlrSF"
    assert features["Neighborhood"]["type"] == "categorical"
    assert abs(sum(features["Neighborhood"]["categories"].values()) - 1) < 1e-9
    assert features["GrLivArea"]["min"] > 0


def test_openapi_documents_the_package_schema_examples_and_errors(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    components = schema["components"]["schemas"]
    # One source of truth: the house schema is the package's, field for field.
    package = house_input_model().model_json_schema(by_alias=True)
    assert set(components["HouseInput"]["properties"]) == set(package["properties"])
    for name, spec in package["properties"].items():
        documented = components["HouseInput"]["properties"][name]
        assert documented["anyOf"][0].get("maximum") == spec["anyOf"][0].get("maximum"), name
        assert documented["anyOf"][0].get("enum") == spec["anyOf"][0].get("enum"), name
    request = components["PredictRequest"]["properties"]["inputs"]
    assert request["items"] == {"$ref": "#/components/schemas/HouseInput"}

    operation = schema["paths"]["/api/v1/predict"]["post"]
    for status in ("200", "401", "413", "415", "422", "503"):
        assert status in operation["responses"], status
    error_ref = operation["responses"]["422"]["content"]["application/json"]["schema"]
    assert error_ref == {"$ref": "#/components/schemas/ErrorResponse"}
    assert set(components["ErrorDetail"]["properties"]) == {"row", "field", "message"}


def test_openapi_examples_are_real_houses_that_get_the_documented_answer(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    examples = schema["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]["examples"]
    first = {k: v for k, v in test_houses[0].items() if v is not None}
    assert examples["one_house"]["value"] == {"inputs": [first]}
    for name, example in examples.items():
        response = client.post("/api/v1/predict", json=example["value"])
        assert response.status_code == 200, name
        predictions = response.json()["predictions"]
        if name == "mixed_batch":
            assert predictions[0] is not None and predictions[1] is None
            assert {e["field"] for e in response.json()["errors"]} == {
                "OverallQual",
                "KitchenQual",
            }
        else:
            assert None not in predictions, name


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "/api/v1/openapi.json" in response.text


def test_the_service_never_imports_training_libraries_nor_pandas(tmp_path: Path) -> None:
    """Serving reads the compiled tables and the report's PNGs as drawn: no
    unpickling, no scikit-learn, feature-engine, joblib, pandas or matplotlib
    in the worker (small, fast to start); writing the prediction log, serving
    /metrics and computing /drift add neither pandas nor SciPy nor matplotlib."""
    code = (
        "import sys, time\n"
        "from fastapi.testclient import TestClient\n"
        "from api.app.main import create_app\n"
        "with TestClient(create_app()) as client:\n"
        "    for _ in range(300):\n"
        "        if client.get('/api/v1/ready').status_code == 200: break\n"
        "        time.sleep(0.05)\n"
        "    answer = client.post('/api/v1/predict?explain=true',"
        " json={'inputs': [{'GrLivArea': 1500}]})\n"
        "    assert answer.status_code == 200, answer.text\n"
        "    assert client.get('/').status_code == 200\n"
        "    assert client.get('/metrics').status_code == 200\n"
        "    time.sleep(0.5)\n"
        "    drift = client.get('/api/v1/drift')\n"
        "    assert drift.status_code == 200 and drift.json()['houses'] == 1, drift.text\n"
        "    assert client.get('/api/v1/model/report/').status_code == 200\n"
        "    plot = client.get('/api/v1/model/report/predicted_vs_actual.png')\n"
        "    assert plot.headers['content-type'] == 'image/png', plot.text\n"
        "print(sorted(m for m in ('sklearn', 'feature_engine', 'joblib', 'pandas', 'scipy',"
        " 'matplotlib') if m in sys.modules))\n"
    )
    # DRIFT_CACHE_SECONDS=0: the scrape above starts a drift report in the
    # background, which may run before the house is written; /drift must not
    # answer from it.
    env = {
        **os.environ,
        "PREDICTION_LOG_PATH": str(tmp_path / "log.sqlite3"),
        "DRIFT_CACHE_SECONDS": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
