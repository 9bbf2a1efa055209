"""Optional API key for ``/predict``: required only when ``API_KEY`` is set."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from api.app.config import Settings
from api.app.exceptions import request_error

API_KEY_HEADER = "X-API-Key"

_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required only when the server is started with API_KEY set.",
)


async def require_api_key(
    request: Request, supplied: Annotated[str | None, Security(_scheme)]
) -> None:
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    if supplied is None:
        message = f"this endpoint needs an API key in the {API_KEY_HEADER} header"
    elif not secrets.compare_digest(supplied.encode(), expected):
        message = f"the API key in the {API_KEY_HEADER} header is not valid"
    else:
        return
    raise request_error(401, API_KEY_HEADER, message, {"WWW-Authenticate": API_KEY_HEADER})
