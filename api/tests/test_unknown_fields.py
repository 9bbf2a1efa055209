"""``/predict`` never drops a field silently: one the model does not know is
named back in ``warnings`` (or, in strict mode, is an error of its house),
and the course API's published spellings price exactly as the model's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.tests.conftest import make_client
from api.tests.helpers import wait_until_ready
from api.tests.test_metrics import scrape, value
from regression_model.predict import make_prediction

PREDICT = "/api/v1/predict"
TYPO = {
    "row": 0,
    "field": "GrLivArae",
    "message": "unknown field, ignored — did you mean GrLivArea?",
}


@pytest.fixture(scope="module")
def strict_client() -> Iterator[TestClient]:
    with make_client(strict_fields=True) as client:
        wait_until_ready(client)
        yield client


def misspelt(house: dict[str, Any]) -> dict[str, Any]:
    typo = {k: v for k, v in house.items() if k != "GrLivArea"}
    typo["GrLivArae"] = house["GrLivArea"]
    return typo


def test_a_misspelled_field_is_named_back(client: TestClient, house: dict[str, Any]) -> None:
    response = client.post(PREDICT, json={"inputs": [misspelt(house)]})
    assert response.status_code == 200
    body = response.json()
    assert body["warnings"] == [TYPO]
    assert body["errors"] is None
    assert body["predictions"] == make_prediction(input_data=[misspelt(house)])["predictions"]


def test_no_warnings_is_null(client: TestClient, house: dict[str, Any]) -> None:
    body = client.post(PREDICT, json={"inputs": [house]}).json()
    assert body["warnings"] is None


def test_strict_query_refuses_the_field_naming_it(
    client: TestClient, house: dict[str, Any]
) -> None:
    response = client.post(PREDICT + "?strict=true", json={"inputs": [house, misspelt(house)]})
    assert response.status_code == 200  # the other house is priced
    body = response.json()
    assert body["predictions"][0] is not None and body["predictions"][1] is None
    assert body["errors"] == [
        {
            "row": 1,
            "field": "GrLivArae",
            "message": "unknown field, refused (strict mode) — did you mean GrLivArea?",
        }
    ]
    assert body["warnings"] is None
    alone = client.post(PREDICT + "?strict=true", json={"inputs": [misspelt(house)]})
    assert alone.status_code == 422
    assert [(e["row"], e["field"]) for e in alone.json()["errors"]] == [(0, "GrLivArae")]


def test_the_strict_setting_and_its_override(
    strict_client: TestClient, house: dict[str, Any]
) -> None:
    refused = strict_client.post(PREDICT, json={"inputs": [misspelt(house)]})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "GrLivArae"
    allowed = strict_client.post(PREDICT + "?strict=false", json={"inputs": [misspelt(house)]})
    assert allowed.status_code == 200
    assert allowed.json()["warnings"] == [TYPO]


def test_a_rejected_batch_still_names_the_ignored_fields(client: TestClient) -> None:
    response = client.post(PREDICT, json={"inputs": [{"GrLivArae": 1500}]})
    assert response.status_code == 422
    body = response.json()
    assert [e["field"] for e in body["errors"]] == ["*"]
    assert body["warnings"] == [{**TYPO, "field": "GrLivArae"}]


def test_the_course_api_field_names_price_every_house_unchanged(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    # The course's published schema: FirstFlrSF, SecondFlrSF, ThreeSsnPortch.
    spelling = {"1stFlrSF": "FirstFlrSF", "2ndFlrSF": "SecondFlrSF", "3SsnPorch": "ThreeSsnPortch"}
    course = [{spelling.get(k, k): v for k, v in house.items()} for house in test_houses]
    assert sum(bool(h.get("ThreeSsnPortch")) for h in course) == 13
    body = client.post(PREDICT, json={"inputs": course}).json()
    assert body["warnings"] is None and body["errors"] is None
    assert body["predictions"] == make_prediction(input_data=test_houses)["predictions"]


def test_unknown_fields_are_counted(client: TestClient, house: dict[str, Any]) -> None:
    before = scrape(client)
    client.post(PREDICT, json={"inputs": [misspelt(house), {**house, "a": 1, "b": 2}]})
    client.post(PREDICT + "?strict=true", json={"inputs": [misspelt(house)]})
    after = scrape(client)

    def delta(outcome: str) -> float:
        name = "predict_unknown_fields_total"
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert (delta("ignored"), delta("refused")) == (3, 1)


def test_the_openapi_document_describes_warnings_and_strict(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"][PREDICT]["post"]
    assert "strict" in {parameter["name"] for parameter in operation["parameters"]}
    response = document["components"]["schemas"]["PredictionResponse"]
    assert "warnings" in response["properties"]


def test_keys_of_the_request_besides_inputs_are_named_too(
    client: TestClient, house: dict[str, Any]
) -> None:
    # A client that puts strict in the body must learn that it did nothing.
    response = client.post(PREDICT, json={"inputs": [house], "strict": True})
    assert response.status_code == 200
    assert response.json()["warnings"] == [
        {
            "row": None,
            "field": "strict",
            "message": "unknown field of the request, ignored; the request has only inputs "
            "(strict and explain are query parameters)",
        }
    ]
    refused = client.post(PREDICT + "?strict=true", json={"inputs": [house], "comment": "hi"})
    assert refused.status_code == 422
    assert [(e["row"], e["field"]) for e in refused.json()["errors"]] == [(None, "comment")]


def test_a_bad_value_under_an_alias_is_not_counted_as_an_unknown_field(
    client: TestClient, house: dict[str, Any]
) -> None:
    before = scrape(client)
    course = {k: v for k, v in house.items() if k != "3SsnPorch"}
    response = client.post(PREDICT, json={"inputs": [{**course, "ThreeSsnPortch": -1}]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "ThreeSsnPortch"
    after = scrape(client)
    name = "predict_unknown_fields_total"
    assert value(after, name, outcome="refused") == value(before, name, outcome="refused")
    failures = "predict_validation_failures_total"
    assert (
        value(after, failures, field="ThreeSsnPortch")
        - value(before, failures, field="ThreeSsnPortch")
        == 1
    )


def test_a_slip_of_a_label_is_priced_and_named_not_counted_as_a_field(
    client: TestClient, house: dict[str, Any]
) -> None:
    before = value(scrape(client), "predict_unknown_fields_total", outcome="ignored")
    answer = client.post("/api/v1/predict", json={"inputs": [{**house, "MSZoning": "rl"}]})
    assert answer.status_code == 200
    body = answer.json()
    assert (
        body["predictions"][0]
        == make_prediction(input_data=[{**house, "MSZoning": "rl"}])["predictions"][0]
    )
    ((row, field, message),) = [(w["row"], w["field"], w["message"]) for w in body["warnings"]]
    assert (row, field) == (0, "MSZoning") and "did you mean 'RL'?" in message
    assert value(scrape(client), "predict_unknown_fields_total", outcome="ignored") == before
