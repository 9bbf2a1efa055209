"""Train, evaluate and save the model.

Deterministic end to end: the split and the folds come from the configured
seed, the Lasso's coordinate descent is cyclic, and the data and config are
hashed into the manifest so a reader can tell which inputs made the artifact.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold, train_test_split

from regression_model import __version__
from regression_model.artifact import ArtifactPaths, environment, save_artifact, sha256_file
from regression_model.compiler import check_tables, compile_tables
from regression_model.config.core import Config, get_config
from regression_model.pipeline import build_pipeline
from regression_model.processing.data_manager import dataset_path, load_dataset
from regression_model.processing.validation import validate_inputs


class TrainingDataError(ValueError):
    """The training data does not pass the input schema."""


class ModelQualityError(RuntimeError):
    """The trained model is worse than the configured quality gate."""


@dataclass(frozen=True)
class TrainingResult:
    manifest: dict[str, Any]
    paths: ArtifactPaths


def regression_metrics(y_true: pd.Series | np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, RMSLE (RMSE of log price), MAE and R², prices in dollars."""
    y_true = np.asarray(y_true, dtype="float64")
    return {
        "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))),
        "rmsle": float(np.sqrt(np.mean((np.log(y_true) - np.log(y_pred)) ** 2))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def load_training_data(config: Config) -> tuple[pd.DataFrame, pd.Series, int]:
    """Validated features and target, with the configured exclusions applied.

    Returns ``(X, y, n_excluded)``. Training data must pass the same schema as
    prediction inputs: anything else would teach the model values it will
    refuse later.
    """
    model = config.model
    raw = load_dataset(config.app.training_data_file)
    checked = validate_inputs(raw, model)
    if checked.errors:
        shown = "; ".join(f"row {e.row} {e.field}: {e.message}" for e in checked.errors[:5])
        raise TrainingDataError(
            f"{len(checked.errors)} problem(s) in {config.app.training_data_file}: {shown}"
        )
    X = checked.features
    y = raw[model.target].astype("float64")
    keep = pd.Series(True, index=X.index)
    for variable, maximum in model.training_exclusions.items():
        keep &= ~(X[variable] > maximum)
    return X[keep], y[keep], int((~keep).sum())


def _fit_quietly(estimator: Any, X: pd.DataFrame, y: pd.Series) -> Any:
    with warnings.catch_warnings():
        # RareLabelEncoder warns that two-label variables cannot have rare labels:
        # true, expected, and not actionable.
        warnings.filterwarnings("ignore", message="The number of unique categories")
        return estimator.fit(X, y)


def evaluate(config: Config, X: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    """Hold-out metrics and k-fold cross-validated metrics (mean and std)."""
    model = config.model
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=model.test_size, random_state=model.random_state
    )
    holdout = _fit_quietly(build_pipeline(model), X_train, y_train)
    folds = []
    splitter = KFold(n_splits=model.cv_folds, shuffle=True, random_state=model.random_state)
    for train_index, test_index in splitter.split(X):
        fitted = _fit_quietly(build_pipeline(model), X.iloc[train_index], y.iloc[train_index])
        folds.append(regression_metrics(y.iloc[test_index], fitted.predict(X.iloc[test_index])))
    return {
        "holdout": {
            **regression_metrics(y_test, holdout.predict(X_test)),
            "n_train": len(X_train),
            "n_test": len(X_test),
        },
        "cross_validation": {
            "folds": model.cv_folds,
            **{f"{name}_mean": float(np.mean([f[name] for f in folds])) for name in folds[0]},
            **{f"{name}_std": float(np.std([f[name] for f in folds])) for name in folds[0]},
        },
    }


#: Percentiles at which the training distribution of a number is recorded.
PROFILE_PERCENTILES = np.arange(101)


def distribution_profile(values: np.ndarray) -> dict[str, Any]:
    """The empirical distribution of ``values`` (no NaN) at its percentiles:
    ``ecdf.values`` are values that occur in the data, ``ecdf.counts`` how many
    values are at most each one (exact, so drift tests compare like with like)."""
    ordered = np.sort(values)
    points = np.unique(np.percentile(ordered, PROFILE_PERCENTILES, method="inverted_cdf"))
    counts = np.searchsorted(ordered, points, side="right")
    return {
        "count": len(ordered),
        "ecdf": {"values": points.tolist(), "counts": counts.tolist()},
    }


def feature_profile(X: pd.DataFrame, config: Config) -> list[dict[str, Any]]:
    """Per-feature training profile kept in the manifest, for drift monitoring."""
    profile: list[dict[str, Any]] = []
    for name in config.model.features:
        column = X[name]
        entry: dict[str, Any] = {
            "name": name,
            "missing_share": float(column.isna().mean()),
        }
        if name in config.model.numerical_vars:
            entry.update(
                type="numerical",
                min=float(column.min()),
                max=float(column.max()),
                mean=float(column.mean()),
                std=float(column.std()),
                **distribution_profile(column.dropna().to_numpy(dtype="float64")),
            )
        else:
            shares = column.value_counts(normalize=True, sort=False).sort_index()
            entry.update(
                type="categorical",
                count=int(column.notna().sum()),
                categories={str(k): float(v) for k, v in shares.items()},
            )
        profile.append(entry)
    return profile


def run_training(config: Config | None = None, artifact_dir: Path | None = None) -> TrainingResult:
    """Evaluate, gate on quality, fit on all training rows and save the artifact."""
    config = config or get_config()
    X, y, n_excluded = load_training_data(config)
    metrics = evaluate(config, X, y)
    cv_rmsle = metrics["cross_validation"]["rmsle_mean"]
    if cv_rmsle > config.model.max_cv_rmsle:
        raise ModelQualityError(
            f"cross-validated RMSLE {cv_rmsle:.4f} is above the quality gate "
            f"max_cv_rmsle={config.model.max_cv_rmsle} in {config.source}; "
            "no artifact was written"
        )
    fitted = _fit_quietly(build_pipeline(config.model), X, y)
    fitted_prices = fitted.predict(X)
    metrics["training"] = regression_metrics(y, fitted_prices)
    # Serving scores the compiled tables: they must price every training and
    # test house as the fitted pipeline does, or nothing is written.
    tables = compile_tables(fitted, config.model)
    checked_on = [X, load_dataset(config.app.test_data_file)]
    compile_difference = check_tables(tables, fitted, config.model, checked_on)
    data_file = dataset_path(config.app.training_data_file)
    manifest = {
        "name": config.app.pipeline_name,
        "version": __version__,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_data": {
            "file": data_file.name,
            "sha256": sha256_file(data_file),
            "rows_used": len(X),
            "rows_excluded": n_excluded,
            "exclusions": config.model.training_exclusions,
        },
        "config": {"file": config.source.name, "sha256": config.sha256},
        "environment": environment(),
        "metrics": metrics,
        "quality_gate": {"max_cv_rmsle": config.model.max_cv_rmsle, "passed": True},
        "features": feature_profile(X, config),
        # What the model predicts for its training houses: the reference for
        # the shift of predicted prices in drift reports.
        "predictions": {
            "mean": float(np.mean(fitted_prices)),
            "median": float(np.median(fitted_prices)),
            **distribution_profile(np.asarray(fitted_prices, dtype="float64")),
        },
        "compiled_tables_check": {
            "houses": sum(len(frame) for frame in checked_on),
            "max_relative_difference": compile_difference,
        },
    }
    paths = ArtifactPaths.for_version(config, directory=artifact_dir)
    return TrainingResult(manifest=save_artifact(fitted, tables, manifest, paths), paths=paths)
