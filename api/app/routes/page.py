"""``GET /``: the page for people (see ``home_page.py``)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.app.core.dependencies import ModelServiceDep, SettingsDep
from api.app.core.exceptions import ModelUnavailableError
from api.app.core.query_params import QueryCheckedRoute
from api.app.core.security import Access, key_required
from api.app.home_page import CONTENT_SECURITY_POLICY, render_home_page

router = APIRouter(include_in_schema=False, route_class=QueryCheckedRoute)

#: A person waits at most this long for a model that is still loading.
_PAGE_MODEL_WAIT_SECONDS = 5.0


@router.get("/", response_class=HTMLResponse)
def home(service: ModelServiceDep, settings: SettingsDep) -> HTMLResponse:
    try:
        model = service.wait(min(settings.model_wait_seconds, _PAGE_MODEL_WAIT_SECONDS))
    except ModelUnavailableError:
        model = None
    nonce = secrets.token_urlsafe(16)
    page = render_home_page(
        model,
        api_key_required=settings.api_key is not None,
        nonce=nonce,
        report=service.report if model is not None else None,
        show_model_card=not key_required(settings, Access.MODEL_CARD),
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY.format(nonce=nonce),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
