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
from api.tests.helpers import Server, running_server
from regression_model.predict import make_prediction

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
