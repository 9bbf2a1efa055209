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


class TrimmedHouses(_Lenient):
    threshold: float = Field(description="in robust standard deviations of the residuals")
    residual_scale: float = Field(description="that standard deviation, in log-price")
    ids: list[int] = Field(description="Ids of the houses left out of the second fit")


class Evaluation(_Lenient):
    """How the cross-validated metrics were measured, and the penalty search."""

    protocol: str
    repeats: int
    folds: int
    rmsle_per_repeat: list[float]
    alphas_chosen: dict[str, int] = Field(description="how many outer folds chose each penalty")
    alpha: float = Field(description="the shipped model's penalty, chosen on all houses")
    alpha_tuning_rmse: dict[str, float]
    trimmed: TrimmedHouses


class BaselineMetrics(_Lenient):
    rmsle_mean: float
    rmsle_std: float
    rmse_mean: float
    mae_mean: float
    r2_mean: float


class Baselines(_Lenient):
    """Simpler models on the same folds; the model must beat the best by a margin."""

    models: dict[str, BaselineMetrics]
    best: str
    model_rmsle_mean: float
    improvement_over_best: float = Field(description="1 - model RMSLE / best baseline RMSLE")
    min_improvement: float
    passed: bool


class SliceMetrics(_Lenient):
    label: str
    houses: int
    rmsle: float
    bias: float = Field(description="mean log(predicted) - log(actual): above 0, priced high")


class WorstSlice(SliceMetrics):
    slice: str


class Slices(_Lenient):
    """Cross-validated error of the houses of each slice."""

    min_houses: int = Field(description="slices with fewer houses are not judged")
    max_rmsle: float
    worst: WorstSlice
    passed: bool
    by: dict[str, list[SliceMetrics]]


class RangeWidth(_Lenient):
    cv_coverage: float = Field(description="share of prices within their range, in CV")
    mean_width: float = Field(description="mean high - low, in dollars")
    median_width: float


class RangeLevel(RangeWidth):
    """The price ranges at one coverage, judged in cross-validation."""

    coverage: float = Field(description="the share of prices the range is meant to hold")
    width_percentiles: dict[str, float] = Field(description="percentiles of high - low")
    constant: RangeWidth = Field(
        description="ranges of one width in log-price for every house, for comparison"
    )


class PriceRanges(_Lenient):
    """How each priced house's ranges are made, and how well they hold the
    prices of houses the model did not see (`intervals` of a prediction)."""

    method: str
    kind: Literal["adaptive", "constant"] = Field(
        description="adaptive: each house's width follows how hard it is to price"
    )
    why: str = Field(description="why this kind was chosen")
    levels: list[RangeLevel] = Field(description="one per coverage a request may ask for")
    quality_gate: dict[str, Any]


class PlotLink(_Lenient):
    name: str
    title: str
    url: str


class ReportLinks(_Lenient):
    html: str = Field(description="the report page")
    plots: list[PlotLink]


class ModelCard(_Lenient):
    name: str
    version: str
    trained_at: str
    artifact: FileHash
    config: FileHash
    training_data: dict[str, Any]
    metrics: dict[str, dict[str, float]] = Field(
        description="repeated nested cross-validation and training metrics (RMSLE, RMSE, MAE, R²)"
    )
    evaluation: Evaluation | None = None
    baselines: Baselines | None = None
    slices: Slices | None = None
    quality_gate: dict[str, Any]
    intervals: PriceRanges | None = Field(
        default=None, description="the price ranges: their coverages, widths and calibration"
    )
    environment: dict[str, Any] = Field(description="Python and library versions of training")
    features: list[FeatureProfile]
    report: ReportLinks | None = Field(
        default=None, description="the report and its plots, when one was written for this model"
    )
