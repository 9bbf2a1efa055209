"""Who may see what: the API key and the access policy of every route.

With ``API_KEY`` unset every route is open. With it set, each route is one of
the :class:`Access` levels below (api/README.md, "Who may see what", is the
table; ``api/tests/test_access_policy.py`` tests each row):

- ``KEYED``: what clients sent or may send (``/predict``, ``/outcomes``,
  ``/drift``, whose report lists labels clients typed) always requires the key;
- ``METRICS`` and ``MODEL_CARD``: open by default (a scraper on a private
  network; the model's own description), keyed with ``METRICS_REQUIRE_KEY`` /
  ``MODEL_CARD_REQUIRE_KEY``;
- ``OPEN``: health and readiness (orchestrators probe them without secrets),
  the page and the docs.

A route declares its level with ``dependencies=[requires_key(Access...)]``.
FastAPI resolves dependencies only after reading and parsing the body, so a
route that takes a body (:class:`~api.app.core.json_body.StrictJSONRoute`) checks
the key itself before reading it: an unauthenticated client cannot make the
server parse anything.
"""

from __future__ import annotations

import secrets
from enum import Enum
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import RouteContext
from starlette.routing import BaseRoute

from api.app.core.exceptions import request_error
from api.app.core.settings import Settings

API_KEY_HEADER = "X-API-Key"

#: The OpenAPI security scheme (components) and requirement (operation) of a
#: keyed route; ``openapi.py`` puts the requirement on the routes that need
#: the key in the server's configuration.
SECURITY_SCHEMES: dict[str, Any] = {
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "Required only when the server is started with API_KEY set.",
    }
}
SECURITY_REQUIREMENT: list[dict[str, list[str]]] = [{"APIKeyHeader": []}]


class Access(Enum):
    """How a route is protected when ``API_KEY`` is set."""

    OPEN = "open"
    KEYED = "keyed"
    METRICS = "keyed with METRICS_REQUIRE_KEY"
    MODEL_CARD = "keyed with MODEL_CARD_REQUIRE_KEY"


def key_required(settings: Settings, access: Access) -> bool:
    """Whether a route of level ``access`` needs the key on this server."""
    if settings.api_key is None or access is Access.OPEN:
        return False
    if access is Access.METRICS:
        return settings.metrics_require_key
    if access is Access.MODEL_CARD:
        return settings.model_card_require_key
    return True


def check_api_key(request: Request, access: Access) -> None:
    """Refuse the request (401) when its route needs the key and the header does not match."""
    settings: Settings = request.app.state.settings
    if not key_required(settings, access):
        return
    assert settings.api_key is not None  # key_required says so
    supplied = request.headers.get(API_KEY_HEADER)
    expected = settings.api_key.get_secret_value().encode()
    if supplied is None:
        message = f"this endpoint needs an API key in the {API_KEY_HEADER} header"
    elif not secrets.compare_digest(supplied.encode(), expected):
        message = f"the API key in the {API_KEY_HEADER} header is not valid"
    else:
        return
    raise request_error(401, API_KEY_HEADER, message, {"WWW-Authenticate": API_KEY_HEADER})


class KeyRequirement:
    """The dependency a route declares its :class:`Access` level with."""

    def __init__(self, access: Access) -> None:
        self.access = access

    # async: FastAPI would run a plain `def` dependency in the threadpool.
    async def __call__(self, request: Request) -> None:
        check_api_key(request, self.access)

    def __repr__(self) -> str:
        return f"KeyRequirement({self.access})"


def requires_key(access: Access = Access.KEYED) -> Any:
    """``dependencies=[requires_key(...)]``: the route's access level."""
    return Depends(KeyRequirement(access))


def key_requirement(dependencies: list[Any]) -> KeyRequirement | None:
    """The :class:`KeyRequirement` among a route's ``dependencies``, if any."""
    for dependency in dependencies:
        if isinstance(getattr(dependency, "dependency", None), KeyRequirement):
            found: KeyRequirement = dependency.dependency
            return found
    return None


def route_access(route: BaseRoute | RouteContext) -> Access:
    """A route's access level (``OPEN`` unless it declares one); a
    ``RouteContext`` (``fastapi.routing.iter_route_contexts``) has the
    dependencies of the routers it was included through too."""
    requirement = key_requirement(list(getattr(route, "dependencies", None) or ()))
    if requirement is None:  # a StrictJSONRoute checks its own, before the body
        own = getattr(route, "original_route", route)
        requirement = getattr(own, "key_requirement", None)
    return requirement.access if requirement is not None else Access.OPEN
