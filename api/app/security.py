"""Optional API key for ``/predict``: required only when ``API_KEY`` is set."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Request

from api.app.config import Settings
from api.app.exceptions import request_error

API_KEY_HEADER = "X-API-Key"

#: The OpenAPI security scheme (components) and requirement (operation) of a
#: route that calls :func:`require_api_key`. Declared as data rather than as a
#: FastAPI ``Security`` dependency: resolving that per request cost as much as
#: pricing a house.
SECURITY_SCHEMES: dict[str, Any] = {
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "Required only when the server is started with API_KEY set.",
    }
}
SECURITY_REQUIREMENT: list[dict[str, list[str]]] = [{"APIKeyHeader": []}]


def require_api_key(request: Request) -> None:
    """Refuse the request (401) when ``API_KEY`` is set and the header does not match."""
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        return
    supplied = request.headers.get(API_KEY_HEADER)
    expected = settings.api_key.get_secret_value().encode()
    if supplied is None:
        message = f"this endpoint needs an API key in the {API_KEY_HEADER} header"
    elif not secrets.compare_digest(supplied.encode(), expected):
        message = f"the API key in the {API_KEY_HEADER} header is not valid"
    else:
        return
    raise request_error(401, API_KEY_HEADER, message, {"WWW-Authenticate": API_KEY_HEADER})
