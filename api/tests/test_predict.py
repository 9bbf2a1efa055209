"""POST /api/v1/predict in-process: prices equal make_prediction's, errors per row."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.tests.conftest import as_json_houses, make_client
from regression_model import __version__ as model_version
from regression_model import load_model
from regression_model.config.core import ARTIFACT_DIR_ENV_VAR, get_config
from regression_model.predict import make_prediction

PREDICT = "/api/v1/predict"


def test_one_house_is_priced_exactly_as_the_package_prices_it(
    client: TestClient, house: dict[str, Any]
) -> None:
    response = client.post(PREDICT, json={"inputs": [house]})
    assert response.status_code == 200
    body = response.json()
    expected = make_prediction(input_data=[house])
    assert body == {
        "predictions": expected["predictions"],
        "errors": None,
        "warnings": None,
        "version": model_version,
        "intervals": expected["intervals"],
    }
    assert 10_000 < body["predictions"][0] < 2_000_000


def test_a_batch_is_priced_in_order_exactly(client: TestClient, test_frame: pd.DataFrame) -> None:
    batch = test_frame.iloc[100:300]
    response = client.post(PREDICT, json={"inputs": as_json_houses(batch)})
    assert response.status_code == 200
    expected = make_prediction(input_data=batch)
    assert response.json()["predictions"] == expected["predictions"]
    assert None not in response.json()["predictions"]


def test_python_names_and_kaggle_names_price_the_same(
    client: TestClient, house: dict[str, Any]
) -> None:
    renamed = get_config().model.variables_to_rename
    python_named = {renamed.get(k, k): v for k, v in house.items()}
    assert python_named.keys() != house.keys()  # the house has renamed fields
    prices = [
        client.post(PREDICT, json={"inputs": [h]}).json()["predictions"][0]
        for h in (house, python_named)
    ]
    assert prices[0] == prices[1]


def test_extra_fields_are_ignored_and_named(client: TestClient, house: dict[str, Any]) -> None:
    plain = client.post(PREDICT, json={"inputs": [house]}).json()
    extra = client.post(
        PREDICT,
        json={"inputs": [{**house, "Colour": "blue", "Notes": {"a": [1]}}], "comment": "hi"},
    ).json()
    assert extra == {
        **plain,
        "warnings": [
            {
                "row": None,
                "field": "comment",
                "message": "unknown field of the request, ignored; the request has only inputs "
                "(strict and explain are query parameters)",
            },
            {"row": 0, "field": "Colour", "message": "unknown field, ignored"},
            {"row": 0, "field": "Notes", "message": "unknown field, ignored"},
        ],
    }


def test_missing_fields_are_imputed(client: TestClient) -> None:
    houses: list[dict[str, Any]] = [
        {"GrLivArea": 1500},
        {"Neighborhood": "NAmes", "OverallQual": 6},
    ]
    body = client.post(PREDICT, json={"inputs": houses}).json()
    assert body["errors"] is None
    assert body["predictions"] == make_prediction(input_data=houses)["predictions"]


def test_a_mixed_batch_prices_the_good_rows_and_names_the_bad(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    good, bad = dict(test_houses[0]), {**test_houses[1], "OverallQual": 11, "LotArea": -5}
    response = client.post(PREDICT, json={"inputs": [good, bad, good, "not a house"]})
    assert response.status_code == 200
    body = response.json()
    price = make_prediction(input_data=[good])["predictions"][0]
    assert body["predictions"] == [price, None, price, None]
    assert {(e["row"], e["field"]) for e in body["errors"]} == {
        (1, "OverallQual"),
        (1, "LotArea"),
        (3, "*"),
    }
    assert [e["row"] for e in body["errors"]] == sorted(e["row"] for e in body["errors"])
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert "between 1 and 10" in messages["OverallQual"]
    assert messages["*"] == "expected a JSON object (one house), got string"


def test_when_no_house_can_be_priced_the_answer_is_422_with_every_row(client: TestClient) -> None:
    response = client.post(
        PREDICT, json={"inputs": [{"KitchenQual": "Excellent"}, {"GrLivArea": "big"}]}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["predictions"] == [None, None]
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (0, "KitchenQual"),
        (1, "GrLivArea"),
    ]
    assert body["version"] == model_version
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_request_id_is_returned_and_a_sane_client_id_is_kept(
    client: TestClient, house: dict[str, Any]
) -> None:
    generated = client.post(PREDICT, json={"inputs": [house]})
    assert len(generated.headers["X-Request-ID"]) == 32
    kept = client.post(PREDICT, json={"inputs": [house]}, headers={"X-Request-ID": "trace-42"})
    assert kept.headers["X-Request-ID"] == "trace-42"
    replaced = client.post(
        PREDICT, json={"inputs": [house]}, headers={"X-Request-ID": "bad id\twith spaces"}
    )
    assert replaced.headers["X-Request-ID"] != "bad id\twith spaces"
    assert generated.headers["X-Worker-PID"].isdigit()


def test_without_a_model_predict_answers_503_and_ready_says_failed(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, house: dict[str, Any]
) -> None:
    monkeypatch.setenv(ARTIFACT_DIR_ENV_VAR, str(tmp_path))  # an empty artifact directory
    with make_client(model_wait_seconds=10) as client:
        response = client.post(PREDICT, json={"inputs": [house]})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        error = response.json()["errors"][0]
        assert "unavailable" in error["message"]
        assert str(tmp_path) not in response.text  # the reason is logged, not returned
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed"


def test_explain_splits_each_price_into_the_package_terms(
    client: TestClient, house: dict[str, Any]
) -> None:
    response = client.post(
        "/api/v1/predict?explain=true", json={"inputs": [house, {"GrLivArea": -1}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = make_prediction(input_data=[house, {"GrLivArea": -1}], explain=True)
    assert body["predictions"] == expected["predictions"]
    assert body["explanations"] == expected["explanations"]
    assert body["explanations"][1] is None
    explanation = body["explanations"][0]
    total = explanation["baseline"] + sum(f["dollars"] for f in explanation["factors"])
    assert total == pytest.approx(body["predictions"][0], rel=1e-12)
    # without the parameter the field is absent, as before
    assert "explanations" not in client.post("/api/v1/predict", json={"inputs": [house]}).json()


def test_explain_must_be_a_boolean(client: TestClient, house: dict[str, Any]) -> None:
    response = client.post("/api/v1/predict?explain=perhaps", json={"inputs": [house]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "explain"


def test_each_priced_house_has_its_ranges_around_its_price_and_a_rejected_one_none(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    houses: list[Any] = [*test_houses[:20], {"GrLivArea": -1}, "not a house"]
    body = client.post(PREDICT, json={"inputs": houses}).json()
    assert body["intervals"] == make_prediction(input_data=houses[:21])["intervals"] + [None]
    coverages = load_model().coverages
    assert len(coverages) >= 2
    for price, ranges in zip(body["predictions"][:20], body["intervals"][:20], strict=True):
        assert [r["coverage"] for r in ranges] == coverages
        assert all(r["low"] < price < r["high"] for r in ranges), (price, ranges)
        # a higher coverage is a wider range around the same price
        assert all(
            wider["low"] < narrower["low"] and narrower["high"] < wider["high"]
            for narrower, wider in itertools.pairwise(ranges)
        )
    assert body["intervals"][20:] == [None, None]


def test_coverage_asks_for_those_ranges_only(client: TestClient, house: dict[str, Any]) -> None:
    every = client.post(PREDICT, json={"inputs": [house]}).json()["intervals"][0]
    by_coverage = {r["coverage"]: r for r in every}
    highest, lowest = max(by_coverage), min(by_coverage)
    one = client.post(f"{PREDICT}?coverage={highest}", json={"inputs": [house]}).json()
    assert one["intervals"] == [[by_coverage[highest]]]
    assert one["predictions"] == make_prediction(input_data=[house])["predictions"]
    both = client.post(
        f"{PREDICT}?coverage={highest}&coverage={lowest}&coverage={highest}",
        json={"inputs": [house]},
    ).json()
    assert both["intervals"] == [[by_coverage[highest], by_coverage[lowest]]]  # as asked, once


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0.95", "0.95"),
        ("80", "80.0"),  # a percentage, not a share
        ("0", "0.0"),
        ("-0.9", "-0.9"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("-Infinity", "-inf"),
        ("1e400", "inf"),
        ("1e-400", "0.0"),
    ],
)
def test_a_coverage_without_ranges_is_a_422_naming_it_and_the_coverages_there_are(
    client: TestClient, house: dict[str, Any], value: str, shown: str
) -> None:
    coverages = load_model().coverages
    response = client.post(
        f"{PREDICT}?coverage={coverages[0]}&coverage={value}", json={"inputs": [house]}
    )
    assert response.status_code == 422, response.text
    there = ", ".join(map(str, coverages))
    assert response.json()["errors"] == [
        {
            "row": None,
            "field": "coverage",
            "message": f"no price range at coverage {shown}: this model has ranges at {there} "
            "(leave coverage out for all)",
        }
    ]
    assert response.json()["predictions"] is None


@pytest.mark.parametrize(
    "query", ["coverage=high", "coverage=", "coverage=0.8%25", "coverage=1,2"]
)
def test_a_coverage_that_is_not_a_number_is_a_422_naming_the_parameter(
    client: TestClient, house: dict[str, Any], query: str
) -> None:
    known = load_model().coverages[0]
    response = client.post(f"{PREDICT}?coverage={known}&{query}", json={"inputs": [house]})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["row"], error["field"]) == (None, "coverage")
    assert "valid number" in error["message"]


def test_ranges_go_with_explanations(client: TestClient, house: dict[str, Any]) -> None:
    highest = load_model().coverages[-1]
    body = client.post(
        f"{PREDICT}?explain=true&coverage={highest}", json={"inputs": [house]}
    ).json()
    expected = make_prediction(input_data=[house], explain=True, coverages=[highest])
    assert body["explanations"] == expected["explanations"]
    assert body["intervals"] == expected["intervals"]


def test_a_batch_scored_off_the_event_loop_is_refused_alike(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    response = client.post(f"{PREDICT}?coverage=0.5", json={"inputs": test_houses[:40]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "coverage"
