"""``/docs`` works with no internet: every script, style sheet and icon the
page loads comes from the app itself (``/docs/assets/``, the pinned
fastapi-offline package's Swagger UI), and each is served. ReDoc is off.
(``test_browser.py`` renders the page in Chromium with the network closed.)
What the docs show of the price ranges: the field, the parameter and real
answers."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app.examples import example_houses
from api.app.main import DOCS_ASSETS
from api.tests.conftest import make_client
from regression_model import get_config, load_model
from regression_model.config.core import ARTIFACT_DIR_ENV_VAR


class _Links(HTMLParser):
    """The URLs a page loads: script ``src`` and link ``href``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def test_the_docs_page_loads_only_the_apps_own_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    links = _Links()
    links.feed(page.text)
    assert len(links.urls) >= 3, links.urls  # the bundle, its CSS, the icon
    assert all(url.startswith(DOCS_ASSETS + "/") for url in links.urls), links.urls
    # Nothing else the page's inline script could fetch from elsewhere.
    assert "cdn.jsdelivr.net" not in page.text and "https://" not in page.text
    assert "'/api/v1/openapi.json'" in page.text or '"/api/v1/openapi.json"' in page.text
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in links.urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        expected = next(kind for suffix, kind in kinds.items() if url.endswith(suffix))
        assert expected in asset.headers["content-type"], url
        assert len(asset.content) > 1000, url
    bundle = next(url for url in links.urls if url.endswith("swagger-ui-bundle.js"))
    assert b"SwaggerUIBundle" in client.get(bundle).content


def test_redoc_is_off(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def test_the_openapi_document_describes_the_price_ranges(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    components = document["components"]["schemas"]
    intervals = components["PredictionResponse"]["properties"]["intervals"]
    assert "intervals" in components["PredictionResponse"]["required"]
    assert intervals["items"]["anyOf"] == [
        {"type": "array", "items": {"$ref": "#/components/schemas/PriceRange"}},
        {"type": "null"},
    ]
    assert list(components["PriceRange"]["properties"]) == ["coverage", "low", "high"]
    operation = document["paths"]["/api/v1/predict"]["post"]
    [coverage] = [p for p in operation["parameters"] if p["name"] == "coverage"]
    assert coverage["in"] == "query" and not coverage["required"]
    array = coverage["schema"]["anyOf"][0]
    assert array["type"] == "array"
    assert array["items"] == {"type": "number", "enum": load_model().coverages}
    assert (
        "422" in operation["responses"]
        and "coverage" in operation["responses"]["422"]["description"]
    )


def test_the_documented_answers_are_the_models_own(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    answers = document["paths"]["/api/v1/predict"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["examples"]
    house = dict(example_houses()[0])
    every = client.post("/api/v1/predict", json={"inputs": [house]}).json()
    assert answers["one_house"]["value"] == every
    [price], [ranges] = every["predictions"], every["intervals"]
    assert [r["coverage"] for r in ranges] == load_model().coverages
    assert all(r["low"] < price < r["high"] for r in ranges)
    highest = load_model().coverages[-1]
    assert (
        answers["one_coverage"]["value"]
        == client.post(f"/api/v1/predict?coverage={highest}", json={"inputs": [house]}).json()
    )
    assert answers["one_coverage"]["value"]["intervals"] == [[ranges[-1]]]


def test_without_a_model_the_document_is_served_without_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ARTIFACT_DIR_ENV_VAR, str(tmp_path))  # an empty artifact directory
    with make_client() as client:
        deadline = time.monotonic() + 30
        while client.get("/api/v1/ready").json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = client.get("/api/v1/openapi.json")
        assert response.status_code == 200
        operation = response.json()["paths"]["/api/v1/predict"]["post"]
        assert "examples" not in operation["responses"]["200"]["content"]["application/json"]
        [coverage] = [p for p in operation["parameters"] if p["name"] == "coverage"]
        coverages = get_config().model.intervals.coverages  # what the model is trained with
        assert coverage["schema"]["anyOf"][0]["items"]["enum"] == coverages


def test_the_model_card_lists_the_coverages_a_request_may_ask_for(client: TestClient) -> None:
    card = client.get("/api/v1/model").json()
    manifest = load_model().manifest["intervals"]
    assert [level["coverage"] for level in card["intervals"]["levels"]] == load_model().coverages
    assert card["intervals"]["kind"] == manifest["kind"]
    for described, level in zip(card["intervals"]["levels"], manifest["levels"], strict=True):
        assert described["cv_coverage"] == level["cv_coverage"]
        assert described["median_width"] == level["median_width"]
        assert described["constant"]["mean_width"] == level["constant"]["mean_width"]
