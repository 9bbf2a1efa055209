"""Request and response models of the HTTP API."""

from api.app.schemas.errors import ErrorDetail, ErrorResponse, IgnoredFieldDetail
from api.app.schemas.health import Health, Readiness
from api.app.schemas.model_card import FeatureProfile, ModelCard
from api.app.schemas.predict import PredictionResponse, PredictRequest

__all__ = [
    "ErrorDetail",
    "ErrorResponse",
    "FeatureProfile",
    "Health",
    "IgnoredFieldDetail",
    "ModelCard",
    "PredictRequest",
    "PredictionResponse",
    "Readiness",
]
