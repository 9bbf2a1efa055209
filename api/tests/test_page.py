"""GET /: the page for people (in-process; the browser test submits the form)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app.home_page import KEY_FIELDS
from api.app.schemas.predict import house_schema
from regression_model import __version__ as model_version
from regression_model import load_model


def test_page_describes_the_model_and_links_the_docs(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Ames house prices" in page and model_version in page
    cv = load_model().manifest["metrics"]["cross_validation"]
    assert f"{cv['rmsle_mean']:.4f}" in page
    assert 'href="/docs"' in page


def test_form_is_prefilled_with_the_first_test_house_and_constrained_by_the_schema(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    page = client.get("/").text
    base = re.search(
        r'<script type="application/json" id="base-house"[^>]*>(.*?)</script>', page, re.S
    )
    assert base is not None
    first = {k: v for k, v in test_houses[0].items() if v is not None}
    assert json.loads(base.group(1)) == first
    schema = house_schema()["properties"]
    for name, _ in KEY_FIELDS:
        control = re.search(rf'<(input|select) id="field-{name}"[^>]*>', page)
        assert control is not None, name
        limits = schema[name]["anyOf"][0]
        if "maximum" in limits:
            assert f'max="{limits["maximum"]:g}"' in control.group(0), name
    assert '<option value="Ex">Ex</option>' in page  # KitchenQual codes from the schema
    neighbourhood = re.search(r'<select id="field-Neighborhood".*?</select>', page, re.S)
    assert neighbourhood is not None
    assert f'<option value="{first["Neighborhood"]}" selected>' in neighbourhood.group(0)
    assert neighbourhood.group(0).count("<option") > 20  # training profile's labels


def test_page_scripts_carry_the_csp_nonce(client: TestClient) -> None:
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    scripts = re.findall(r"<(?:script|style)[^>]*>", response.text)
    assert scripts and all(f'nonce="{html.escape(nonce.group(1))}"' in tag for tag in scripts)
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert client.get("/").headers["Content-Security-Policy"] != policy  # fresh per request


def test_the_page_keeps_the_model_card_behind_the_key_when_it_is(client: TestClient) -> None:
    from api.tests.conftest import make_client
    from api.tests.helpers import wait_until_ready

    cv = load_model().manifest["metrics"]["cross_validation"]
    figure = f"{cv['rmsle_mean']:.4f}"
    assert figure in client.get("/").text
    with make_client(api_key="k", model_card_require_key=True) as keyed:
        wait_until_ready(keyed)
        page = keyed.get("/")
        assert page.status_code == 200
        assert figure not in page.text
        assert "the model card needs the API key" in page.text


def _range_script(page: str) -> str:
    script = re.search(r'<script nonce="[^"]*" id="range-format">(.*?)</script>', page, re.S)
    assert script is not None
    return script.group(1)


def test_the_form_shows_the_price_ranges_beside_the_price(client: TestClient) -> None:
    page = client.get("/").text
    assert re.search(r'<output id="price"[^>]*></output>\s*<span id="price-range"', page)
    # the answer's ranges go through the page's own formatter into that span
    assert "rangeOutput.textContent = rangesText(body.intervals" in page
    assert "function rangesText(ranges)" in _range_script(page)


def test_the_page_writes_each_range_as_a_person_reads_it(
    client: TestClient, test_houses: list[dict[str, Any]]
) -> None:
    """The page's formatter, run as the page has it (in node: the browser test
    needs Chromium), on the API's answer for real houses."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the page's script")
    body = client.post("/api/v1/predict", json={"inputs": test_houses[:3]}).json()
    program = (
        _range_script(client.get("/").text)
        + f"\nfor (const ranges of {json.dumps(body['intervals'] + [None, []])})"
        + " console.log(JSON.stringify(rangesText(ranges)));"
    )
    shown = subprocess.run(
        [node, "-e", program], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    expected = [
        "("
        + "; ".join(
            f"{r['coverage'] * 100:g} %: ${r['low']:,.0f}\N{EN DASH}${r['high']:,.0f}"
            for r in ranges
        )
        + ")"
        for ranges in body["intervals"]
    ]
    assert [json.loads(line) for line in shown] == [*expected, "", ""]
    assert expected[0].startswith("(80 %: $") and "; 90 %: $" in expected[0]


def test_the_page_says_how_well_the_ranges_held_in_cross_validation(client: TestClient) -> None:
    page = client.get("/").text
    for level in load_model().manifest["intervals"]["levels"]:
        assert f"{level['coverage']:.0%} price range, CV" in page
        assert f"held {level['cv_coverage']:.1%} of prices" in page
