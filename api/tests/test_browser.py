"""The page in a real browser: Debian's Chromium, driven headless by Playwright,
against a real server. Skips when no Chromium (or no Playwright) is installed,
unless REQUIRE_BROWSER=1 (CI), where that is a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app.examples import example_houses
from api.tests.helpers import running_server
from regression_model.predict import make_prediction
from regression_model.scoring.report_files import PLOTS
from testkit import Server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or next(
        (found for name in CANDIDATES if (found := shutil.which(name))), None
    )
    if path is None:
        message = "no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Server]]:
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRED:
            pytest.fail("the playwright package is not installed")
        pytest.skip("the playwright package is not installed")
    log = tmp_path_factory.mktemp("browser") / "server.log"
    with running_server(log) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page()
            yield page, server
        finally:
            browser.close()


def test_the_form_prices_an_edited_house(
    browser_page: tuple[Any, Server], tmp_path_factory: pytest.TempPathFactory
) -> None:
    page, server = browser_page
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/")
    assert "Ames house prices" in page.title()
    assert page.input_value("#field-GrLivArea") == str(example_houses()[0]["GrLivArea"])

    page.fill("#field-GrLivArea", "2000")
    page.fill("#field-OverallQual", "8")
    page.select_option("#field-KitchenQual", "Gd")
    page.click("#price-button")
    page.wait_for_selector("#price[data-price]", timeout=30_000)

    shown = page.text_content("#price") or ""
    raw_price = float(page.get_attribute("#price", "data-price") or "nan")
    house = {**example_houses()[0], "GrLivArea": 2000, "OverallQual": 8, "KitchenQual": "Gd"}
    expected = make_prediction(input_data=[house])["predictions"][0]
    assert raw_price == expected  # the browser got exactly the package's price
    assert shown == f"${expected:,.0f}"
    # beside it, its ranges (test_page.py runs their formatter on its own)
    ranges = make_prediction(input_data=[house])["intervals"][0]
    assert ranges is not None
    shown_ranges = page.text_content("#price-range") or ""
    for price_range in ranges:
        low, high = price_range["low"], price_range["high"]
        assert f"${low:,.0f}\N{EN DASH}${high:,.0f}" in shown_ranges, shown_ranges
    # Why this price: the top factors, largest first, as the package explains them
    page.wait_for_selector("#factors li", timeout=10_000)
    shown_factors = page.eval_on_selector_all(
        "#factors li", "items => items.map(item => item.dataset.variable)"
    )
    explained = make_prediction(input_data=[house], explain=True)["explanations"][0]
    assert explained is not None
    assert shown_factors == [f["variable"] for f in explained["factors"][:6]]
    assert not console_errors, console_errors  # e.g. no CSP violations
    screenshot = Path(tmp_path_factory.getbasetemp()) / "page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000


def test_the_form_shows_the_errors_of_an_impossible_house(
    browser_page: tuple[Any, Server],
) -> None:
    page, server = browser_page
    page.goto(server.url + "/")
    page.fill("#field-OverallQual", "42")
    page.click("#price-button")
    page.wait_for_selector("#errors li", timeout=30_000)
    assert page.text_content("#price") == "Cannot price this house"
    errors = page.text_content("#errors") or ""
    assert "OverallQual: 42 is out of range" in errors


def test_the_model_report_renders_with_every_plot(
    browser_page: tuple[Any, Server], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """From the page's link to the report the API serves: every plot loads
    (no broken image, no CSP violation), and a full-page screenshot is taken."""
    page, server = browser_page
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/")
    page.click("#report-link")
    page.wait_for_load_state("load")
    assert page.url == server.url + "/api/v1/model/report/"
    assert page.title().startswith("Model report")
    images = page.eval_on_selector_all(
        "img", "images => images.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
    )
    assert [src for src, _, _ in images] == list(PLOTS)
    assert all(complete and width >= 600 for _, complete, width in images), images
    worst = page.text_content("tr.worst") or ""
    assert worst.strip(), "the worst slice is highlighted"
    assert not console_errors, console_errors
    screenshot = Path(tmp_path_factory.getbasetemp()) / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 100_000
    assert page.evaluate("document.documentElement.scrollHeight") > 3000  # the whole report


def test_the_docs_render_with_the_network_closed(browser_page: tuple[Any, Server]) -> None:
    """Swagger UI renders the API from the app's own assets: every request the
    page makes to anywhere but the server is refused (an air-gapped network),
    and none is even attempted."""
    page, server = browser_page
    context = page.context.browser.new_context()
    docs = context.new_page()
    elsewhere: list[str] = []

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    try:
        docs.route("**/*", only_the_server)
        docs.goto(server.url + "/docs")
        docs.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "Ames house prices API" in (docs.text_content(".swagger-ui .info .title") or "")
        # The operations are listed, read from /api/v1/openapi.json.
        docs.wait_for_selector(
            "#operations-predictions-predict_api_v1_predict_post", timeout=30_000
        )
        assert docs.locator(".opblock").count() >= 5
        assert elsewhere == []
    finally:
        context.close()
