"""The model card: what the loaded model is, how good it is, what it was fed.

Built from the artifact's manifest (written by training, verified at load);
unknown manifest keys are ignored so a newer manifest never breaks the card.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FileHash(_Lenient):
    file: str
    sha256: str


class FeatureProfile(_Lenient):
    """How a feature looked in the training data (for drift checks and clients)."""

    name: str = Field(description="the model's name for the feature")
    input_field: str = Field(description="the name clients send (Kaggle's spelling)")
    type: Literal["numerical", "categorical"]
    missing_share: float
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: dict[str, float] | None = Field(
        default=None, description="share of training houses per label"
    )


class ModelCard(_Lenient):
    name: str
    version: str
    trained_at: str
    artifact: FileHash
    config: FileHash
    training_data: dict[str, Any]
    metrics: dict[str, dict[str, float]] = Field(
        description="cross-validation, hold-out and training metrics (RMSLE, RMSE, MAE, R²)"
    )
    quality_gate: dict[str, Any]
    environment: dict[str, Any] = Field(description="Python and library versions of training")
    features: list[FeatureProfile]
