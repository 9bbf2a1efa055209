"""The compiled model: the fitted pipeline written down as plain data, and the
small scorer that prices houses with it.

The model is a sum. After its feature steps the Lasso adds one term per input
variable — a lookup from label to number for categorical variables, a small
formula for numerical ones (fill if missing, years before the sale, log,
centre and weight, a spline curve, plus the missing-value indicator) — and
the target transform takes ``exp``. ``training/compiler.py`` derives these tables from the fitted
pipeline at training time; here they are read from JSON and scored with
NumPy. Nothing here unpickles or imports scikit-learn, so loading a model
file cannot run code, and a price costs microseconds.

Every house is scored by the same array operations whatever the batch: the
element-wise steps do not mix rows, and each row's terms are summed on their
own (a contiguous row, NumPy's fixed-order pairwise sum), so a house gets the
same bits alone, in any batch and in any chunk.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

import numpy as np

from regression_model.config.core import ModelConfig

#: Version of the tables' JSON layout; a loader refuses any other.
#: 2: numerical terms may carry a spline (model 0.2.0).
FORMAT = 2

#: Batches up to this many rows are scored row by row (see ``contributions``).
ROW_BY_ROW_MAX = 4
#: Rows scored at once by NumPy: an intermediate array of 2048 rows by 23
#: curves is 377 KB, which a core's cache holds (measured: the terms of 200,000
#: houses in 54 % of the time one block took, the same bits; 1024 to 4096 rows
#: alike, 512 and 8192 slower).
BLOCK_ROWS = 2048


class TablesFormatError(ValueError):
    """The tables file does not have the layout this package reads."""


@dataclass(frozen=True)
class Spline:
    """A curve of one number ``t``, in log-price: a polynomial piece on each
    interval between consecutive ``knots``, a straight line beyond them.

    On ``knots[i] <= t <= knots[i + 1]`` it is
    ``sum(c * (t - knots[i]) ** k for k, c in enumerate(coefficients[i]))``
    (at an inner knot both pieces agree; the later one is used). Below
    ``knots[0]`` it is ``below[0] + below[1] * (t - knots[0])``, above
    ``knots[-1]`` it is ``above[0] + above[1] * (t - knots[-1])``: the training
    range ends at the outer knots, and beyond them the curve goes on straight.
    """

    knots: list[float]
    coefficients: list[list[float]]
    below: tuple[float, float]
    above: tuple[float, float]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spline:
        spline = cls(
            knots=[float(k) for k in data["knots"]],
            coefficients=[[float(c) for c in piece] for piece in data["coefficients"]],
            below=(float(data["below"][0]), float(data["below"][1])),
            above=(float(data["above"][0]), float(data["above"][1])),
        )
        if len(data["below"]) != 2 or len(data["above"]) != 2:
            raise TablesFormatError("malformed spline: below/above are [value, slope]")
        knots = spline.knots
        if len(knots) < 2 or any(b <= a for a, b in itertools.pairwise(knots)):
            raise TablesFormatError("malformed spline: knots must increase strictly")
        if len(spline.coefficients) != len(knots) - 1 or not all(spline.coefficients):
            raise TablesFormatError("malformed spline: one polynomial per interval")
        return spline

    @property
    def numbers(self) -> list[float]:
        return [*self.knots, *(c for p in self.coefficients for c in p), *self.below, *self.above]


@dataclass(frozen=True)
class NumericTerm:
    """The term of a numerical variable, in log-price:

    ``weight * (t - center) + spline(t) + (missing_effect if missing else present_effect)``

    where ``t`` is the value (``fill`` when missing), turned into
    ``reference - t`` when ``reference`` is set (years before the sale; the
    reference filled with ``reference_fill``), then ``log(t + log_offset)``
    when ``log_offset`` is set; ``spline(t)`` is 0 when there is no spline.
    """

    variable: str
    fill: float
    center: float
    weight: float
    missing_effect: float = 0.0
    present_effect: float = 0.0
    reference: str | None = None
    reference_fill: float | None = None
    log_offset: float | None = None
    spline: Spline | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.variable] if self.reference is None else [self.variable, self.reference]


@dataclass(frozen=True)
class LookupTerm:
    """The term of a categorical variable, in log-price: ``table[label]``;
    ``missing`` when no label is given; ``other`` for a label the table does
    not list (grouped with the rare labels in training), or None when such a
    label cannot be scored (validation refuses it first)."""

    variable: str
    table: dict[str, float]
    missing: float
    other: float | None

    @property
    def inputs(self) -> list[str]:
        return [self.variable]


@dataclass(frozen=True)
class ModelTables:
    """The whole model as data: ``price = exp(intercept + sum of the terms)``."""

    version: str
    intercept: float
    numeric: list[NumericTerm]
    lookup: list[LookupTerm]
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
            tables = cls(
                version=str(data["version"]),
                intercept=float(data["intercept"]),
                numeric=[_numeric_term(term) for term in data["numeric"]],
                lookup=[LookupTerm(**term) for term in data["lookup"]],
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
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


class _Splines:
    """The spline curves of some numerical terms, as padded arrays, so that
    one set of element-wise operations evaluates them all."""

    def __init__(self, splines: list[Spline]) -> None:
        pieces = max(len(s.coefficients) for s in splines)
        degree = max(len(p) for s in splines for p in s.coefficients) - 1
        self.low = np.array([s.knots[0] for s in splines])
        self.high = np.array([s.knots[-1] for s in splines])
        # Inner knots, padded with +inf (never passed): the piece of t is the
        # number of inner knots at or below it.
        self.inner = np.full((len(splines), max(pieces - 1, 1)), np.inf)
        self.starts = np.zeros((len(splines), pieces))
        # coefficients[power][spline, piece], padded with zeros
        self.coefficients = np.zeros((degree + 1, len(splines), pieces))
        for i, spline in enumerate(splines):
            self.inner[i, : len(spline.knots) - 2] = spline.knots[1:-1]
            self.starts[i, : len(spline.knots) - 1] = spline.knots[:-1]
            for piece, polynomial in enumerate(spline.coefficients):
                self.coefficients[: len(polynomial), i, piece] = polynomial
        # flat index of each curve's first piece in starts and coefficients[power]
        self.first_slot = np.arange(len(splines), dtype=np.intp) * pieces
        self.below = np.array([s.below for s in splines]).T
        self.above = np.array([s.above for s in splines]).T
        # The same numbers as plain lists, for one house at a time (`value`).
        self._by_spline = [
            (
                spline.knots[0],
                spline.knots[-1],
                self.inner[i].tolist(),
                self.starts[i].tolist(),
                self.coefficients[:, i, :].T.tolist(),  # [piece][power]
                spline.below,
                spline.above,
            )
            for i, spline in enumerate(splines)
        ]

    def values(self, t: np.ndarray) -> np.ndarray:
        """The curves at ``t`` (rows x splines), element by element."""
        inside = np.clip(t, self.low, self.high)
        # The piece of each value is the number of inner knots at or below it
        # (what `value` counts), found by a binary search per curve; then each
        # value's coefficients are gathered by flat index (curve, piece). This
        # is how the indices are found, not the arithmetic: the bits are the
        # same as counting and fancy indexing, in a third less time.
        piece = np.empty(t.shape, dtype=np.intp)
        for curve, knots in enumerate(self.inner):
            piece[:, curve] = np.searchsorted(knots, inside[:, curve], side="right")
        piece += self.first_slot
        offset = inside - np.take(self.starts, piece)
        value = np.take(self.coefficients[-1], piece)
        for power in range(len(self.coefficients) - 2, -1, -1):
            value = value * offset + np.take(self.coefficients[power], piece)
        value = np.where(t < self.low, self.below[0] + self.below[1] * (t - self.low), value)
        result: np.ndarray = np.where(
            t > self.high, self.above[0] + self.above[1] * (t - self.high), value
        )
        return result

    def value(self, index: int, t: float) -> float:
        """Curve ``index`` at ``t``, in Python floats: the operations of
        :meth:`values`, in the same order, so the bits are the same."""
        low, high, inner, starts, pieces, below, above = self._by_spline[index]
        if t < low:
            return below[0] + below[1] * (t - low)
        if t > high:
            return above[0] + above[1] * (t - high)
        piece = bisect.bisect_right(inner, t)  # the inner knots at or below t
        offset = t - starts[piece]
        coefficients: list[float] = pieces[piece]
        value = coefficients[-1]
        for coefficient in reversed(coefficients[:-1]):
            value = value * offset + coefficient
        return value


class TableScorer:
    """Scores validated columns with the tables (arrays prepared once)."""

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
        self.splines = _Splines([numeric[i].spline for i in curved]) if curved else None  # type: ignore[misc]
        self.lookup_columns = np.array(
            [categorical.index(t.variable) for t in tables.lookup], dtype=np.intp
        )
        self.names = [t.variable for t in tables.terms]
        # The same constants as plain lists, for the row-by-row path.
        self._row_constants = (
            self.fills.tolist(),
            self.centers.tolist(),
            self.weights.tolist(),
            list(zip(self.elapsed.tolist(), self.reference_fills.tolist(), strict=True)),
            list(zip(self.logged.tolist(), self.log_offsets.tolist(), strict=True)),
            list(
                zip(
                    self.flagged.tolist(),
                    self.missing_effects.tolist(),
                    self.present_effects.tolist(),
                    strict=True,
                )
            ),
        )

    def contributions(
        self, numbers: np.ndarray, codes: np.ndarray, categories: list[list[str]]
    ) -> np.ndarray:
        """Each row's term values in log-price, one column per term (C order).

        ``numbers``, ``codes`` and ``categories`` are a validation result's
        columns, for the rows to score. A few rows are scored row by row in
        Python floats (cheaper than NumPy's per-call overhead), more with NumPy
        over the whole batch: the same IEEE operations in the same order, and
        ``np.log`` on a contiguous block in both, so the bits are the same.
        """
        if len(numbers) <= ROW_BY_ROW_MAX:
            return self._contributions_by_row(numbers, codes, categories)
        result = np.empty((len(numbers), len(self.names)))
        lookup_values, firsts = self._lookup_values(categories)
        # Block by block: some twenty element-wise passes then run over
        # arrays that stay in the CPU's cache instead of main memory.
        for start in range(0, len(numbers), BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            self._contributions_of_block(
                numbers[start:stop], codes[start:stop], lookup_values, firsts, result[start:stop]
            )
        return result

    def _contributions_of_block(
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
            filled[:, self.elapsed] = reference - filled[:, self.elapsed]
        if len(self.logged):
            # np.log on a C-contiguous block whatever the input's layout: NumPy
            # may pick another loop (and last bit) for strided data, and a
            # house must get the same bits alone and in any batch.
            shifted = np.ascontiguousarray(filled[:, self.logged] + self.log_offsets)
            filled[:, self.logged] = np.log(shifted)
        # the curves need t itself, which the next step overwrites
        curves = None if self.splines is None else self.splines.values(filled[:, self.curved])
        numeric = result[:, :n_numeric]
        np.subtract(filled, self.centers, out=filled)
        np.multiply(filled, self.weights, out=numeric)
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

    def _contributions_by_row(
        self, numbers: np.ndarray, codes: np.ndarray, categories: list[list[str]]
    ) -> np.ndarray:
        fills, centers, weights, elapsed, logged, flagged = self._row_constants
        values_rows = (numbers if self.identity_columns else numbers[:, self.columns]).tolist()
        reference_rows = numbers[:, self.references].tolist()
        code_rows = codes[:, self.lookup_columns].tolist()
        lookups = list(zip(self.tables.lookup, self.lookup_columns.tolist(), strict=True))
        rows = []
        for values, references, row_codes in zip(
            values_rows, reference_rows, code_rows, strict=True
        ):
            missing = [math.isnan(value) for value in values]
            filled = [f if m else v for v, f, m in zip(values, fills, missing, strict=True)]
            for (term, reference_fill), reference in zip(elapsed, references, strict=True):
                filled[term] = (reference_fill if math.isnan(reference) else reference) - filled[
                    term
                ]
            if logged:
                shifted = np.array([filled[term] + offset for term, offset in logged])
                for (term, _), value in zip(logged, np.log(shifted).tolist(), strict=True):
                    filled[term] = value
            row = [(f - c) * w for f, c, w in zip(filled, centers, weights, strict=True)]
            for term, missing_effect, present_effect in flagged:
                row[term] += missing_effect if missing[term] else present_effect
            if self.splines is not None:
                for index, term in enumerate(self.curved.tolist()):
                    row[term] += self.splines.value(index, filled[term])
            for (term, column), code in zip(lookups, row_codes, strict=True):
                value = (
                    term.missing
                    if code < 0
                    else term.table.get(categories[column][code], term.other)
                )
                if value is None:
                    label = categories[column][code]
                    raise TablesFormatError(f"{term.variable}: no table entry for {label!r}")
                row.append(value)
            rows.append(row)
        return np.array(rows, dtype="float64").reshape(len(numbers), len(self.names))

    def _lookup_values(self, categories: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The lookup terms' values: each variable's value for a missing label,
        then for the labels of this batch, laid end to end, and where each
        variable's labels start; a row's code plus its start picks its value
        (code -1, missing, lands on the slot before the labels)."""
        values: list[float | None] = []
        firsts = []
        for term, column in zip(self.tables.lookup, self.lookup_columns, strict=True):
            values.append(term.missing)
            firsts.append(len(values))
            values += [term.table.get(label, term.other) for label in categories[column]]
        if None in values:
            unscored = values.index(None)
            raise TablesFormatError(f"a label has no table entry (value slot {unscored})")
        return np.array(values, dtype="float64"), np.array(firsts, dtype=np.intp)

    def log_prices(self, contributions: np.ndarray) -> np.ndarray:
        """The model's log-price of each row: its terms summed, plus the intercept."""
        return contributions.sum(axis=1) + self.tables.intercept  # type: ignore[no-any-return]


class Factor(TypedDict):
    """One term of the model's sum, for one house (see :func:`explain`)."""

    variable: str
    log_effect: float
    factor: float
    dollars: float


class Explanation(TypedDict):
    """One house's price split into the model's terms (see :func:`explain`)."""

    baseline: float
    log_baseline: float
    factors: list[Factor]


def explain(
    contributions: np.ndarray, names: list[str], intercept: float, price: float
) -> Explanation:
    """One house's price split into its terms, largest effect first.

    Each term has its effect in log-price (``log_effect``; with the baseline
    they sum to log(price)), as a factor on the price (``factor``; the
    baseline times every factor is the price), and in dollars (``dollars``:
    the price change when the terms are applied in this order, largest first;
    the baseline plus every term's dollars is the price). Terms that are zero
    for this house are left out.
    """
    order = sorted(
        (i for i, value in enumerate(contributions) if value != 0.0),
        key=lambda i: (-abs(contributions[i]), names[i]),
    )
    baseline = math.exp(intercept)
    factors: list[Factor] = []
    running_log, before = intercept, baseline
    for position, index in enumerate(order, start=1):
        effect = float(contributions[index])
        running_log += effect
        # The last step ends on the price itself, so the dollars add up to it
        # rather than to a re-summed log (which may differ in the last bit).
        reached = price if position == len(order) else math.exp(running_log)
        factors.append(
            {
                "variable": names[index],
                "log_effect": effect,
                "factor": math.exp(effect),
                "dollars": reached - before,
            }
        )
        before = reached
    return {"baseline": baseline, "log_baseline": intercept, "factors": factors}
