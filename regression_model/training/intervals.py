"""Price ranges by conformal prediction, calibrated on the out-of-fold log
errors that cross-validation already produces, and judged the same way.

- **Conformal.** crepes' ``ConformalPredictiveSystem`` turns the out-of-fold
  log errors (``log(sale price) - log(price)``, each house once per repeat,
  from a model that never saw it) into quantiles: the range at coverage
  ``c`` runs from the ``(1 - c) / 2`` to the ``(1 + c) / 2`` quantile, so it
  may be lopsided where the errors are. No normal-error assumption.
- **Adaptive.** Normalised by each house's difficulty
  (``training/difficulty.py``): the errors are divided by the house's
  scale before their quantiles are taken, and a house's range is its scale
  times them. The constant range (every scale 1) is judged beside it, and the
  adaptive one is kept only if it is narrower on average at every coverage.
- **Judged honestly.** Within each repeat the houses are split into the
  same folds as the model's evaluation; each fold's ranges come from a
  difficulty model and quantiles fitted on the other folds' errors only.
  Coverage and width are measured on those ranges, overall and by slice.
- **Gated.** Overall coverage within ``max_coverage_gap`` of nominal; no
  slice of at least ``min_slice_houses`` houses (those known when a house is
  priced: the slice variables, decade built, the band of the predicted
  price) more than ``max_slice_shortfall`` below nominal beyond chance (a
  one-sided binomial test at ``slice_significance`` over the number of
  slices tested). The band of the *sale* price is reported, not gated: it
  selects houses by their error (a house sold far below what houses like it
  fetch lands in a low band because its sale surprised any model), so no
  range built from what is known at pricing time can be promised on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from crepes import ConformalPredictiveSystem
from scipy.stats import binomtest

from regression_model.config.core import ModelConfig
from regression_model.scoring.intervals import IntervalScorer
from regression_model.scoring.tables import PriceIntervals
from regression_model.scoring.validation import validate_inputs
from regression_model.training.compile_rules import CompileError
from regression_model.training.compiler import TOLERANCE
from regression_model.training.difficulty import Difficulty
from regression_model.training.evaluation import (
    PRICE_SLICE,
    repeated_splits,
    slice_labels,
)

#: The slice of houses by the band of their predicted price.
PREDICTED_PRICE_SLICE = "predicted price band"
#: Nominal coverages at which the calibration plot checks the ranges.
CALIBRATION_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
#: Percentiles of the range widths the manifest records.
WIDTH_PERCENTILES = (5, 10, 25, 50, 75, 90, 95)
METHOD = (
    "split conformal predictive system (crepes) on the out-of-fold log errors of the "
    "repeated cross-validation, normalised by a ridge model of each house's error size"
)


class Ranges:
    """Ranges fitted on some houses' log errors: adaptive (a difficulty model
    sets each house's scale) or constant (every scale 1)."""

    def __init__(
        self, config: ModelConfig, X: pd.DataFrame, residuals: np.ndarray, adaptive: bool
    ) -> None:
        self.difficulty = Difficulty(config, X, residuals) if adaptive else None
        self.conformal = ConformalPredictiveSystem().fit(residuals, sigmas=self.scales(X))

    def scales(self, X: pd.DataFrame) -> np.ndarray | None:
        if self.difficulty is None:
            return None
        scales: np.ndarray = np.exp(self.difficulty.log_scales(X))
        return scales

    def quantiles(self, coverage: float) -> tuple[float, float]:
        """The (low, high) quantiles of the scaled log error at ``coverage``."""
        tail = 100 * (1 - coverage) / 2
        bounds = self.conformal.predict(
            np.zeros(1),
            sigmas=None if self.difficulty is None else np.ones(1),
            lower_percentiles=[tail],
            higher_percentiles=[100 - tail],
        )
        low, high = (float(q) for q in np.ravel(bounds))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"too few houses to calibrate a range at coverage {coverage}")
        return low, high


@dataclass(frozen=True)
class Judged:
    """Ranges of every house in cross-validation, at each coverage asked:
    (repeats, houses) arrays of whether the sale price is inside, and the
    width in dollars."""

    covered: dict[float, np.ndarray]
    widths: dict[float, np.ndarray]

    def summary(self, coverage: float) -> dict[str, float]:
        widths = self.widths[coverage]
        return {
            "cv_coverage": float(self.covered[coverage].mean()),
            "mean_width": float(widths.mean()),
            "median_width": float(np.median(widths)),
        }


def judge(
    config: ModelConfig,
    X: pd.DataFrame,
    residuals: np.ndarray,
    log_prices: np.ndarray,
    *,
    adaptive: bool,
    coverages: list[float],
) -> Judged:
    """Each house's range at each coverage, fitted without its fold's houses."""
    covered = {c: np.zeros(residuals.shape, dtype=bool) for c in coverages}
    widths = {c: np.zeros(residuals.shape) for c in coverages}
    for split in repeated_splits(config, len(X)):
        r, train, test = split.repeat, split.train, split.test
        ranges = Ranges(config, X.iloc[train], residuals[r, train], adaptive)
        scales = ranges.scales(X.iloc[test])
        scale = np.ones(len(test)) if scales is None else scales
        for coverage in coverages:
            low, high = ranges.quantiles(coverage)
            error = residuals[r, test]
            covered[coverage][r, test] = (error >= scale * low) & (error <= scale * high)
            price = np.exp(log_prices[r, test])
            widths[coverage][r, test] = price * (np.exp(scale * high) - np.exp(scale * low))
    return Judged(covered, widths)


@dataclass(frozen=True)
class Calibration:
    intervals: PriceIntervals
    report: dict[str, Any]
    problems: list[str]


def calibrate(
    config: ModelConfig, X: pd.DataFrame, y: pd.Series, predictions: np.ndarray, version: str
) -> Calibration:
    """The price ranges for the artifact, their cross-validated report, and
    what fails their quality gates (nothing: they pass)."""
    settings = config.intervals
    log_prices = np.log(predictions)
    residuals = np.log(np.asarray(y, dtype="float64"))[None, :] - log_prices
    asked = sorted({*settings.coverages, *CALIBRATION_GRID})
    constant = judge(config, X, residuals, log_prices, adaptive=False, coverages=asked)
    adaptive = (
        judge(config, X, residuals, log_prices, adaptive=True, coverages=asked)
        if settings.adaptive
        else None
    )
    narrower = adaptive is not None and all(
        adaptive.summary(c)["mean_width"] < constant.summary(c)["mean_width"]
        for c in settings.coverages
    )
    chosen = adaptive if narrower and adaptive is not None else constant
    if adaptive is None:
        why = "no difficulty variables are configured: every range has the same log width"
    elif narrower:
        why = "narrower on average than the constant range at every coverage, in cross-validation"
    else:
        why = (
            "the adaptive range was not narrower on average than the constant one at every "
            "coverage in cross-validation, so the constant range is used"
        )
    # Fitted on every house's errors, all repeats pooled.
    repeats = predictions.shape[0]
    final = Ranges(
        config, pd.concat([X] * repeats), residuals.ravel(), adaptive=chosen is adaptive
    )
    intervals = PriceIntervals(
        coverages=list(settings.coverages),
        quantiles=[final.quantiles(c) for c in settings.coverages],
        difficulty=None if final.difficulty is None else final.difficulty.tables(version),
    )
    slices = coverage_by_slice(config, X, y, log_prices, chosen)
    problems = gate_problems(config, chosen, slices)
    compiled_difference = check_compiled(config, intervals, final, X)
    levels = []
    for coverage in settings.coverages:
        summary, versus = chosen.summary(coverage), constant.summary(coverage)
        levels.append(
            {
                "coverage": coverage,
                **summary,
                "width_percentiles": {
                    str(p): float(v)
                    for p, v in zip(
                        WIDTH_PERCENTILES,
                        np.percentile(chosen.widths[coverage], WIDTH_PERCENTILES),
                        strict=True,
                    )
                },
                "constant": versus,
                "adaptive": None if adaptive is None else adaptive.summary(coverage),
                "mean_width_vs_constant": summary["mean_width"] / versus["mean_width"] - 1,
            }
        )
    report = {
        "method": METHOD,
        "kind": "constant" if chosen is constant else "adaptive",
        "why": why,
        "difficulty": {
            "categorical_vars": settings.difficulty_categorical_vars,
            "numerical_vars": settings.difficulty_numerical_vars,
            "penalty": settings.difficulty_penalty,
        },
        "levels": levels,
        "calibration": {
            "nominal": list(CALIBRATION_GRID),
            "cv_coverage": [float(chosen.covered[c].mean()) for c in CALIBRATION_GRID],
        },
        "slices": slices,
        "compiled_check": {"houses": len(X), "max_relative_difference": compiled_difference},
        "quality_gate": {
            "max_coverage_gap": settings.max_coverage_gap,
            "max_slice_shortfall": settings.max_slice_shortfall,
            "slice_significance": settings.slice_significance,
            "min_slice_houses": config.min_slice_houses,
            "passed": not problems,
        },
    }
    return Calibration(intervals, report, problems)


def coverage_by_slice(
    config: ModelConfig, X: pd.DataFrame, y: pd.Series, log_prices: np.ndarray, judged: Judged
) -> dict[str, Any]:
    """The cross-validated coverage of the houses of each slice, at each
    configured coverage, and whether the slice is gated."""
    labels = slice_labels(config, X, y)
    bands = config.price_band_labels
    typical = np.exp(log_prices.mean(axis=0))
    labels[PREDICTED_PRICE_SLICE] = np.array(bands)[
        np.searchsorted(config.price_bands, typical, side="right")
    ]
    by: dict[str, list[dict[str, Any]]] = {}
    for name, house_labels in labels.items():
        banded = name in {PRICE_SLICE, PREDICTED_PRICE_SLICE}
        order = bands if banded else sorted(set(house_labels))
        rows = []
        for label in order:
            members = house_labels == label
            if not members.any():
                continue
            rows.append(
                {
                    "label": str(label),
                    "houses": int(members.sum()),
                    "coverage": {
                        str(c): float(judged.covered[c][:, members].mean())
                        for c in config.intervals.coverages
                    },
                }
            )
        by[name] = rows
    return {"by": by, "gated": [name for name in by if name != PRICE_SLICE]}


def gate_problems(config: ModelConfig, judged: Judged, slices: dict[str, Any]) -> list[str]:
    """Why the ranges fail their quality gates (none: they pass)."""
    settings = config.intervals
    problems = []
    for coverage in settings.coverages:
        achieved = float(judged.covered[coverage].mean())
        if abs(achieved - coverage) > settings.max_coverage_gap:
            problems.append(
                f"the {coverage:.0%} price ranges cover {achieved:.1%} of sale prices in "
                f"cross-validation, more than max_coverage_gap={settings.max_coverage_gap} "
                "from nominal"
            )
    tested = [
        (name, row)
        for name in slices["gated"]
        for row in slices["by"][name]
        if row["houses"] >= config.min_slice_houses
    ]
    threshold = settings.slice_significance / max(1, len(tested) * len(settings.coverages))
    for name, row in tested:
        for coverage in settings.coverages:
            achieved = row["coverage"][str(coverage)]
            if coverage - achieved <= settings.max_slice_shortfall:
                continue
            inside = round(achieved * row["houses"])
            p_value = binomtest(inside, row["houses"], coverage, alternative="less").pvalue
            if p_value < threshold:
                problems.append(
                    f"the {coverage:.0%} price ranges cover {achieved:.1%} of the "
                    f"{row['houses']} houses of {name} = {row['label']}, more than "
                    f"max_slice_shortfall={settings.max_slice_shortfall} below nominal "
                    f"(binomial p = {p_value:.2g} < {threshold:.2g})"
                )
    return problems


def check_compiled(
    config: ModelConfig, intervals: PriceIntervals, ranges: Ranges, X: pd.DataFrame
) -> float:
    """The largest relative difference between the scales the compiled
    difficulty gives the houses of ``X`` and the fitted regression's; raises
    above the compiled tables' tolerance."""
    scales = ranges.scales(X)
    if scales is None:
        return 0.0
    checked = validate_inputs(X, config)
    compiled = IntervalScorer(intervals, config).scales(
        checked.numbers, checked.codes, checked.categories
    )
    expected = scales[checked.valid]
    worst = float(np.max(np.abs(compiled[checked.valid] - expected) / expected, initial=0.0))
    if not worst <= TOLERANCE:
        raise CompileError(
            f"the compiled difficulty scales houses up to {worst:.3g} (relative) away from "
            f"the fitted regression, above the tolerance {TOLERANCE}"
        )
    return worst
