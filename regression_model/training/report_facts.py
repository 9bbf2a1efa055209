"""The facts a model report shows: training's evaluation and manifest, and
what only the report measures — the learning curve (error against the
number of training houses), staleness (error as the model ages), each
term's spread over the training houses and the shipped price ranges of the
training houses.

The learning curve and staleness refit the model with the penalty it chose
(no search), many times: fits that training does not need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from regression_model.config.core import Config, ModelConfig
from regression_model.scoring.intervals import IntervalScorer
from regression_model.scoring.tables import ModelTables, TableScorer
from regression_model.scoring.validation import validate_inputs
from regression_model.training.evaluation import (
    Evaluation,
    fit_quietly,
    regression_metrics,
    repeated_splits,
)
from regression_model.training.linear_model import TrimmedLasso
from regression_model.training.pipeline import build_pipeline
from regression_model.training.train import TrainingData

#: Shares of each training part the learning curve fits on.
LEARNING_SHARES = (0.2, 0.4, 0.6, 0.8, 1.0)
#: Sale years the staleness check fits on (the first ones); it measures on the later ones.
STALENESS_FIT_YEARS = 2


@dataclass(frozen=True)
class ShippedRanges:
    """The artifact's price ranges of the valid training houses, as the model
    serves them: ``prices`` (houses,), ``lows`` and ``highs`` (houses,
    coverages), in dollars."""

    coverages: list[float]
    prices: np.ndarray
    lows: np.ndarray
    highs: np.ndarray


@dataclass(frozen=True)
class ReportFacts:
    """Everything the plots and the page show."""

    config: ModelConfig
    manifest: dict[str, Any]
    tables: ModelTables
    data: TrainingData
    evaluation: Evaluation
    learning: list[dict[str, float]]
    staleness: list[dict[str, float]]
    #: each term's standard deviation over the training houses, in log-price
    spread: dict[str, float]
    ranges: ShippedRanges


def _fixed_penalty_model(config: ModelConfig, alpha: float) -> Any:
    """The model with its penalty fixed (no search): for checks that refit often."""
    model = build_pipeline(config)
    model.regressor.steps[-1] = (
        "lasso",
        TrimmedLasso(alpha=alpha, trim=config.trim_threshold, max_iter=config.max_iter),
    )
    return model


def learning_curve(
    config: ModelConfig, data: TrainingData, alpha: float
) -> list[dict[str, float]]:
    """Training and cross-validated RMSLE when fitting on growing shares of
    each training part (the first repeat's folds), with the penalty the
    shipped model chose."""
    splits = [split for split in repeated_splits(config, len(data.X)) if split.repeat == 0]
    rng = np.random.default_rng(config.random_state)
    curve = []
    for share in LEARNING_SHARES:
        trained, tested, sizes = [], [], []
        for split in splits:
            rows = np.sort(rng.permutation(split.train)[: round(share * len(split.train))])
            model = _fixed_penalty_model(config, alpha)
            fitted = fit_quietly(model, data.X.iloc[rows], data.y.iloc[rows])
            X_test, y_test = data.X.iloc[split.test], data.y.iloc[split.test]
            trained.append(
                regression_metrics(data.y.iloc[rows], fitted.predict(data.X.iloc[rows]))
            )
            tested.append(regression_metrics(y_test, fitted.predict(X_test)))
            sizes.append(len(rows))
        curve.append(
            {
                "houses": float(np.mean(sizes)),
                "training_rmsle": float(np.mean([m["rmsle"] for m in trained])),
                "cv_rmsle": float(np.mean([m["rmsle"] for m in tested])),
                "cv_rmsle_std": float(np.std([m["rmsle"] for m in tested])),
            }
        )
    return curve


def staleness(config: ModelConfig, data: TrainingData, alpha: float) -> list[dict[str, float]]:
    """How the error grows as a model ages: fitted on the sales of the first
    ``STALENESS_FIT_YEARS`` years, measured on each later year; beside it,
    the cross-validated error on unseen sales of the fitting years themselves."""
    years = data.X["YrSold"].to_numpy(dtype="float64")
    last_fit_year = np.nanmin(years) + STALENESS_FIT_YEARS - 1
    early = np.flatnonzero(years <= last_fit_year)
    X, y = data.X.iloc[early], data.y.iloc[early]
    squared = []
    folds = KFold(config.cv_folds, shuffle=True, random_state=config.random_state)
    for train, test in folds.split(X):
        fitted = fit_quietly(_fixed_penalty_model(config, alpha), X.iloc[train], y.iloc[train])
        squared.append(np.log(fitted.predict(X.iloc[test]) / y.iloc[test].to_numpy()) ** 2)
    rows = [
        {
            "year": float(last_fit_year),
            "houses": float(len(early)),
            "rmsle": float(np.sqrt(np.mean(np.concatenate(squared)))),
            "same_years": 1.0,
        }
    ]
    fitted = fit_quietly(_fixed_penalty_model(config, alpha), X, y)
    for year in sorted(set(years[years > last_fit_year])):
        later = np.flatnonzero(years == year)
        prices = fitted.predict(data.X.iloc[later])
        rows.append(
            {
                "year": float(year),
                "houses": float(len(later)),
                "rmsle": regression_metrics(data.y.iloc[later], prices)["rmsle"],
                "same_years": 0.0,
            }
        )
    return rows


def term_spread(tables: ModelTables, config: Config, data: TrainingData) -> dict[str, float]:
    """Each term's standard deviation over the valid training houses, in log-price."""
    scorer = TableScorer(tables, config.model)
    checked = validate_inputs(data.X, config.model)
    contributions = scorer.contributions(
        checked.numbers[checked.valid], checked.codes[checked.valid], checked.categories
    )
    return dict(zip(scorer.names, map(float, contributions.std(axis=0)), strict=True))


def shipped_ranges(tables: ModelTables, config: Config, data: TrainingData) -> ShippedRanges:
    """The ranges the artifact gives the valid training houses, scored by the
    same scorers as a prediction (what a user of the model sees; the
    manifest's widths are cross-validated instead)."""
    if tables.intervals is None:
        raise ValueError("these model tables have no price ranges: retrain")
    checked = validate_inputs(data.X, config.model)
    numbers, codes = checked.numbers[checked.valid], checked.codes[checked.valid]
    scorer = TableScorer(tables, config.model)
    log_prices = scorer.log_prices(scorer.contributions(numbers, codes, checked.categories))
    ranges = IntervalScorer(tables.intervals, config.model)
    lows, highs = ranges.bounds(log_prices, ranges.scales(numbers, codes, checked.categories))
    return ShippedRanges(list(ranges.coverages), np.exp(log_prices), lows, highs)
