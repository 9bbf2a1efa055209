"""Who may see what: every row of api/README.md's "Who may see what" table,
with ``API_KEY`` unset and set (and the configurable rows keyed and open),
asked with no key, a wrong key and the right key; the OpenAPI document's
security requirement; and the key checked before the body is parsed."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.app.core.security import API_KEY_HEADER, Access, key_required, route_access
from api.tests.conftest import make_client
from api.tests.helpers import wait_until_ready

KEY = "s3cret-key"
README = Path(__file__).resolve().parents[1] / "README.md"

#: The decision for each endpoint (method, path as routed). The README's table
#: says the same (test_the_readme_table_is_this_policy).
POLICY: dict[tuple[str, str], Access] = {
    ("POST", "/api/v1/predict"): Access.KEYED,
    ("POST", "/api/v1/outcomes"): Access.KEYED,
    ("GET", "/api/v1/drift"): Access.KEYED,
    ("GET", "/api/v1/performance"): Access.KEYED,
    ("GET", "/metrics"): Access.METRICS,
    ("GET", "/api/v1/model"): Access.MODEL_CARD,
    ("GET", "/api/v1/model/report/"): Access.MODEL_CARD,
    ("GET", "/api/v1/model/report/{name}"): Access.MODEL_CARD,
    ("GET", "/api/v1/health"): Access.OPEN,
    ("GET", "/api/v1/ready"): Access.OPEN,
    ("GET", "/"): Access.OPEN,
    ("GET", "/docs"): Access.OPEN,
    ("GET", "/docs/oauth2-redirect"): Access.OPEN,
    ("GET", "/api/v1/openapi.json"): Access.OPEN,
}
#: A concrete request for the paths with parameters.
CONCRETE = {"/api/v1/model/report/{name}": "/api/v1/model/report/predicted_vs_actual.png"}

#: The servers: API_KEY unset; set; set with /metrics and the model card keyed too.
CONFIGS: dict[str, dict[str, Any]] = {
    "no API_KEY": {},
    "API_KEY": {"api_key": KEY},
    "API_KEY, METRICS_ and MODEL_CARD_REQUIRE_KEY": {
        "api_key": KEY,
        "metrics_require_key": True,
        "model_card_require_key": True,
    },
}


@pytest.fixture(scope="module")
def clients(
    tmp_path_factory: pytest.TempPathFactory, house: dict[str, Any]
) -> Iterator[dict[str, TestClient]]:
    """One started app per configuration, each with a prediction log holding one
    house (so /drift has something to report)."""
    started: dict[str, TestClient] = {}
    try:
        for name, overrides in CONFIGS.items():
            log = tmp_path_factory.mktemp("access") / "log.sqlite3"
            client = make_client(prediction_log_path=log, drift_cache_seconds=0, **overrides)
            client.__enter__()
            started[name] = client
            wait_until_ready(client)
            priced = client.post(
                "/api/v1/predict", json={"inputs": [house]}, headers={API_KEY_HEADER: KEY}
            )
            assert priced.status_code == 200, priced.text
            # The log's writer creates its table in the background: wait for
            # the house to be readable, so every server's /drift answers alike.
            deadline = time.monotonic() + 30
            while client.get("/api/v1/drift", headers={API_KEY_HEADER: KEY}).status_code != 200:
                assert time.monotonic() < deadline, "the logged house never became readable"
                time.sleep(0.1)
        yield started
    finally:
        for client in started.values():
            client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def house() -> dict[str, Any]:
    return {"Neighborhood": "NAmes", "OverallQual": 5, "GrLivArea": 896, "YearBuilt": 1961}


def _ask(
    client: TestClient, method: str, path: str, key: str | None, house: dict[str, Any]
) -> Any:
    headers = {} if key is None else {API_KEY_HEADER: key}
    url = CONCRETE.get(path, path)
    if method == "POST":
        return client.post(url, json={"inputs": [house]}, headers=headers)
    return client.get(url, headers=headers)


def test_every_route_has_a_decision(clients: dict[str, TestClient]) -> None:
    app = clients["no API_KEY"].app
    routed = {
        (method, route.path): route_access(route)
        for route in iter_route_contexts(app.routes)  # type: ignore[attr-defined]
        if route.methods is not None
        for method in route.methods - {"HEAD"}
    }
    # A new endpoint fails here until its row is decided (and written down).
    assert routed == POLICY


def test_the_readme_table_is_this_policy() -> None:
    text = README.read_text()
    section = text[text.index("## Who may see what") :]
    section = section[: section.index("\n## ", 3)]
    rows = re.findall(
        r"^\| `(GET|POST) ([^`]+)` \| (open|keyed|configurable: `\w+`) \|", section, re.M
    )
    written = {(method, path): level for method, path, level in rows}
    expected = {
        key: {
            Access.OPEN: "open",
            Access.KEYED: "keyed",
            Access.METRICS: "configurable: `METRICS_REQUIRE_KEY`",
            Access.MODEL_CARD: "configurable: `MODEL_CARD_REQUIRE_KEY`",
        }[access]
        for key, access in POLICY.items()
    }
    assert written == expected


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("key", [None, "wrong", KEY], ids=["no key", "wrong key", "right key"])
@pytest.mark.parametrize("endpoint", list(POLICY), ids=[f"{m} {p}" for m, p in POLICY])
def test_each_endpoint_answers_as_the_policy_says(
    clients: dict[str, TestClient],
    house: dict[str, Any],
    config: str,
    key: str | None,
    endpoint: tuple[str, str],
) -> None:
    method, path = endpoint
    client = clients[config]
    answer = _ask(client, method, path, key, house)
    keyed = key_required(client.app.state.settings, POLICY[method, path])  # type: ignore[attr-defined]
    if keyed and key != KEY:
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == API_KEY_HEADER
        body = answer.json()
        # /predict's 401 shape: one error about the header, the version and the request id.
        predict = _ask(client, "POST", "/api/v1/predict", key, house)
        assert predict.status_code == 401 and set(body) == set(predict.json())
        assert body["request_id"] == answer.headers["X-Request-ID"]
        [error] = body["errors"]
        assert (error["row"], error["field"]) == (None, API_KEY_HEADER)
        expected = "needs an API key" if key is None else "is not valid"
        assert expected in error["message"]
        assert KEY not in answer.text
        # Nothing of what the endpoint would have said leaks with the refusal.
        assert "unseen" not in answer.text and "features" not in answer.text
    else:
        # Let through: the same answer as from the server that asks for no key.
        reference = _ask(clients["no API_KEY"], method, path, None, house)
        assert answer.status_code == reference.status_code != 401, answer.text
        assert answer.headers["content-type"] == reference.headers["content-type"]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_the_openapi_document_says_which_operations_need_the_key(
    clients: dict[str, TestClient], config: str
) -> None:
    client = clients[config]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    document = client.get("/api/v1/openapi.json").json()
    secured = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"APIKeyHeader": []}]
    }
    in_schema = {
        (method, route.path)
        for route in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if isinstance(route.original_route, APIRoute)
        and route.include_in_schema
        and route.path is not None
        for method in route.methods or ()
    }
    expected = {row for row in in_schema if key_required(settings, POLICY[row])}
    assert secured == expected
    for method, path in expected:
        assert "401" in document["paths"][path][method.lower()]["responses"]
    if settings.api_key is None:
        assert "security" not in json.dumps(document["paths"])
        assert "securitySchemes" not in document.get("components", {})
    else:
        assert document["components"]["securitySchemes"]["APIKeyHeader"]["name"] == API_KEY_HEADER


def _server_timing(answer: Any) -> str:
    return str(answer.headers.get("Server-Timing", ""))


@pytest.mark.parametrize("key", [None, "wrong"], ids=["no key", "wrong key"])
@pytest.mark.parametrize(
    ("body", "content_type", "otherwise"),
    [
        (b'{"inputs": [', "application/json", 422),  # malformed
        (b'{"inputs": [{"LotArea": NaN}]}', "application/json", 422),
        (b"x" * 100, "text/plain", 415),
        (
            json.dumps({"inputs": [{"GrLivArea": 1500}] * 2001}).encode(),
            "application/json",
            413,
        ),
    ],
    ids=["malformed", "nan", "not_json", "too_many_rows"],
)
def test_the_key_is_checked_before_the_body(
    clients: dict[str, TestClient],
    key: str | None,
    body: bytes,
    content_type: str,
    otherwise: int,
) -> None:
    """Bodies that would be refused once read (422 malformed, 415, 413 for
    their rows) are refused for the key first, and never parsed: before the
    change the malformed ones got their 422 before the key was looked at, and
    the parser's stage timing (``parse`` in Server-Timing) is absent, while the
    same body with the right key is parsed."""
    client = clients["API_KEY"]
    headers = {"Content-Type": content_type, **({} if key is None else {API_KEY_HEADER: key})}
    refused = client.post("/api/v1/predict", content=body, headers=headers)
    assert refused.status_code == 401, refused.text
    assert "parse" not in _server_timing(refused)
    allowed = client.post(
        "/api/v1/predict", content=body, headers={**headers, API_KEY_HEADER: KEY}
    )
    assert allowed.status_code == otherwise, allowed.text
    if otherwise == 413:
        # Parsed, then refused for its rows (a body that fails to parse records
        # no timing: its 422 is the proof it was parsed).
        assert "parse" in _server_timing(allowed)
