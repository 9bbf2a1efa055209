"""``GET /api/v1/performance``: realised performance (see
``regression_model.monitoring.performance``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal[
    "too few outcomes", "worse than cross-validation", "consistent with cross-validation"
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RangeCoverage(_Lenient):
    """How often the sale price fell inside the price range given at one coverage."""

    coverage: float = Field(description="the range's nominal coverage, such as 0.8")
    outcomes: int = Field(description="matched sales whose logged price had this range")
    realised: float | None = Field(
        description="share of those sale prices inside the range (None: no sale yet)"
    )
    cv_coverage: float | None = Field(description="the share in cross-validation")
    verdict: Literal["too few outcomes", "below nominal", "at nominal"]


class CrossValidated(_Lenient):
    """The manifest's cross-validated figures for the same houses (None: not recorded)."""

    rmsle: float | None
    bias: float | None = None
    rmsle_std: float | None = None
    mae: float | None = None


class Figures(_Lenient):
    """Realised errors of a group of matched sales, beside cross-validation."""

    outcomes: int = Field(description="matched sales")
    rmsle: float | None = Field(description="root mean square of ln(predicted) - ln(sold)")
    bias: float | None = Field(description="mean of ln(predicted) - ln(sold): > 0 priced too high")
    mae: float | None = Field(description="mean absolute error, dollars")
    cross_validation: CrossValidated
    coverage: list[RangeCoverage]
    verdict: Verdict


class SliceFigures(Figures):
    label: str


class SliceName(_Lenient):
    slice: str
    label: str


class LargeError(_Lenient):
    """A sale among those the model missed most."""

    reference: str = Field(description="the outcome: request:<request id>:<row> or key:<key>")
    sale_date: date
    price: float = Field(description="the price the model gave, dollars")
    sale_price: float
    log_error: float = Field(description="ln(price) - ln(sale_price)")


class PerformanceThresholds(_Lenient):
    """config.yml's ``performance`` section."""

    min_outcomes: int
    rmsle_margin: float
    coverage_margin: float


class PerformanceReport(_Lenient):
    """The served model version's logged prices against the sale prices that came back."""

    model_version: str
    generated_at: datetime = Field(
        description="when the report was computed (the response's Age header: seconds since)"
    )
    since: date | None = Field(description="only sales from this day on (UTC), if asked")
    max_outcomes: int = Field(description="at most this many of the most recent sales are read")
    outcomes: int = Field(description="outcomes read")
    matched: int = Field(description="outcomes matched to a price this model version gave")
    unmatched: int
    unreadable: int = Field(
        0,
        description="records skipped (outcomes or logged houses): a value their column "
        "cannot hold (a sale date not a date, inputs not JSON, a price not a number)",
    )
    enough_outcomes: bool = Field(
        description="false below thresholds.min_outcomes: nothing is judged"
    )
    thresholds: PerformanceThresholds
    verdict: Verdict
    overall: Figures
    worse_slices: list[SliceName] = Field(
        description="slices judged worse than their cross-validated error"
    )
    slices: dict[str, list[SliceFigures]] = Field(
        description="by each slice_vars of the config, decade built and predicted price band"
    )
    largest_errors: list[LargeError] = Field(
        description="the 10 matched sales of largest |log error|, largest first: one sale can "
        "move the RMSLE of a few hundred by a third"
    )
