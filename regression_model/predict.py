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
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
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
    IgnoredField,
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
#: Threads pricing the chunks of a large frame.
SCORING_THREADS = min(4, os.cpu_count() or 1)


class PredictionResult(TypedDict):
    predictions: list[float | None]
    errors: list[dict[str, Any]] | None
    #: fields that are not model inputs, ignored: ``{"row", "field",
    #: "message"}``, ``row`` None for a column of a frame (every row)
    warnings: list[dict[str, Any]] | None
    version: str
    explanations: NotRequired[list[dict[str, Any] | None]]


class LoadedModel:
    """The verified compiled tables of a model, and its manifest."""

    def __init__(self, config: Config, directory: Path) -> None:
        tables, manifest = load_tables(config, directory)
        self._use(config, tables, manifest)

    @classmethod
    def from_tables(
        cls, config: Config, tables: ModelTables, manifest: dict[str, Any]
    ) -> LoadedModel:
        """A model from tables already verified elsewhere (shipped to a Dask
        worker as plain data by a process that loaded them from the artifact)."""
        model = cls.__new__(cls)
        model._use(config, tables, manifest)
        return model

    def _use(self, config: Config, tables: ModelTables, manifest: dict[str, Any]) -> None:
        self.config = config
        self.tables, self.manifest = tables, manifest
        self.scorer = TableScorer(tables, config.model)

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
    strict: bool = False,
    timings: dict[str, float] | None = None,
) -> PredictionResult:
    """Price every row of ``input_data`` (a DataFrame, list of dicts or dict).

    Returns one prediction per input row in input order: a price in dollars,
    or ``None`` for a row that cannot be priced, whose reasons are in
    ``errors`` as ``{"row", "field", "message"}``. ``errors`` is ``None`` when
    every row was priced. A field that is not a model input is ignored and
    named in ``warnings`` (``None`` when there is none): per row, or with
    ``row`` ``None`` for a column of a DataFrame; with ``strict=True`` it is an
    error of its row instead.

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
    predictions: list[float | None] = []
    errors: list[InputError] = []
    warnings: list[IgnoredField] = []
    explanations: list[dict[str, Any] | None] = []
    chunks = _chunks(input_data)

    def price(chunk: Any) -> PricedBatch:
        if engine == "pipeline":
            return _price_with_pipeline(model, chunk, strict=strict)
        batch = price_batch(model, chunk, strict=strict)
        # Without explanations the terms are not kept (64 MB per chunk).
        return batch if explain else replace(batch, contributions=np.empty((0, 0)))

    for (start, _), batch in zip(chunks, _in_order(price, [c for _, c in chunks]), strict=True):
        if timings is not None:
            for stage, seconds in batch.timings.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
        chunk_prices: list[float | None] = batch.prices.tolist()
        for row in np.flatnonzero(np.isnan(batch.prices)).tolist():
            chunk_prices[row] = None
        predictions += chunk_prices
        errors += [InputError(e.row + start, e.field, e.message) for e in batch.errors]
        # A frame's chunks share its columns: their warnings (row None) once.
        warnings += [
            replace(w, row=w.row + start) if w.row is not None else w
            for w in batch.warnings
            if w.row is not None or start == 0
        ]
        if explain:
            chunk_explanations: list[dict[str, Any] | None] = [None] * len(chunk_prices)
            for position, row in enumerate(batch.scored.tolist()):
                if chunk_prices[row] is not None:
                    chunk_explanations[row] = _explanation(
                        model, batch.contributions[position], chunk_prices[row]
                    )
            explanations += chunk_explanations
    result: PredictionResult = {
        "predictions": predictions,
        "errors": [e.as_dict() for e in errors] or None,
        "warnings": [w.as_dict() for w in warnings] or None,
        "version": __version__,
    }
    if explain:
        result["explanations"] = explanations
    return result


@dataclass(frozen=True)
class PricedBatch:
    """A batch's verdicts: ``prices`` (dollars; NaN where a row is not
    priced) and ``errors`` (rows counted from the batch's first, in row order).
    With the tables, ``scored`` are the rows that passed validation and
    ``contributions`` their terms (one row each)."""

    prices: np.ndarray
    errors: list[InputError]
    scored: np.ndarray
    contributions: np.ndarray
    #: seconds spent validating ("validate") and scoring ("score")
    timings: dict[str, float]
    #: fields that are not model inputs, ignored (see ``validate_inputs``)
    warnings: list[IgnoredField]

    @property
    def priced(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.prices)))


def price_batch(model: LoadedModel, data: InputData, *, strict: bool = False) -> PricedBatch:
    """Validate and price one batch with the compiled tables of ``model``.

    What :func:`make_prediction` does per chunk, for callers that hold the
    model themselves (streaming files, Dask workers). A row's verdict and
    price never depend on the rest of the batch.
    """
    began = time.perf_counter()
    checked = validate_inputs(data, model.config.model, strict=strict)
    validated = time.perf_counter()
    rows = np.flatnonzero(checked.valid)
    contributions = model.contributions(checked, rows)
    prices = np.exp(model.scorer.log_prices(contributions))
    timings = {"validate": validated - began, "score": time.perf_counter() - validated}
    return _verdicts(
        model.config, checked, rows, prices, contributions=contributions, timings=timings
    )


def batch_pricer(
    engine: Engine = "tables", *, strict: bool = False
) -> Callable[[InputData], PricedBatch]:
    """A function pricing one batch with ``engine``'s model, loaded now (once
    per process)."""
    if engine == "tables":
        model = load_model()
        return lambda data: price_batch(model, data, strict=strict)
    if engine == "pipeline":
        pipeline = load_model_pipeline()
        return lambda data: _price_with_pipeline(pipeline, data, strict=strict)
    raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def _price_with_pipeline(
    model: LoadedPipeline, data: InputData, *, strict: bool = False
) -> PricedBatch:
    began = time.perf_counter()
    checked = validate_inputs(data, model.config.model, strict=strict)
    validated = time.perf_counter()
    rows = np.flatnonzero(checked.valid)
    prices = _pipeline_prices(model, checked)
    timings = {"validate": validated - began, "score": time.perf_counter() - validated}
    return _verdicts(
        model.config, checked, rows, prices, contributions=np.empty((0, 0)), timings=timings
    )


def _verdicts(
    config: Config,
    checked: ValidationResult,
    rows: np.ndarray,
    prices: np.ndarray,
    *,
    contributions: np.ndarray,
    timings: dict[str, float],
) -> PricedBatch:
    """Prices outside the plausible range are refused, like invalid rows."""
    low, high = config.model.plausible_price_range
    plausible = (prices >= low) & (prices <= high)
    all_prices = np.full(checked.n_rows, np.nan)
    all_prices[rows[plausible]] = prices[plausible]
    implausible = [
        _implausible(row, price, low, high)
        for row, price in zip(rows[~plausible].tolist(), prices[~plausible].tolist(), strict=True)
    ]
    errors = checked.errors
    if implausible:
        errors = sorted([*errors, *implausible], key=lambda e: e.row)
    return PricedBatch(all_prices, errors, rows, contributions, timings, checked.ignored)


def _in_order(function: Callable[[Any], PricedBatch], chunks: list[Any]) -> Iterator[PricedBatch]:
    """``function`` of each chunk, in order. Several chunks are priced at once
    in threads (NumPy, pandas and pyarrow release the GIL for most of the
    work), at most one more than there are threads, so memory stays bounded.
    A chunk's result never depends on the others, so the bits are the same."""
    if len(chunks) == 1 or SCORING_THREADS == 1:
        yield from map(function, chunks)
        return
    with ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="scoring") as pool:
        pending: deque[Future[PricedBatch]] = deque()
        for chunk in chunks:
            pending.append(pool.submit(function, chunk))
            if len(pending) > SCORING_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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
