"""``/docs`` works with no internet: every script, style sheet and icon the
page loads comes from the app itself (``/docs/assets/``, the pinned
fastapi-offline package's Swagger UI), and each is served. ReDoc is off.
(``test_browser.py`` renders the page in Chromium with the network closed.)"""

from __future__ import annotations

from html.parser import HTMLParser

from fastapi.testclient import TestClient

from api.app.main import DOCS_ASSETS


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
