"""What handlers need from the app: settings and the model service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.app.core.settings import Settings
from api.app.model_service import ModelService


# async: FastAPI would run a plain `def` dependency in the threadpool, a
# thread hop per request for an attribute read.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_model_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.model_service
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelServiceDep = Annotated[ModelService, Depends(get_model_service)]
