"""Price houses: validate every row, score the valid ones, account for all.

Two engines score the same model:

- ``"tables"`` (the default, everywhere): the compiled model tables, read
  from plain JSON and scored with NumPy. No unpickling, no scikit-learn.
- ``"pipeline"``: the fitted scikit-learn pipeline, unpickled (after the same
  checks). It is what training fitted and what research parity and the
  compile check compare against; it needs the ``[train]`` extra.

Both agree to a relative 1e-9 on every row (training refuses tables that do
not). The model is loaded on first use (verified against its manifest) and
kept for the life of the process; importing this module does no I/O.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np

from regression_model import __version__
from regression_model.artifact import load_pipeline, load_tables
from regression_model.config.core import (
    ARTIFACT_DIR_ENV_VAR,
    CONFIG_ENV_VAR,
    Config,
    get_config,
    trained_model_dir,
)
from regression_model.processing.validation import (
    WHOLE_ROW,
    InputData,
    InputError,
    ValidationResult,
    validate_inputs,
)
from regression_model.tables import ModelTables, TableScorer, explain

Engine = Literal["tables", "pipeline"]
ENGINES: tuple[Engine, ...] = ("tables", "pipeline")

#: Large frames are validated and scored this many rows at a time, so memory
#: stays bounded; a row's result never depends on its chunk.
CHUNK_ROWS = 65_536


class PredictionResult(TypedDict):
    predictions: list[float | None]
    errors: list[dict[str, Any]] | None
    version: str
    explanations: NotRequired[list[dict[str, Any] | None]]


class LoadedModel:
    """The verified compiled tables of a model, and its manifest."""

    def __init__(self, config: Config, directory: Path) -> None:
        self.config = config
        self.tables, self.manifest = load_tables(config, directory)
        self.scorer = TableScorer(self.tables, config.model)

    def contributions(self, checked: ValidationResult, rows: np.ndarray) -> np.ndarray:
        """The term values of the given (valid) rows of a validation result."""
        numbers, codes = checked.numbers, checked.codes
        if len(rows) < checked.n_rows:  # no copy when every row passed
            numbers, codes = numbers[rows], codes[rows]
        return self.scorer.contributions(numbers, codes, checked.categories)


class LoadedPipeline:
    """The verified, unpickled fitted pipeline of a model, and its manifest."""

    def __init__(self, config: Config, directory: Path) -> None:
        self.config = config
        self.estimator, self.manifest = load_pipeline(config, directory)


_loaded: dict[tuple[str, str | None, str | None], Any] = {}
_loading = threading.Lock()


def _load(engine: Engine) -> Any:
    # Keyed by the settings that choose the config and artifact, read cheaply
    # on every call; loading happens once per key, under the lock.
    key = (engine, os.environ.get(CONFIG_ENV_VAR), os.environ.get(ARTIFACT_DIR_ENV_VAR))
    model = _loaded.get(key)
    if model is None:
        with _loading:
            model = _loaded.get(key)
            if model is None:
                kind = LoadedModel if engine == "tables" else LoadedPipeline
                model = _loaded[key] = kind(get_config(), trained_model_dir())
    return model


def load_model() -> LoadedModel:
    """The compiled model for the active config and artifact directory, loaded
    once per process (thread-safe: concurrent first requests load it once)."""
    return _load("tables")  # type: ignore[no-any-return]


def load_model_pipeline() -> LoadedPipeline:
    """The fitted pipeline, loaded once per process (``engine="pipeline"``)."""
    return _load("pipeline")  # type: ignore[no-any-return]


def make_prediction(
    *,
    input_data: InputData,
    engine: Engine = "tables",
    explain: bool = False,
    timings: dict[str, float] | None = None,
) -> PredictionResult:
    """Price every row of ``input_data`` (a DataFrame, list of dicts or dict).

    Returns one prediction per input row in input order: a price in dollars,
    or ``None`` for a row that cannot be priced, whose reasons are in
    ``errors`` as ``{"row", "field", "message"}``. ``errors`` is ``None`` when
    every row was priced.

    ``engine`` chooses the compiled tables (default) or the fitted pipeline.
    With ``explain=True`` (tables only) the result also has ``explanations``:
    per row, ``None`` if unpriced, else the price split into its terms
    (see :func:`regression_model.tables.explain`).

    ``timings``, when given, receives the seconds spent validating
    (``"validate"``) and scoring (``"score"``), added to what it holds.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if explain and engine != "tables":
        raise ValueError("explanations come from the model tables: use engine='tables'")
    model = _load(engine)
    low, high = model.config.model.plausible_price_range
    predictions: list[float | None] = []
    errors: list[InputError] = []
    explanations: list[dict[str, Any] | None] = []
    validating = scoring = 0.0
    for start, chunk in _chunks(input_data):
        began = time.perf_counter()
        checked = validate_inputs(chunk, model.config.model)
        validated = time.perf_counter()
        rows = np.flatnonzero(checked.valid)
        if engine == "tables":
            contributions = model.contributions(checked, rows)
            prices = np.exp(model.scorer.log_prices(contributions))
        else:
            prices = _pipeline_prices(model, checked)
        validating += validated - began
        scoring += time.perf_counter() - validated
        errors += [InputError(e.row + start, e.field, e.message) for e in checked.errors]
        plausible = (prices >= low) & (prices <= high)
        for row, price in zip(rows[~plausible].tolist(), prices[~plausible].tolist(), strict=True):
            errors.append(_implausible(row + start, price, low, high))
        priced = np.full(checked.n_rows, np.nan)
        priced[rows[plausible]] = prices[plausible]
        chunk_prices: list[float | None] = priced.tolist()
        for row in np.flatnonzero(np.isnan(priced)).tolist():
            chunk_prices[row] = None
        chunk_explanations: list[dict[str, Any] | None] = [None] * checked.n_rows
        if explain:
            for position in np.flatnonzero(plausible).tolist():
                row = int(rows[position])
                chunk_explanations[row] = _explanation(
                    model,
                    contributions[position],
                    chunk_prices[row],  # type: ignore[arg-type]
                )
        predictions += chunk_prices
        explanations += chunk_explanations
    if timings is not None:
        timings["validate"] = timings.get("validate", 0.0) + validating
        timings["score"] = timings.get("score", 0.0) + scoring
    errors.sort(key=lambda e: e.row)
    result: PredictionResult = {
        "predictions": predictions,
        "errors": [e.as_dict() for e in errors] or None,
        "version": __version__,
    }
    if explain:
        result["explanations"] = explanations
    return result


def _chunks(input_data: InputData) -> list[tuple[int, Any]]:
    """(first row, rows) pieces of the input: frames in bounded chunks."""
    length = len(input_data) if hasattr(input_data, "iloc") else 0
    if length <= CHUNK_ROWS:
        return [(0, input_data)]
    return [
        (start, input_data.iloc[start : start + CHUNK_ROWS])  # type: ignore[union-attr]
        for start in range(0, length, CHUNK_ROWS)
    ]


def _pipeline_prices(model: LoadedPipeline, checked: ValidationResult) -> np.ndarray:
    if not checked.valid.any():
        return np.empty(0)
    return np.asarray(model.estimator.predict(checked.features), dtype="float64")


def _explanation(model: LoadedModel, contributions: np.ndarray, price: float) -> dict[str, Any]:
    tables: ModelTables = model.tables
    return explain(contributions, model.scorer.names, tables.intercept, price)


def _implausible(row: int, price: float, low: float, high: float) -> InputError:
    return InputError(
        row,
        WHOLE_ROW,
        f"the model cannot price this house: it predicts {price:,.6g} dollars, "
        f"outside the plausible range {low:,.0f} to {high:,.0f}, because its "
        "values are far outside the training data",
    )
