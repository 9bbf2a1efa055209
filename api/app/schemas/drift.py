"""``GET /api/v1/drift``: the drift summary (see ``regression_model.monitoring.drift``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MissingShare(_Lenient):
    training: float
    logged: float | None


class FeatureDrift(_Lenient):
    """One feature: logged houses against the training profile."""

    name: str = Field(description="the model's name for the feature")
    input_field: str = Field(description="the name clients send")
    type: Literal["numerical", "categorical"]
    missing_share: MissingShare
    psi: float | None = Field(description="population stability index over the training bins")
    ks_statistic: float | None = Field(
        description="numbers: largest gap between the training and logged distribution functions"
    )
    ks_p_value: float | None
    unseen_share: float | None = Field(description="labels: share of labels training never saw")
    unseen_labels: list[str] | None = Field(default=None, description="up to 20 of them")
    drifting: bool
    reasons: list[str] = Field(description="which thresholds were reached: psi, ks, unseen")


class PriceDrift(_Lenient):
    """Predicted prices against what the model predicted for its training houses."""

    training_median: float
    logged_median: float | None
    shift: float | None = Field(description="logged median / training median - 1")
    psi: float | None
    ks_statistic: float | None
    ks_p_value: float | None
    drifting: bool
    reasons: list[str]


class DriftThresholds(_Lenient):
    psi: float
    ks_statistic: float
    ks_p_value: float
    unseen_share: float
    price_shift: float
    min_records: int


class DriftReport(_Lenient):
    """Logged houses of the served model version compared with its training profile."""

    model_version: str
    generated_at: datetime = Field(
        description="when the report was computed (the response's Age header: seconds since)"
    )
    since: datetime | None = Field(
        description="only houses logged from then on (if given): the `since` asked for, in "
        "UTC, rounded down to a multiple of DRIFT_SINCE_ROUNDING_SECONDS"
    )
    window: int = Field(description="at most this many of the most recent houses are compared")
    houses: int = Field(description="priced houses compared")
    rejected: int = Field(description="logged houses that were rejected (not compared)")
    unreadable: int = Field(
        0,
        description="logged records skipped: a value their column cannot hold (inputs not "
        "JSON, a price not a number, a time not a time)",
    )
    enough_houses: bool = Field(
        description="false below thresholds.min_records: nothing is marked"
    )
    thresholds: DriftThresholds
    drifting: list[str] = Field(description="features marked as drifting")
    prices: PriceDrift
    features: list[FeatureDrift]
