"""Price houses: validate every row, score the valid ones, account for all.

The trained model is loaded on the first call (verified against its
manifest) and kept for the life of the process; importing this module does no
I/O.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from regression_model import __version__
from regression_model.artifact import load_artifact
from regression_model.config.core import Config, get_config, trained_model_dir
from regression_model.processing.validation import (
    WHOLE_ROW,
    InputData,
    InputError,
    validate_inputs,
)


class PredictionResult(TypedDict):
    predictions: list[float | None]
    errors: list[dict[str, Any]] | None
    version: str


class LoadedModel:
    """A verified, unpickled artifact and the config it was trained with."""

    def __init__(self, config: Config, directory: Path) -> None:
        self.config = config
        self.estimator, self.manifest = load_artifact(config, directory)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """Prices in dollars for validated feature rows (the one scoring path)."""
        if features.empty:
            return np.empty(0, dtype="float64")
        return np.asarray(self.estimator.predict(features), dtype="float64")


_loaded: dict[tuple[str, Path], LoadedModel] = {}
_loading = threading.Lock()


def load_model() -> LoadedModel:
    """The model for the active config and artifact directory, loaded once
    per process (thread-safe: concurrent first requests load it once)."""
    config, directory = get_config(), trained_model_dir()
    key = (config.sha256, directory)
    with _loading:
        if key not in _loaded:
            _loaded[key] = LoadedModel(config, directory)
        return _loaded[key]


def make_prediction(*, input_data: InputData) -> PredictionResult:
    """Price every row of ``input_data`` (a DataFrame, list of dicts or dict).

    Returns one prediction per input row in input order: a price in dollars,
    or ``None`` for a row that failed validation, whose reasons are in
    ``errors`` as ``{"row", "field", "message"}``. ``errors`` is ``None`` when
    every row was priced.
    """
    model = load_model()
    checked = validate_inputs(input_data, model.config.model)
    errors: list[InputError] = list(checked.errors)
    predictions: list[float | None] = [None] * checked.n_rows
    prices = model.score(checked.features)
    low, high = model.config.model.plausible_price_range
    for row, price in zip(checked.features.index, prices, strict=True):
        if np.isfinite(price) and low <= price <= high:
            predictions[row] = float(price)
        else:
            errors.append(
                InputError(
                    int(row),
                    WHOLE_ROW,
                    f"the model cannot price this house: it predicts {price:,.6g} dollars, "
                    f"outside the plausible range {low:,.0f} to {high:,.0f}, because its "
                    "values are far outside the training data",
                )
            )
    errors.sort(key=lambda e: e.row)
    return {
        "predictions": predictions,
        "errors": [e.as_dict() for e in errors] or None,
        "version": __version__,
    }
