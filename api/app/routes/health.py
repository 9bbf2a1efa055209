"""Liveness (``/health``) and readiness (``/ready``) for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api import __version__ as api_version
from api.app.core.dependencies import ModelServiceDep
from api.app.core.query_params import QueryCheckedRoute
from api.app.model_service import ModelState
from api.app.operations.shadow import Shadow
from api.app.schemas import Health, Readiness
from api.app.schemas.health import ChallengerStatus
from regression_model import __version__ as model_version

SERVICE_NAME = "house-prices-api"

router = APIRouter(prefix="/api/v1", tags=["operations"], route_class=QueryCheckedRoute)

_NOT_READY = {
    ModelState.LOADING: "the model is loading",
    ModelState.FAILED: "the model failed to load or to price the canary house; "
    "the service log says why",
}


@router.get("/health", response_model=Health, response_model_exclude_none=True, summary="Liveness")
async def health(request: Request) -> Health:
    """The process answers. Says nothing about the model: see `/ready`. With a
    challenger configured, whether it shadows (a challenger that failed never
    makes the service unready: the champion serves alone)."""
    shadow: Shadow | None = request.app.state.shadow
    challenger = (
        None
        if shadow is None
        else ChallengerStatus(state=shadow.state.value, version=shadow.label, detail=shadow.detail)
    )
    return Health(
        service=SERVICE_NAME,
        api_version=api_version,
        model_version=model_version,
        challenger=challenger,
    )


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready (yet)"}},
    summary="Readiness",
)
async def ready(service: ModelServiceDep) -> JSONResponse:
    """200 once the model is loaded, its artifact verified against the manifest
    and a real house priced; 503 before that, or if loading failed."""
    state = service.state
    body = Readiness(
        ready=state is ModelState.READY,
        status=state.value,
        model_version=model_version,
        detail=_NOT_READY.get(state),
    )
    status_code = 200 if body.ready else 503
    headers = None if body.ready else {"Retry-After": "5"}
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)
