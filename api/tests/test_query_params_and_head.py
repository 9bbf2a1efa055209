"""Query parameters and HEAD, on every endpoint of the app (read from its
routes, so a new endpoint is covered without a line here):

- a query parameter the endpoint does not declare is a 422 naming it, with
  the parameters the endpoint takes and the closest one, never ignored;
- a parameter given twice is a 422 naming it, unless it is declared as a list;
- ``HEAD`` answers wherever ``GET`` does, with the ``GET``'s status and
  headers and no body, the API key checked alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.types import Message, Scope

from api.app.core.query_params import QueryCheckedRoute, query_parameters
from api.app.core.security import API_KEY_HEADER
from api.app.core.settings import Settings
from api.app.main import create_app
from api.tests.conftest import make_client
from api.tests.helpers import wait_until_ready

KEY = "s3cret-key"
HOUSE = {"Neighborhood": "NAmes", "OverallQual": 5, "GrLivArea": 896, "YearBuilt": 1961}
#: A concrete request for the paths with parameters (any other: "x").
CONCRETE = {"/api/v1/model/report/{name}": "/api/v1/model/report/predicted_vs_actual.png"}
#: Valid values of declared parameters, where a test needs the request to succeed.
VALUES = {"coverage": ("0.8", "0.9"), "since": ("7d", "30d")}


def _endpoints() -> list[tuple[str, str, Any]]:
    """(method, path as routed, route) of every endpoint of the app."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    return sorted(
        (
            (method, route.path, route.original_route)
            for route in iter_route_contexts(app.routes)
            if route.methods is not None and route.path is not None
            for method in route.methods - {"HEAD"}
        ),
        key=lambda endpoint: endpoint[:2],
    )


ENDPOINTS = _endpoints()
IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]
GETS = [(path, route) for method, path, route in ENDPOINTS if method == "GET"]


def _declared(route: Any) -> tuple[frozenset[str], frozenset[str]]:
    parameters = query_parameters(route.dependant)
    return parameters.names, parameters.repeatable


#: (method, path, parameter, whether it may be repeated) of every declared query parameter.
PARAMETERS = [
    (method, path, name, name in _declared(route)[1])
    for method, path, route in ENDPOINTS
    for name in sorted(_declared(route)[0])
]
PARAMETER_IDS = [f"{method} {path} {name}" for method, path, name, _ in PARAMETERS]


def _url(path: str) -> str:
    return CONCRETE.get(path) or re.sub(r"\{[^}]+\}", "x", path)


def _ask(client: TestClient, method: str, path: str, query: str = "", **headers: str) -> Any:
    url = _url(path) + (f"?{query}" if query else "")
    if method == "POST":
        return client.post(url, json={"inputs": [HOUSE]}, headers=headers)
    return client.request(method, url, headers=headers)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    log = tmp_path_factory.mktemp("params") / "log.sqlite3"
    with make_client(prediction_log_path=log, drift_cache_seconds=0) as started:
        wait_until_ready(started)
        assert started.post("/api/v1/predict", json={"inputs": [HOUSE]}).status_code == 200
        yield started


@pytest.fixture(scope="module")
def keyed_client() -> Iterator[TestClient]:
    with make_client(api_key=KEY, metrics_require_key=True, model_card_require_key=True) as c:
        wait_until_ready(c)
        yield c


def _refusals(answer: Any) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["request_id"] == answer.headers["X-Request-ID"]
    return {error["field"]: error["message"] for error in body["errors"] if error["row"] is None}


def test_every_endpoint_checks_its_query_parameters() -> None:
    assert ENDPOINTS and all(isinstance(route, QueryCheckedRoute) for _, _, route in ENDPOINTS)


@pytest.mark.parametrize(("method", "path", "route"), ENDPOINTS, ids=IDS)
def test_an_unknown_query_parameter_is_refused(
    client: TestClient, method: str, path: str, route: Any
) -> None:
    names, _ = _declared(route)
    refused = _refusals(_ask(client, method, path, "sinse=7d&explian=true"))
    assert set(refused) == {"sinse", "explian"}
    for message in refused.values():
        assert message.startswith("not a parameter of this endpoint, refused")
        if names:
            assert message.endswith("it takes " + ", ".join(sorted(names)))
        else:
            assert message.endswith("it takes no query parameters")


def test_the_declared_parameters_are_read_from_the_routes() -> None:
    assert {(path, name, repeatable) for _, path, name, repeatable in PARAMETERS} >= {
        ("/api/v1/predict", "explain", False),
        ("/api/v1/predict", "coverage", True),
        ("/api/v1/drift", "since", False),
    }


@pytest.mark.parametrize(("method", "path", "name", "repeatable"), PARAMETERS, ids=PARAMETER_IDS)
def test_a_misspelt_parameter_is_refused_with_the_one_it_is_close_to(
    client: TestClient, method: str, path: str, name: str, repeatable: bool
) -> None:
    misspelt = name[1] + name[0] + name[2:]
    for sent in (misspelt, name.upper()):
        refused = _refusals(_ask(client, method, path, f"{sent}=1"))
        assert f"(did you mean {name}?)" in refused[sent]


@pytest.mark.parametrize(("method", "path", "name", "repeatable"), PARAMETERS, ids=PARAMETER_IDS)
def test_a_parameter_given_twice_is_refused_unless_it_is_a_list(
    client: TestClient, method: str, path: str, name: str, repeatable: bool
) -> None:
    first, second = VALUES.get(name, ("true", "false"))
    twice = _ask(client, method, path, f"{name}={first}&{name}={second}")
    thrice = _ask(client, method, path, "&".join([f"{name}={first}"] * 3))
    if repeatable:
        assert twice.status_code == thrice.status_code == 200, twice.text
    else:
        assert _refusals(twice) == {name: f"given twice: {name} takes one value, send it once"}
        assert _refusals(thrice)[name].startswith("given 3 times")


ODD_QUERIES = {
    "no name": "=1",
    "empty pairs": "&&",
    "not utf-8": "%ff%fe=1",
    "huge name": "a" * 20_000 + "=1",
    "2000 parameters": "&".join(f"p{i}=1" for i in range(2000)),
    "nul": "%00=x",
}


@pytest.mark.parametrize("query", list(ODD_QUERIES.values()), ids=list(ODD_QUERIES))
def test_odd_query_strings_are_client_errors(client: TestClient, query: str) -> None:
    answer = client.get(f"/api/v1/health?{query}")
    if query == "&&":  # no parameter at all
        assert answer.status_code == 200
        return
    refused = _refusals(answer)
    assert 1 <= len(refused) <= 20
    assert all(len(field) <= 100 and len(message) < 500 for field, message in refused.items())


def test_known_parameters_once_are_answered(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/predict?explain=true&strict=false&coverage=0.8", json={"inputs": [HOUSE]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["explanations"]
    assert client.get("/api/v1/drift?since=7d").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/drift", "/metrics", "/api/v1/model"])
def test_without_the_key_the_refusal_is_the_keys(keyed_client: TestClient, path: str) -> None:
    # An unauthenticated client learns nothing of the endpoint's parameters.
    answer = keyed_client.get(f"{path}?sinse=7d")
    assert answer.status_code == 401
    assert "since" not in answer.text
    assert set(_refusals(keyed_client.get(f"{path}?sinse=7d", headers={API_KEY_HEADER: KEY})))


def _compare_head_with_get(client: TestClient, url: str, **headers: str) -> None:
    before = client.get(url, headers=headers)
    head = client.head(url, headers=headers)
    after = client.get(url, headers=headers)
    assert head.status_code == before.status_code == after.status_code, head.headers
    assert head.content == b""
    assert set(head.headers) == set(before.headers)
    # A body made afresh each time (the metrics text) may change its length
    # between the GETs and back: its length is compared only when it is stable.
    body_stable = before.content == after.content
    for name, value in before.headers.items():
        # Values that change from one GET to the next (the request id, the
        # page's nonce, a growing metrics text) are not compared.
        if after.headers.get(name) == value and (body_stable or name != "content-length"):
            assert head.headers[name] == value, name


@pytest.mark.parametrize(("path", "route"), GETS, ids=[path for path, _ in GETS])
def test_head_answers_as_get_without_the_body(client: TestClient, path: str, route: Any) -> None:
    _compare_head_with_get(client, _url(path))
    _compare_head_with_get(client, _url(path) + "?explian=1")


@pytest.mark.parametrize(("path", "route"), GETS, ids=[path for path, _ in GETS])
@pytest.mark.parametrize("key", [None, "wrong", KEY], ids=["no key", "wrong key", "right key"])
def test_head_checks_the_key_as_get(
    keyed_client: TestClient, path: str, route: Any, key: str | None
) -> None:
    headers = {} if key is None else {API_KEY_HEADER: key}
    _compare_head_with_get(keyed_client, _url(path), **headers)


def test_head_where_get_is_not_answered(client: TestClient) -> None:
    _compare_head_with_get(client, "/api/v1/predict")  # 405, Allow: POST
    _compare_head_with_get(client, "/api/v1/no-such-thing")  # 404
    assert client.head("/api/v1/predict").headers["Allow"] == "POST"


def test_head_sends_no_body_and_counts_as_head(client: TestClient, tmp_path: Path) -> None:
    """At the ASGI interface (the test client drops HEAD bodies itself): the
    server is sent the GET's headers and an empty body, and the scope says
    HEAD once the response starts."""
    messages: list[Message] = []
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "HEAD",
        "scheme": "http",
        "path": "/api/v1/model",
        "raw_path": b"/api/v1/model",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    methods_seen: list[str] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        methods_seen.append(scope["method"])
        messages.append(message)

    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)
    start, *bodies = messages
    assert start["status"] == 200
    length = dict(start["headers"])[b"content-length"]
    assert int(length) == len(client.get("/api/v1/model").content)
    assert [body["body"] for body in bodies] == [b""] and not bodies[-1].get("more_body")
    assert methods_seen == ["HEAD"] * len(messages) and scope["method"] == "HEAD"
