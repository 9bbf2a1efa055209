"""Honest evaluation: repeated, nested cross-validation of the model, the
baselines on the same folds, and the error on slices of the houses.

- **Repeated K-fold.** ``cv_repeats`` times ``cv_folds``-fold
  cross-validation, repeat ``r`` shuffled with seed ``random_state + r``. The
  spread between repeats says how much of a difference between two models
  is just the luck of the split.
- **Nested.** The model chooses its Lasso penalty by cross-validation
  within each training part (``TrimmedLassoCV``), so no reported error was
  tuned on the houses it is measured on.
- **Baselines.** The median price of the neighbourhood and least squares on
  a few obvious features (``training/baselines.py``), fitted and scored on exactly the
  same folds.
- **Slices.** Every house is priced once per repeat by a model that never
  saw it; pooling those prices gives the error of each neighbourhood,
  building type, sale condition, decade built and price band.

Everything is deterministic: the same data and config give the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold

from regression_model.config.core import ModelConfig
from regression_model.training.baselines import GroupMedianPrice, SmallLinearModel
from regression_model.training.pipeline import build_pipeline

#: The name of each slice that is not a categorical variable.
DECADE_SLICE = "decade built"
PRICE_SLICE = "price band"


def regression_metrics(y_true: pd.Series | np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, RMSLE (RMSE of log price), MAE and R², prices in dollars."""
    y_true = np.asarray(y_true, dtype="float64")
    return {
        "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))),
        "rmsle": float(np.sqrt(np.mean((np.log(y_true) - np.log(y_pred)) ** 2))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def fit_quietly(estimator: Any, X: pd.DataFrame, y: pd.Series) -> Any:
    with warnings.catch_warnings():
        # RareLabelEncoder warns that two-label variables cannot have rare labels:
        # true, expected, and not actionable.
        warnings.filterwarnings("ignore", message="The number of unique categories")
        return estimator.fit(X, y)


def baselines(config: ModelConfig) -> dict[str, Callable[[], Any]]:
    """The baselines by name, each a factory of an unfitted estimator."""
    return {
        "neighbourhood_median": lambda: GroupMedianPrice(group=config.baseline_group_var),
        "small_linear": lambda: SmallLinearModel(variables=config.baseline_linear_vars),
    }


@dataclass(frozen=True)
class Split:
    repeat: int
    train: np.ndarray
    test: np.ndarray


def repeated_splits(config: ModelConfig, n_rows: int) -> list[Split]:
    """``cv_repeats`` x ``cv_folds`` train/test splits of ``n_rows`` rows."""
    return [
        Split(repeat, train, test)
        for repeat in range(config.cv_repeats)
        for train, test in KFold(
            config.cv_folds, shuffle=True, random_state=config.random_state + repeat
        ).split(np.arange(n_rows))
    ]


@dataclass(frozen=True)
class CrossValidated:
    """Each house priced once per repeat by a model that never saw it."""

    #: (repeats, houses): out-of-fold prices in dollars
    predictions: np.ndarray
    #: per split: its repeat, metrics, and the penalty the model chose (if any)
    folds: list[dict[str, float]]

    def summary(self) -> dict[str, float]:
        """Mean and standard deviation over folds of each metric, and the
        standard deviation of the repeats' mean RMSLE."""
        names = ("rmsle", "rmse", "mae", "r2")
        summary: dict[str, float] = {}
        for name in names:
            values = [fold[name] for fold in self.folds]
            summary[f"{name}_mean"] = float(np.mean(values))
            summary[f"{name}_std"] = float(np.std(values))
        summary["rmsle_repeat_std"] = float(np.std(self.repeat_rmsle()))
        return summary

    def repeat_rmsle(self) -> list[float]:
        """The mean RMSLE of each repeat's folds."""
        repeats = sorted({int(fold["repeat"]) for fold in self.folds})
        return [
            float(np.mean([f["rmsle"] for f in self.folds if f["repeat"] == repeat]))
            for repeat in repeats
        ]


def cross_validate(
    make: Callable[[], Any], X: pd.DataFrame, y: pd.Series, splits: list[Split]
) -> CrossValidated:
    """Fit a fresh ``make()`` on each split's training rows and price its test rows."""
    repeats = 1 + max(split.repeat for split in splits)
    predictions = np.full((repeats, len(X)), np.nan)
    folds: list[dict[str, float]] = []
    for split in splits:
        fitted = fit_quietly(make(), X.iloc[split.train], y.iloc[split.train])
        prices = np.asarray(fitted.predict(X.iloc[split.test]), dtype="float64")
        predictions[split.repeat, split.test] = prices
        fold = {"repeat": float(split.repeat), **regression_metrics(y.iloc[split.test], prices)}
        alpha = chosen_alpha(fitted)
        if alpha is not None:
            fold["alpha"] = alpha
        folds.append(fold)
    return CrossValidated(predictions, folds)


def chosen_alpha(fitted: Any) -> float | None:
    """The penalty a fitted ``build_pipeline`` estimator chose, if it is one."""
    regression = getattr(getattr(fitted, "regressor_", None), "steps", [[None, None]])[-1][1]
    alpha = getattr(regression, "alpha_", None)
    return None if alpha is None else float(alpha)


@dataclass(frozen=True)
class Evaluation:
    model: CrossValidated
    baselines: dict[str, CrossValidated]
    slices: dict[str, Any]

    def report(self, config: ModelConfig) -> dict[str, Any]:
        """The evaluation as the manifest records it (plain JSON values)."""
        alphas = [fold["alpha"] for fold in self.model.folds]
        return {
            "protocol": (
                f"{config.cv_repeats} x {config.cv_folds}-fold cross-validation (seeds "
                f"{config.random_state}..{config.random_state + config.cv_repeats - 1}); the "
                f"Lasso penalty chosen from {config.alpha_grid} by {config.tuning_folds}-fold "
                "cross-validation inside each training part (nested)"
            ),
            "repeats": config.cv_repeats,
            "folds": config.cv_folds,
            "rmsle_per_repeat": self.model.repeat_rmsle(),
            "alphas_chosen": {str(alpha): alphas.count(alpha) for alpha in sorted(set(alphas))},
        }

    def baseline_report(self, config: ModelConfig) -> dict[str, Any]:
        """Each baseline's CV metrics, and whether the model beats the best one
        by the configured share."""
        results = {name: cv.summary() for name, cv in self.baselines.items()}
        best = min(results, key=lambda name: results[name]["rmsle_mean"])
        model = self.model.summary()["rmsle_mean"]
        improvement = 1.0 - model / results[best]["rmsle_mean"]
        return {
            "models": results,
            "best": best,
            "model_rmsle_mean": model,
            "improvement_over_best": improvement,
            "min_improvement": config.min_improvement_over_baselines,
            "passed": bool(improvement >= config.min_improvement_over_baselines),
        }


def evaluate(config: ModelConfig, X: pd.DataFrame, y: pd.Series) -> Evaluation:
    """The model and the baselines, cross-validated on the same splits, and
    the model's error on each slice."""
    splits = repeated_splits(config, len(X))
    model = cross_validate(lambda: build_pipeline(config), X, y, splits)
    others = {name: cross_validate(make, X, y, splits) for name, make in baselines(config).items()}
    return Evaluation(model, others, slice_errors(config, X, y, model.predictions))


def slice_labels(config: ModelConfig, X: pd.DataFrame, y: pd.Series) -> dict[str, np.ndarray]:
    """For each slice, the label of every house."""
    labels = {
        name: X[name].astype(object).where(X[name].notna(), "missing").astype(str).to_numpy()
        for name in config.slice_vars
    }
    years = X[config.slice_decade_var].to_numpy(dtype="float64")
    labels[DECADE_SLICE] = np.array(
        ["missing" if np.isnan(year) else f"{int(year) // 10 * 10}s" for year in years]
    )
    labels[PRICE_SLICE] = np.array(config.price_band_labels)[
        np.searchsorted(config.price_bands, np.asarray(y, dtype="float64"), side="right")
    ]
    return labels


def slice_errors(
    config: ModelConfig, X: pd.DataFrame, y: pd.Series, predictions: np.ndarray
) -> dict[str, Any]:
    """RMSLE and bias (mean log error: above 0, priced too high) of each
    slice, over every out-of-fold price; the worst slice with at least
    ``min_slice_houses`` houses, and whether it is within ``max_slice_rmsle``."""
    errors = np.log(predictions) - np.log(np.asarray(y, dtype="float64"))
    by: dict[str, list[dict[str, Any]]] = {}
    for name, labels in slice_labels(config, X, y).items():
        rows = []
        order = config.price_band_labels if name == PRICE_SLICE else sorted(set(labels))
        for label in order:
            members = labels == label
            if not members.any():
                continue
            chosen = errors[:, members]
            rows.append(
                {
                    "label": str(label),
                    "houses": int(members.sum()),
                    "rmsle": float(np.sqrt(np.mean(chosen**2))),
                    "bias": float(np.mean(chosen)),
                }
            )
        by[name] = rows
    large = [
        {"slice": name, **row}
        for name, rows in by.items()
        for row in rows
        if row["houses"] >= config.min_slice_houses
    ]
    worst = max(large, key=lambda row: row["rmsle"])
    return {
        "min_houses": config.min_slice_houses,
        "max_rmsle": config.max_slice_rmsle,
        "worst": worst,
        "passed": bool(worst["rmsle"] <= config.max_slice_rmsle),
        "by": by,
    }
