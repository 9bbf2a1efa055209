"""Compile the fitted pipeline into model tables (see ``scoring/tables.py``).

The pipeline's steps are walked in order, each through the compile rule of
its type (``training/compile_rules.py``), which records how the step changes
the columns as a small recipe per column. At the end every column the Lasso
weighs is traced back to one input variable, and each variable's columns are
folded into one term. A step type without a rule, or steps composed in a way
the tables cannot express, stop training with a message naming the step:
nothing falls back silently.

Training then checks the tables price every training and test house like the
pipeline, to a relative 1e-9 (``check_tables``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline, PPoly
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline

from regression_model.config.core import ModelConfig
from regression_model.scoring.tables import ModelTables, TableScorer
from regression_model.scoring.terms import LookupTerm, NumericTerm, Spline
from regression_model.training.compile_rules import (
    RULES,
    CompileError,
    CompileState,
    Dummy,
    Indicator,
    Label,
    Mapped,
    Number,
    Recipe,
    SplineBasis,
)
from regression_model.version import __version__

__all__ = ["TOLERANCE", "CompileError", "check_tables", "compile_tables"]

#: How far a compiled price may be from the pipeline's (relative).
TOLERANCE = 1e-9


def compile_tables(estimator: Any, config: ModelConfig) -> ModelTables:
    """The model tables of a fitted ``build_pipeline`` estimator."""
    if not isinstance(estimator, TransformedTargetRegressor):
        raise CompileError(f"expected a TransformedTargetRegressor, got {type(estimator)}")
    if estimator.func is not np.log or estimator.inverse_func is not np.exp:
        raise CompileError("only a log / exp target transform is compiled")
    pipeline = estimator.regressor_
    if not isinstance(pipeline, Pipeline):
        raise CompileError(f"expected a Pipeline inside, got {type(pipeline).__name__}")
    state = CompileState(
        columns={
            **{v: Number(v) for v in config.numerical_vars},
            **{v: Label(v) for v in config.categorical_vars},
        }
    )
    for name, step in pipeline.steps:
        rule = RULES.get(type(step))
        if rule is None:
            raise CompileError(
                f"pipeline step {name!r} ({type(step).__module__}.{type(step).__name__}) has no "
                "compile rule: add one to regression_model/training/compile_rules.py so the model "
                "tables can express it"
            )
        rule(step, name, state)
    if state.coefficients is None or state.intercept is None:
        raise CompileError("the pipeline does not end with the regression")
    return _fold(state, config)


def _weight(state: CompileState, column: str) -> tuple[float, float, float]:
    """(coefficient, center, scale) of a column."""
    assert state.coefficients is not None
    center, scale = state.scaling[column]
    return state.coefficients[column], center, scale


def _effect(state: CompileState, column: str, value: float) -> float:
    coefficient, center, scale = _weight(state, column)
    return coefficient * ((value - center) / scale)


def _fold(state: CompileState, config: ModelConfig) -> ModelTables:
    """Fold each variable's columns (value, indicator, dummies) into one term."""
    by_variable: dict[str, list[tuple[str, Recipe]]] = {}
    for column, recipe in state.columns.items():
        if isinstance(recipe, Mapped | Dummy):
            variable = recipe.label.variable
        elif isinstance(recipe, SplineBasis):
            variable = recipe.number.variable
        else:
            variable = recipe.variable
        by_variable.setdefault(variable, []).append((column, recipe))
    numeric: list[NumericTerm] = []
    lookup: list[LookupTerm] = []
    for variable in config.features:
        columns = by_variable.pop(variable, [])
        kinds = {type(recipe) for _, recipe in columns}
        if kinds <= {Number, Indicator, SplineBasis} and Number in kinds:
            numeric.append(_numeric_term(variable, columns, state))
        elif kinds in ({Mapped}, {Dummy}):
            lookup.append(_lookup_term(variable, columns, state))
        elif kinds:
            raise CompileError(
                f"{variable}: columns of kinds {sorted(k.__name__ for k in kinds)} cannot be "
                "folded into one term"
            )
    if by_variable:
        raise CompileError(f"columns of unknown variables: {sorted(by_variable)}")
    assert state.intercept is not None
    return ModelTables(
        version=__version__, intercept=state.intercept, numeric=numeric, lookup=lookup
    )


def _numeric_term(
    variable: str, columns: list[tuple[str, Recipe]], state: CompileState
) -> NumericTerm:
    values = [(c, r) for c, r in columns if isinstance(r, Number)]
    indicators = [c for c, r in columns if isinstance(r, Indicator)]
    bases = [(c, r) for c, r in columns if isinstance(r, SplineBasis)]
    (column, recipe), *others = values
    assert isinstance(recipe, Number)
    if others or len(indicators) > 1:
        raise CompileError(f"{variable}: more than one column of the same kind")
    if recipe.fill is None:
        raise CompileError(f"{variable}: no imputation learned, a missing value cannot be priced")
    coefficient, center, scale = _weight(state, column)
    missing = present = 0.0
    if indicators:
        missing = _effect(state, indicators[0], 1.0)
        present = _effect(state, indicators[0], 0.0)
    return NumericTerm(
        variable=variable,
        fill=recipe.fill,
        center=center,
        weight=coefficient / scale,
        missing_effect=missing,
        present_effect=present,
        reference=recipe.reference[0] if recipe.reference else None,
        reference_fill=recipe.reference[1] if recipe.reference else None,
        log_offset=recipe.log_offset,
        spline=_spline(variable, recipe, bases, state) if bases else None,
    )


def _spline(
    variable: str, number: Number, bases: list[tuple[str, SplineBasis]], state: CompileState
) -> Spline:
    """The weighted, centred sum of a variable's spline columns, written as
    polynomial pieces between the knots and straight lines beyond them."""
    splines = {id(r.spline): r for _, r in bases}
    if len(splines) != 1:
        raise CompileError(f"{variable}: more than one spline step")
    first = next(iter(splines.values()))
    transformer = first.spline
    if first.number != number:
        raise CompileError(
            f"{variable}: its splines were made before a later step changed it; the "
            "splines must come after every transform of the variable"
        )
    if transformer.extrapolation != "linear" or transformer.include_bias:
        raise CompileError(f"{variable}: only linear extrapolation without bias is compiled")
    basis = transformer.bsplines_[0]
    degree, knots = int(basis.k), np.asarray(basis.t, dtype=float)
    n_splines = basis.c.shape[1]
    weights = np.zeros(n_splines)
    constant = 0.0
    for column, recipe in bases:
        coefficient, center, scale = _weight(state, column)
        weights[recipe.index] = coefficient / scale
        constant -= coefficient * center / scale
    pieces = PPoly.from_spline(BSpline(knots, weights, degree))
    low, high = degree, len(knots) - degree - 1  # the outer knots: the training range
    coefficients = [
        [
            float(pieces.c[degree - power, i]) + (constant if power == 0 else 0.0)
            for power in range(degree + 1)
        ]
        for i in range(low, high)
    ]
    # As SplineTransformer extrapolates: the first (last) `degree` columns go on
    # straight with their value and slope at the outer knot; the others are 0.
    ends = degree + 1 if degree <= 1 else degree
    lines = []
    for at, used in ((knots[low], slice(0, ends)), (knots[high], slice(n_splines - ends, None))):
        value, slope = basis(at)[used], basis(at, nu=1)[used]
        lines.append(
            (float(np.dot(weights[used], value)) + constant, float(np.dot(weights[used], slope)))
        )
    return Spline(
        knots=[float(k) for k in knots[low : high + 1]],
        coefficients=coefficients,
        below=lines[0],
        above=lines[1],
    )


#: Stands for a label the tables do not list.
_UNSEEN = object()


def _lookup_term(
    variable: str, columns: list[tuple[str, Recipe]], state: CompileState
) -> LookupTerm:
    recipes = [r for _, r in columns]
    label = recipes[0].label  # type: ignore[union-attr]
    if label.fill is None:
        raise CompileError(f"{variable}: no imputation learned, a missing value cannot be priced")
    known = label.known | {label.fill}

    def value(raw: object) -> float | None:
        final = label.final(raw) if isinstance(raw, str) else label.grouping and label.grouping[1]
        total = 0.0
        for column, recipe in columns:
            if isinstance(recipe, Mapped):
                if final not in recipe.mapping:
                    return None
                total += _effect(state, column, recipe.mapping[final])
            else:
                assert isinstance(recipe, Dummy)
                total += _effect(state, column, float(final == recipe.category))
        return total

    table = {k: value(k) for k in sorted(known)}
    missing = value(label.fill)
    if missing is None or None in table.values():
        raise CompileError(f"{variable}: a known label has no mapping")
    return LookupTerm(
        variable=variable,
        table=table,  # type: ignore[arg-type]
        missing=missing,
        other=value(_UNSEEN),
    )


def check_tables(
    tables: ModelTables, estimator: Any, config: ModelConfig, frames: list[pd.DataFrame]
) -> float:
    """The largest relative difference between the tables' prices and the
    pipeline's over the rows of ``frames`` (validated feature frames); raises
    :class:`CompileError` above :data:`TOLERANCE`."""
    from regression_model.scoring.validation import validate_inputs

    scorer = TableScorer(tables, config)
    worst = 0.0
    for frame in frames:
        checked = validate_inputs(frame, config)
        rows = checked.valid
        contributions = scorer.contributions(
            checked.numbers[rows], checked.codes[rows], checked.categories
        )
        compiled = np.exp(scorer.log_prices(contributions))
        expected = np.asarray(estimator.predict(checked.features), dtype="float64")
        difference = float(np.max(np.abs(compiled - expected) / np.abs(expected), initial=0.0))
        worst = max(worst, difference)
    if not worst <= TOLERANCE:
        raise CompileError(
            f"the compiled tables price houses up to {worst:.3g} (relative) away from the "
            f"fitted pipeline, above the tolerance {TOLERANCE}: a compile rule is wrong"
        )
    return worst
