"""The compiled model: the fitted pipeline written down as plain data, and the
small scorer that prices houses with it.

The model is a sum. After its feature steps the Lasso adds one term per input
variable — a lookup from label to number for categorical variables, a small
formula for numerical ones (fill if missing, years before the sale, log,
centre and weight, a spline curve, plus the missing-value indicator) — and
the target transform takes ``exp``. ``training/compiler.py`` derives these
tables from the fitted pipeline at training time; here they are read from
JSON and scored (the terms' arithmetic is in ``scoring/arithmetic.py``, the
explanations in ``scoring/explanation.py``). Nothing here unpickles or
imports scikit-learn, so loading a model file cannot run code, and a price
costs microseconds.

A house gets the same bits alone, in any batch and in any chunk: the
element-wise steps do not mix rows, a few rows are scored with the same
arithmetic in Python floats as more are with NumPy, and each row's terms are
summed on their own (a contiguous row, NumPy's fixed-order pairwise sum).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from regression_model.config.core import ModelConfig
from regression_model.scoring.arithmetic import (
    SplineCurves,
    logs,
    weighted,
    years_before,
)
from regression_model.scoring.terms import LookupTerm, NumericTerm, Spline, TablesFormatError

#: Version of the tables' JSON layout; a loader refuses any other.
#: 2: numerical terms may carry a spline (model 0.2.0).
#: 3: the price ranges (``intervals``) (model 0.3.0).
FORMAT = 3

#: Batches up to this many rows are scored (and validated) row by row in
#: Python floats, where NumPy's overhead per call would cost more than the
#: work: one house's terms in 41 µs instead of 121 µs as a NumPy block of one
#: row, Model.predict of one house in 134 µs instead of 219 µs (see
#: ``TableScorer.contributions`` and benchmarks/README.md, "One house, row by
#: row").
ROW_BY_ROW_MAX = 4
#: Rows scored at once by NumPy: an intermediate array of 2048 rows by 23
#: curves is 377 KB, which a core's cache holds (measured: the terms of 200,000
#: houses in 54 % of the time one block took, the same bits; 1024 to 4096 rows
#: alike, 512 and 8192 slower).
BLOCK_ROWS = 2048


@dataclass(frozen=True)
class PriceIntervals:
    """A priced house's ranges, as data: at ``coverages[i]`` the range is

    ``exp(log_price + scale * low)`` to ``exp(log_price + scale * high)``

    with ``(low, high) = quantiles[i]``, conformal quantiles of the
    out-of-fold log error divided by its scale, and ``scale`` the house's
    difficulty: ``exp`` of the ``difficulty`` model's sum of terms (1 for
    every house when there is none: a constant width in log price)."""

    coverages: list[float]
    quantiles: list[tuple[float, float]]
    difficulty: ModelTables | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverages": self.coverages,
            "quantiles": [list(pair) for pair in self.quantiles],
            "difficulty": None if self.difficulty is None else self.difficulty.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriceIntervals:
        difficulty = data["difficulty"]
        intervals = cls(
            coverages=[float(c) for c in data["coverages"]],
            quantiles=[(float(low), float(high)) for low, high in data["quantiles"]],
            difficulty=None if difficulty is None else ModelTables.from_dict(difficulty),
        )
        numbers = [*intervals.coverages, *(q for pair in intervals.quantiles for q in pair)]
        if not all(math.isfinite(n) for n in numbers):
            raise TablesFormatError("malformed price ranges: a number is not finite")
        if len(intervals.coverages) != len(intervals.quantiles) or not all(
            low <= high for low, high in intervals.quantiles
        ):
            raise TablesFormatError("malformed price ranges: one (low, high) per coverage")
        if difficulty is not None and intervals.difficulty.intervals is not None:  # type: ignore[union-attr]
            raise TablesFormatError("malformed price ranges: the difficulty has ranges")
        return intervals


@dataclass(frozen=True)
class ModelTables:
    """The whole model as data: ``price = exp(intercept + sum of the terms)``,
    and the price's ranges (None only in the difficulty model itself)."""

    version: str
    intercept: float
    numeric: list[NumericTerm]
    lookup: list[LookupTerm]
    intervals: PriceIntervals | None = None
    format: int = field(default=FORMAT)

    @property
    def terms(self) -> list[NumericTerm | LookupTerm]:
        return [*self.numeric, *self.lookup]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "intercept": self.intercept,
            "target_inverse": "exp",
            "numeric": [asdict(term) for term in self.numeric],
            "lookup": [asdict(term) for term in self.lookup],
            "intervals": None if self.intervals is None else self.intervals.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelTables:
        """Read the JSON layout, refusing anything else with a clear error."""
        try:
            if data["format"] != FORMAT:
                raise TablesFormatError(
                    f"tables format {data['format']!r}; this package reads format {FORMAT}"
                )
            if data["target_inverse"] != "exp":
                raise TablesFormatError(f"unknown target inverse {data['target_inverse']!r}")
            intervals = data["intervals"]
            tables = cls(
                version=str(data["version"]),
                intercept=float(data["intercept"]),
                numeric=[_numeric_term(term) for term in data["numeric"]],
                lookup=[LookupTerm(**term) for term in data["lookup"]],
                intervals=None if intervals is None else PriceIntervals.from_dict(intervals),
            )
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            if isinstance(exc, TablesFormatError):
                raise

            raise TablesFormatError(f"malformed model tables: {exc!r}") from exc
        numbers = [tables.intercept]
        for term in tables.numeric:
            numbers += [term.fill, term.center, term.weight, term.missing_effect]
            numbers += [term.present_effect]
            if term.spline is not None:
                numbers += term.spline.numbers
        for lookup in tables.lookup:
            numbers += [*lookup.table.values(), lookup.missing]
        if not all(isinstance(n, int | float) and math.isfinite(n) for n in numbers):
            raise TablesFormatError("malformed model tables: a number is missing or not finite")
        return tables


def _numeric_term(data: dict[str, Any]) -> NumericTerm:
    spline = data.get("spline")
    return NumericTerm(**{**data, "spline": None if spline is None else Spline.from_dict(spline)})


class _RowConstants(NamedTuple):
    """The scorer's constants as Python floats and ints, for the row-by-row way."""

    fills: list[float]
    #: (term, reference fill)
    elapsed: list[tuple[int, float]]
    logged: list[int]
    #: (term, missing effect, present effect)
    flagged: list[tuple[int, float, float]]
    #: (curve, term)
    curved: list[tuple[int, int]]


class TableScorer:
    """Scores validated columns with the tables (arrays prepared once).

    The terms' arithmetic is in ``scoring/arithmetic.py``, called by both ways
    of scoring: NumPy over blocks of rows, and Python floats row by row for
    up to :data:`ROW_BY_ROW_MAX` rows (see that module for why the bits are
    the same).
    """

    def __init__(self, tables: ModelTables, config: ModelConfig) -> None:
        self.tables = tables
        numerical, categorical = config.numerical_vars, config.categorical_vars
        unknown = [t.variable for t in tables.numeric if t.variable not in numerical]
        unknown += [t.variable for t in tables.lookup if t.variable not in categorical]
        unknown += [
            t.reference for t in tables.numeric if t.reference and t.reference not in numerical
        ]
        if unknown:
            raise TablesFormatError(f"the tables name variables the config lacks: {unknown}")
        numeric = tables.numeric
        self.columns = np.array([numerical.index(t.variable) for t in numeric], dtype=np.intp)
        self.fills = np.array([t.fill for t in numeric])
        self.centers = np.array([t.center for t in numeric])
        self.weights = np.array([t.weight for t in numeric])
        # Only variables with a missing-value indicator have effects to add.
        flagged = [i for i, t in enumerate(numeric) if t.missing_effect or t.present_effect]
        self.flagged = np.array(flagged, dtype=np.intp)
        self.missing_effects = np.array([numeric[i].missing_effect for i in flagged])
        self.present_effects = np.array([numeric[i].present_effect for i in flagged])
        self.identity_columns = bool(np.array_equal(self.columns, np.arange(len(numerical))))
        elapsed = [i for i, t in enumerate(numeric) if t.reference is not None]
        self.elapsed = np.array(elapsed, dtype=np.intp)
        self.references = np.array(
            [numerical.index(numeric[i].reference) for i in elapsed],  # type: ignore[arg-type]
            dtype=np.intp,
        )
        self.reference_fills = np.array([numeric[i].reference_fill for i in elapsed], dtype=float)
        logged = [i for i, t in enumerate(numeric) if t.log_offset is not None]
        self.logged = np.array(logged, dtype=np.intp)
        self.log_offsets = np.array([numeric[i].log_offset for i in logged], dtype=float)
        curved = [i for i, t in enumerate(numeric) if t.spline is not None]
        self.curved = np.array(curved, dtype=np.intp)
        self.splines = SplineCurves([numeric[i].spline for i in curved]) if curved else None  # type: ignore[misc]
        self.lookup_columns = np.array(
            [categorical.index(t.variable) for t in tables.lookup], dtype=np.intp
        )
        self.names = [t.variable for t in tables.terms]
        self._lookups = list(zip(tables.lookup, self.lookup_columns.tolist(), strict=True))
        # The same constants as Python floats and ints, for the row-by-row way.
        self._floats = _RowConstants(
            fills=self.fills.tolist(),
            elapsed=list(zip(self.elapsed.tolist(), self.reference_fills.tolist(), strict=True)),
            logged=logged,
            flagged=list(
                zip(
                    flagged,
                    self.missing_effects.tolist(),
                    self.present_effects.tolist(),
                    strict=True,
                )
            ),
            curved=list(enumerate(curved)),
        )

    def contributions(
        self, numbers: np.ndarray, codes: np.ndarray, categories: list[list[str]]
    ) -> np.ndarray:
        """Each row's term values in log-price, one column per term (C order).

        ``numbers``, ``codes`` and ``categories`` are a validation result's
        columns, for the rows to score. Up to :data:`ROW_BY_ROW_MAX` rows are
        scored row by row in Python floats, more with NumPy a block at a time:
        the same arithmetic (``scoring/arithmetic.py``), so the same bits.
        """
        if len(numbers) <= ROW_BY_ROW_MAX:
            return self._by_row(numbers, codes, categories)
        result = np.empty((len(numbers), len(self.names)))
        lookup_values, firsts = self._lookup_values(categories)
        # Block by block: some twenty element-wise passes then run over
        # arrays that stay in the CPU's cache instead of main memory.
        for start in range(0, len(numbers), BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            self._block(
                numbers[start:stop],
                codes[start:stop],
                lookup_values,
                firsts,
                result[start:stop],
            )
        return result

    def _block(
        self,
        numbers: np.ndarray,
        codes: np.ndarray,
        lookup_values: np.ndarray,
        firsts: np.ndarray,
        result: np.ndarray,
    ) -> None:
        n_numeric = len(self.columns)
        values = numbers if self.identity_columns else numbers[:, self.columns]
        missing = np.isnan(values)
        filled = np.where(missing, self.fills, values)
        if len(self.elapsed):
            reference = numbers[:, self.references]
            reference = np.where(np.isnan(reference), self.reference_fills, reference)
            filled[:, self.elapsed] = years_before(reference, filled[:, self.elapsed])
        if len(self.logged):
            filled[:, self.logged] = logs(filled[:, self.logged], self.log_offsets)
        # the curves need t itself, which the next step overwrites
        curves = None if self.splines is None else self.splines.on_block(filled[:, self.curved])
        numeric = result[:, :n_numeric]
        weighted(filled, self.centers, self.weights, out=numeric)
        if len(self.flagged):
            numeric[:, self.flagged] += np.where(
                missing[:, self.flagged], self.missing_effects, self.present_effects
            )
        if curves is not None:
            numeric[:, self.curved] += curves
        if len(self.lookup_columns):
            picked = codes[:, self.lookup_columns]
            picked += firsts
            result[:, n_numeric:] = np.take(lookup_values, picked)

    def _by_row(
        self, numbers: np.ndarray, codes: np.ndarray, categories: list[list[str]]
    ) -> np.ndarray:
        """The steps of :meth:`_block`, in its order, a row at a time: each
        term in Python floats, the whole-row steps (``logs``, ``weighted``)
        on the row's small arrays."""
        floats = self._floats
        values_rows = (numbers if self.identity_columns else numbers[:, self.columns]).tolist()
        reference_rows = numbers[:, self.references].tolist()
        code_rows = codes[:, self.lookup_columns].tolist()
        labels = [(term, categories[column]) for term, column in self._lookups]
        rows = []
        for values, references, row_codes in zip(
            values_rows, reference_rows, code_rows, strict=True
        ):
            missing = [math.isnan(value) for value in values]
            filled = [f if m else v for v, f, m in zip(values, floats.fills, missing, strict=True)]
            for (term, reference_fill), reference in zip(floats.elapsed, references, strict=True):
                year = reference_fill if math.isnan(reference) else reference
                filled[term] = years_before(year, filled[term])
            if floats.logged:
                logged = logs(np.array([filled[t] for t in floats.logged]), self.log_offsets)
                for term, value in zip(floats.logged, logged.tolist(), strict=True):
                    filled[term] = value
            filled_array = np.array(filled)
            row: list[float] = weighted(
                filled_array, self.centers, self.weights, out=filled_array
            ).tolist()
            for term, missing_effect, present_effect in floats.flagged:
                row[term] += missing_effect if missing[term] else present_effect
            if self.splines is not None:
                for curve, term in floats.curved:
                    row[term] += self.splines.at(curve, filled[term])
            row += [
                term.missing if code < 0 else term.value(term_labels[code])
                for (term, term_labels), code in zip(labels, row_codes, strict=True)
            ]
            rows.append(row)
        return np.array(rows, dtype="float64").reshape(len(numbers), len(self.names))

    def _lookup_values(self, categories: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The lookup terms' values: each variable's value for a missing label,
        then for the labels of this batch, laid end to end, and where each
        variable's labels start; a row's code plus its start picks its value
        (code -1, missing, lands on the slot before the labels)."""
        values: list[float] = []
        firsts = []
        for term, column in self._lookups:
            values.append(term.missing)
            firsts.append(len(values))
            values += map(term.value, categories[column])
        return np.array(values, dtype="float64"), np.array(firsts, dtype=np.intp)

    def log_prices(self, contributions: np.ndarray) -> np.ndarray:
        """The model's log-price of each row: its terms summed, plus the intercept."""
        return contributions.sum(axis=1) + self.tables.intercept  # type: ignore[no-any-return]
