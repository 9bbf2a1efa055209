"""``GET /api/v1/model``: the model card, from the verified manifest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.app.dependencies import ModelServiceDep, SettingsDep
from api.app.schemas import ErrorResponse, ModelCard

router = APIRouter(prefix="/api/v1", tags=["model"])


def model_card(manifest: dict[str, Any], input_names: dict[str, str]) -> ModelCard:
    """The card for a manifest; ``input_names`` maps model names to the names clients send."""
    features = [
        {**feature, "input_field": input_names.get(feature["name"], feature["name"])}
        for feature in manifest.get("features", [])
    ]
    return ModelCard.model_validate({**manifest, "features": features})


@router.get(
    "/model",
    response_model=ModelCard,
    responses={503: {"model": ErrorResponse, "description": "the model is not loaded"}},
    summary="Model card",
)
def get_model_card(service: ModelServiceDep, settings: SettingsDep) -> ModelCard:
    """Version, metrics, hashes and training profile of every feature."""
    model = service.wait(settings.model_wait_seconds)
    renamed = {safe: raw for raw, safe in model.config.model.variables_to_rename.items()}
    return model_card(model.manifest, renamed)
