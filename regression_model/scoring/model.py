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
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, NotRequired, Self, TypedDict, overload

import numpy as np

from regression_model.config.core import (
    ARTIFACT_DIR_ENV_VAR,
    CONFIG_ENV_VAR,
    Config,
    get_config,
    trained_model_dir,
)
from regression_model.scoring.artifact import ArtifactPaths, load_pipeline, load_tables
from regression_model.scoring.chunks import chunks_of, in_order
from regression_model.scoring.explanation import Explanation, explain
from regression_model.scoring.intervals import IntervalScorer, PriceRange, price_ranges
from regression_model.scoring.label_hints import LabelHints
from regression_model.scoring.priced_batch import Columns, PricedBatch, columns, verdicts
from regression_model.scoring.report_files import Report, read_report
from regression_model.scoring.schema import schema_for
from regression_model.scoring.tables import ModelTables, PriceIntervals, TableScorer
from regression_model.scoring.unknown_fields import IgnoredField
from regression_model.scoring.validation import InputData, validate_inputs
from regression_model.scoring.validation_result import InputError, ValidationResult

Engine = Literal["tables", "pipeline"]
ENGINES: tuple[Engine, ...] = ("tables", "pipeline")


class PredictionResult(TypedDict):
    predictions: list[float | None]
    errors: list[dict[str, Any]] | None
    #: fields that are not model inputs, ignored: ``{"row", "field",
    #: "message"}``, ``row`` None for a column of a frame (every row)
    warnings: list[dict[str, Any]] | None
    version: str
    #: per row, None if unpriced, else the price's range at each coverage asked
    intervals: list[list[PriceRange] | None]
    explanations: NotRequired[list[Explanation | None]]


class Model:
    """A verified model, loaded once: validate houses, price them, explain the
    prices. Get one with :func:`load_model`.

    ``predict`` takes a DataFrame, a list of dicts or one dict and returns one
    entry per input row, in input order (see :class:`PredictionResult`); a
    row's verdict and price never depend on the rest of its batch.
    """

    #: which of the model's two forms scores: the compiled tables or the pipeline
    engine: Engine
    #: the warnings for labels that are a listed label's slip ("rl" for RL)
    label_hints: LabelHints

    def __init__(
        self,
        config: Config,
        form: Any,
        manifest: dict[str, Any],
        directory: Path | None = None,
    ) -> None:
        """From the engine's form of the model (the tables, or the fitted
        pipeline) already verified: read by :meth:`load`, or shipped to a Dask
        worker as plain data by a process that did."""
        self.config = config
        #: the artifact's verified manifest: hashes, library versions, metrics
        self.manifest = manifest
        #: the artifact directory it was loaded from (None: shipped as plain data)
        self.directory = directory
        #: the price ranges, at each coverage the model was calibrated for
        self.interval_scorer = IntervalScorer(self._adopt(form), config.model)

    @classmethod
    def load(cls, config: Config, directory: Path) -> Self:
        """Verify the artifact in ``directory`` against its manifest, then read
        this engine's form of the model from it."""
        form, manifest = _READERS[cls.engine](config, directory)
        return cls(config, form, manifest, directory)

    def _adopt(self, form: Any) -> PriceIntervals:
        """Keep the engine's form of the model, ready to score; return its ranges."""
        raise NotImplementedError

    @property
    def coverages(self) -> list[float]:
        """The coverages of the price ranges every priced house gets."""
        return list(self.interval_scorer.coverages)

    def report(self) -> Report:
        """The model report ``regression-model report`` wrote beside the
        artifact, each file checked against this manifest (the PNGs as drawn:
        no matplotlib needed). Raises ``ReportUnavailableError`` saying why
        there is none."""
        paths = ArtifactPaths.for_version(self.config, self.version, directory=self.directory)
        return read_report(paths.report, self.manifest)

    @property
    def version(self) -> str:
        """The model version that prices (the package's)."""
        return str(self.manifest["version"])

    @property
    def known_fields(self) -> frozenset[str]:
        """Every field name a house may carry: each input's names (the model's,
        Kaggle's, the aliases) and the id column."""
        return schema_for(self.config.model).known_fields

    def validate(
        self, houses: InputData, *, strict: bool = False, refuse_non_objects: bool = False
    ) -> ValidationResult:
        """Each row's verdict, without pricing (see :func:`validate_inputs`)."""
        return validate_inputs(
            houses, self.config.model, strict=strict, refuse_non_objects=refuse_non_objects
        )

    def price(
        self, houses: InputData, *, strict: bool = False, refuse_non_objects: bool = False
    ) -> PricedBatch:
        """Validate and price one batch, as arrays (streaming files, Dask)."""
        began = time.perf_counter()
        checked = self.validate(houses, strict=strict, refuse_non_objects=refuse_non_objects)
        return self.price_validated(checked, validate_seconds=time.perf_counter() - began)

    def price_validated(
        self, checked: ValidationResult, *, validate_seconds: float = 0.0
    ) -> PricedBatch:
        """Price a batch already validated by the active config's rules (this
        model's :meth:`validate`, or another model's of the same config: a
        challenger scores the houses the champion checked, without checking
        them again)."""
        validated = time.perf_counter()
        rows = np.flatnonzero(checked.valid)
        # Selected once: the prices' terms and the ranges' scales read the same columns.
        selected = columns(checked, rows)
        prices, log_prices, contributions = self._score(checked, rows, selected)
        ranges = self.interval_scorer.bounds(log_prices, self.interval_scorer.scales(*selected))
        timings = {"validate": validate_seconds, "score": time.perf_counter() - validated}
        batch = verdicts(
            self.config,
            checked,
            rows,
            prices,
            ranges=ranges,
            contributions=contributions,
            timings=timings,
        )
        hints = self.label_hints.warnings(checked)
        if not hints:
            return batch
        warnings = sorted([*batch.warnings, *hints], key=lambda w: -1 if w.row is None else w.row)
        return replace(batch, warnings=warnings)

    def _score(
        self, checked: ValidationResult, rows: np.ndarray, selected: Columns
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The prices of the valid ``rows`` (whose columns are ``selected``),
        their logs and their terms (empty when the engine has none): what each
        engine does its own way."""
        raise NotImplementedError

    def predict(
        self,
        houses: InputData,
        *,
        explain: bool = False,
        strict: bool = False,
        refuse_non_objects: bool = False,
        coverages: Sequence[float] | None = None,
        timings: dict[str, float] | None = None,
        validated: list[ValidationResult] | None = None,
    ) -> PredictionResult:
        """Price every row of ``houses`` (a DataFrame, list of dicts or dict).

        Returns one prediction per input row in input order: a price in
        dollars, or ``None`` for a row that cannot be priced, whose reasons are
        in ``errors`` as ``{"row", "field", "message"}`` (``None`` when every
        row was priced). A field that is not a model input is ignored and
        named in ``warnings`` (``None`` when there is none): per row, or with
        ``row`` ``None`` for a column of a DataFrame; with ``strict=True`` it is
        an error of its row instead. A row of a list that is not a dict is a
        ``TypeError``; with ``refuse_non_objects=True`` (parsed JSON, where a
        row may be any value) it is an error of its row (field ``*``).

        ``intervals`` has, per row, ``None`` if unpriced, else the price's range
        (``{"coverage", "low", "high"}``, dollars) at each of ``coverages``
        (default: every coverage in :attr:`coverages`; another is a
        ``ValueError``).

        With ``explain=True`` (the compiled tables only) the result also has
        ``explanations``: per row, ``None`` if unpriced, else the price split
        into its terms (see :func:`regression_model.scoring.explanation.explain`).

        ``validated``, when given, receives each chunk's validation result in
        order (rows counted from the chunk's first; one chunk up to
        ``CHUNK_ROWS`` rows), for :meth:`price_validated` of another model.

        ``timings``, when given, receives the seconds spent validating
        (``"validate"``) and scoring (``"score"``), added to what it holds.
        """
        if explain and not isinstance(self, CompiledModel):
            raise ValueError("explanations come from the model tables: use engine='tables'")
        levels = self.interval_scorer.levels(coverages)
        asked = [self.coverages[level] for level in levels]
        predictions: list[float | None] = []
        intervals: list[list[PriceRange] | None] = []
        errors: list[InputError] = []
        warnings: list[IgnoredField] = []
        explanations: list[Explanation | None] = []
        chunks = chunks_of(houses)

        checks: dict[int, ValidationResult] = {}

        def price(numbered: tuple[int, Any]) -> PricedBatch:
            number, chunk = numbered
            began = time.perf_counter()
            checked = self.validate(chunk, strict=strict, refuse_non_objects=refuse_non_objects)
            if validated is not None:
                checks[number] = checked
            batch = self.price_validated(checked, validate_seconds=time.perf_counter() - began)
            # Without explanations the terms are not kept (64 MB per chunk).
            return batch if explain else replace(batch, contributions=np.empty((0, 0)))

        numbered = list(enumerate(chunk for _, chunk in chunks))
        for number, ((start, _), batch) in enumerate(
            zip(chunks, in_order(price, numbered), strict=True)
        ):
            if validated is not None:
                validated.append(checks.pop(number))
            if timings is not None:
                for stage, seconds in batch.timings.items():
                    timings[stage] = timings.get(stage, 0.0) + seconds
            chunk_prices: list[float | None] = batch.prices.tolist()
            unpriced = np.flatnonzero(np.isnan(batch.prices)).tolist()
            for row in unpriced:
                chunk_prices[row] = None
            predictions += chunk_prices
            intervals += price_ranges(
                batch.lows[:, levels], batch.highs[:, levels], asked, unpriced
            )
            errors += [InputError(e.row + start, e.field, e.message) for e in batch.errors]
            # A frame's chunks share its columns: their warnings (row None) once.
            warnings += [
                replace(w, row=w.row + start) if w.row is not None else w
                for w in batch.warnings
                if w.row is not None or start == 0
            ]
            if explain:
                assert isinstance(self, CompiledModel)
                chunk_explanations: list[Explanation | None] = [None] * len(chunk_prices)
                for position, row in enumerate(batch.scored.tolist()):
                    if chunk_prices[row] is not None:
                        chunk_explanations[row] = self.explanation(
                            batch.contributions[position], chunk_prices[row]
                        )
                explanations += chunk_explanations
        result: PredictionResult = {
            "predictions": predictions,
            "errors": [e.as_dict() for e in errors] or None,
            "warnings": [w.as_dict() for w in warnings] or None,
            "version": self.version,
            "intervals": intervals,
        }
        if explain:
            result["explanations"] = explanations
        return result


class CompiledModel(Model):
    """The model's compiled tables (plain data, scored with NumPy): what serves."""

    engine: Engine = "tables"
    tables: ModelTables
    scorer: TableScorer

    def _adopt(self, form: ModelTables) -> PriceIntervals:
        self.tables = form
        self.scorer = TableScorer(form, self.config.model)
        self.label_hints = LabelHints.of(schema_for(self.config.model), form)
        if form.intervals is None:
            raise ValueError("the model tables have no price ranges")
        return form.intervals

    def contributions(self, checked: ValidationResult, rows: np.ndarray) -> np.ndarray:
        """The term values of the given (valid) rows of a validation result."""
        return self.scorer.contributions(*columns(checked, rows))

    def _score(
        self, checked: ValidationResult, rows: np.ndarray, selected: Columns
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        contributions = self.scorer.contributions(*selected)
        log_prices = self.scorer.log_prices(contributions)
        return np.exp(log_prices), log_prices, contributions

    def explanation(self, contributions: np.ndarray, price: float) -> Explanation:
        """One priced house's terms (see :func:`regression_model.scoring.explanation.explain`)."""
        return explain(contributions, self.scorer.names, self.tables.intercept, price)


class PipelineModel(Model):
    """The fitted scikit-learn pipeline, unpickled after the same checks
    (needs the ``[train]`` extra): what the tables are checked against."""

    engine: Engine = "pipeline"
    #: the fitted pipeline (a ``TransformedTargetRegressor``)
    estimator: Any

    def _adopt(self, form: tuple[Any, PriceIntervals, LabelHints]) -> PriceIntervals:
        self.estimator, intervals, self.label_hints = form
        return intervals

    def _score(
        self, checked: ValidationResult, rows: np.ndarray, selected: Columns
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not len(rows):
            return np.empty(0), np.empty(0), np.empty((0, 0))
        prices = np.asarray(self.estimator.predict(checked.features), dtype="float64")
        return prices, np.log(prices), np.empty((0, 0))


#: How each engine reads its form of the model from a verified artifact
#: (the tables' JSON, or the unpickled pipeline).
def _pipeline_and_ranges(config: Config, directory: Path) -> tuple[Any, dict[str, Any]]:
    """The fitted pipeline, and the price ranges from the tables: they are
    data, the same for both engines."""
    estimator, manifest = load_pipeline(config, directory)
    tables, _ = load_tables(config, directory)
    return (estimator, tables.intervals, LabelHints.of(schema_for(config.model), tables)), manifest


_READERS: dict[Engine, Callable[[Config, Path], tuple[Any, dict[str, Any]]]] = {
    "tables": load_tables,
    "pipeline": _pipeline_and_ranges,
}

_loaded: dict[tuple[str, str | None, str | None, str | None], Model] = {}
_loading = threading.Lock()


@overload
def load_model(
    *, engine: Literal["tables"] = "tables", directory: Path | str | None = None
) -> CompiledModel: ...
@overload
def load_model(
    *, engine: Literal["pipeline"], directory: Path | str | None = None
) -> PipelineModel: ...
@overload
def load_model(*, engine: Engine, directory: Path | str | None = None) -> Model: ...
def load_model(*, engine: Engine = "tables", directory: Path | str | None = None) -> Model:
    """The model of the active config (``REGRESSION_MODEL_CONFIG``), verified
    and loaded once per process (thread-safe: concurrent first calls load it
    once), from ``directory`` or else the artifact directory in use.

    ``engine`` chooses the compiled tables (default: no unpickling, no
    scikit-learn) or the fitted pipeline (needs the ``[train]`` extra); both
    price alike to a relative 1e-9 (training refuses tables that do not)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    # Keyed by the settings that choose the config and artifact, read cheaply
    # on every call; loading happens once per key, under the lock.
    where = None if directory is None else str(Path(directory).resolve())
    key = (engine, os.environ.get(CONFIG_ENV_VAR), os.environ.get(ARTIFACT_DIR_ENV_VAR), where)
    model = _loaded.get(key)
    if model is None:
        with _loading:
            model = _loaded.get(key)
            if model is None:
                kind = CompiledModel if engine == "tables" else PipelineModel
                source = Path(directory) if directory is not None else trained_model_dir()
                model = _loaded[key] = kind.load(get_config(), source)
    return model
