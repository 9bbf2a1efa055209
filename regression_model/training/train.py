"""Train, evaluate and save the model.

Deterministic end to end: the folds come from the configured seed, the
Lasso's coordinate descent is cyclic, BLAS runs on one thread (so sums do not
depend on the machine's core count), and the data and config are hashed into
the manifest so a reader can tell which inputs made the artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from regression_model.config.core import Config, get_config
from regression_model.data import dataset_path, load_dataset
from regression_model.scoring.artifact import (
    ArtifactPaths,
    environment,
    save_artifact,
    sha256_file,
)
from regression_model.scoring.validation import validate_inputs
from regression_model.training.compiler import check_tables, compile_tables
from regression_model.training.evaluation import (
    Evaluation,
    evaluate,
    fit_quietly,
    regression_metrics,
)
from regression_model.training.intervals import calibrate
from regression_model.training.market import MarketDataError, add_market_data
from regression_model.training.pipeline import build_pipeline
from regression_model.version import __version__


class TrainingDataError(ValueError):
    """The training data does not pass the input schema."""


class ModelQualityError(RuntimeError):
    """The trained model is worse than the configured quality gate."""


@dataclass(frozen=True)
class TrainingResult:
    manifest: dict[str, Any]
    paths: ArtifactPaths


@dataclass(frozen=True)
class TrainingData:
    """Validated features and target of the houses used for fitting."""

    X: pd.DataFrame
    y: pd.Series
    #: each row's Id (the config's id_column)
    ids: np.ndarray
    #: houses left out by the configured training exclusions
    n_excluded: int
    #: the config's market_data_files as the manifest records them
    market_data: tuple[dict[str, Any], ...] = ()


def load_training_data(config: Config) -> TrainingData:
    """Validated features and target, with the configured exclusions applied.

    Training data must pass the same schema as prediction inputs: anything
    else would teach the model values it will refuse later.
    """
    model = config.model
    try:
        market = add_market_data(load_dataset(config.app.training_data_file), config)
    except MarketDataError as exc:
        raise TrainingDataError(str(exc)) from exc
    raw = market.rows
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
    ids = raw[model.id_column].to_numpy()[X.index[keep]]
    return TrainingData(X[keep], y[keep], ids, int((~keep).sum()), tuple(market.files))


def quality_problems(config: Config, evaluation: Evaluation) -> list[str]:
    """Why the evaluated model fails the quality gates in the config (none: it passes)."""
    model = config.model
    problems = []
    cv_rmsle = evaluation.model.summary()["rmsle_mean"]
    if cv_rmsle > model.max_cv_rmsle:
        problems.append(
            f"cross-validated RMSLE {cv_rmsle:.4f} is above max_cv_rmsle={model.max_cv_rmsle}"
        )
    versus = evaluation.baseline_report(model)
    if not versus["passed"]:
        problems.append(
            f"the model's CV RMSLE {cv_rmsle:.4f} is only {versus['improvement_over_best']:.1%} "
            f"below the best baseline's ({versus['best']}, "
            f"{versus['models'][versus['best']]['rmsle_mean']:.4f}); "
            f"min_improvement_over_baselines={model.min_improvement_over_baselines}"
        )
    worst = evaluation.slices["worst"]
    if not evaluation.slices["passed"]:
        problems.append(
            f"the worst slice with at least {model.min_slice_houses} houses, {worst['slice']} = "
            f"{worst['label']} ({worst['houses']} houses), has RMSLE {worst['rmsle']:.4f}, "
            f"above max_slice_rmsle={model.max_slice_rmsle}"
        )
    return problems


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
    data = load_training_data(config)
    X, y = data.X, data.y
    # One BLAS thread: the same bits whatever the machine, and for matrices
    # this small, faster than threads competing for shared cores.
    with threadpool_limits(limits=1):
        evaluation = evaluate(config.model, X, y)
        calibration = calibrate(config.model, X, y, evaluation.model.predictions, __version__)
        problems = quality_problems(config, evaluation) + calibration.problems
        if problems:
            raise ModelQualityError(
                "; ".join(problems)
                + f" (quality gates in {config.source}); no artifact was written"
            )
        fitted = fit_quietly(build_pipeline(config.model), X, y)
        training_prices = fitted.predict(X)
    regression = fitted.regressor_.steps[-1][1]
    metrics = {
        "cross_validation": {
            "folds": config.model.cv_folds,
            "repeats": config.model.cv_repeats,
            **evaluation.model.summary(),
        },
        "training": regression_metrics(y, training_prices),
    }
    # Serving scores the compiled tables: they must price every training and
    # test house as the fitted pipeline does, or nothing is written.
    tables = replace(compile_tables(fitted, config.model), intervals=calibration.intervals)
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
            "rows_excluded": data.n_excluded,
            "exclusions": config.model.training_exclusions,
            "market_data": list(data.market_data),
        },
        "config": {"file": config.source.name, "sha256": config.sha256},
        "environment": environment(),
        "metrics": metrics,
        "evaluation": {
            **evaluation.report(config.model),
            "alpha": regression.alpha_,
            "alpha_tuning_rmse": {str(a): e for a, e in sorted(regression.cv_rmse_.items())},
            "trimmed": {
                "threshold": config.model.trim_threshold,
                "residual_scale": regression.residual_scale_,
                "ids": [int(i) for i in data.ids[regression.trimmed_]],
            },
        },
        "baselines": evaluation.baseline_report(config.model),
        "slices": evaluation.slices,
        "intervals": calibration.report,
        "quality_gate": {
            "max_cv_rmsle": config.model.max_cv_rmsle,
            "min_improvement_over_baselines": config.model.min_improvement_over_baselines,
            "max_slice_rmsle": config.model.max_slice_rmsle,
            "passed": True,
        },
        "features": feature_profile(X, config),
        # What the model predicts for its training houses: the reference for
        # the shift of predicted prices in drift reports.
        "predictions": {
            "mean": float(np.mean(training_prices)),
            "median": float(np.median(training_prices)),
            **distribution_profile(np.asarray(training_prices, dtype="float64")),
        },
        "compiled_tables_check": {
            "houses": sum(len(frame) for frame in checked_on),
            "max_relative_difference": compile_difference,
        },
    }
    paths = ArtifactPaths.for_version(config, directory=artifact_dir)
    return TrainingResult(manifest=save_artifact(fitted, tables, manifest, paths), paths=paths)
