"""Compile the fitted pipeline into model tables (see ``scoring/tables.py``).

One compile rule per step type, found in a registry keyed by the exact class
of the step: each rule reads what the step learned (``imputer_dict_``,
``encoder_dict_``, ``mean_``, ``coef_``, ...) and records how it changes the
columns, as a small recipe per column. At the end every column the Lasso
weighs is traced back to one input variable, and each variable's columns are
folded into one term. A step type without a rule, or steps composed in a way
the tables cannot express, stop training with a message naming the step:
nothing falls back silently.

Training then checks the tables price every training and test house like the
pipeline, to a relative 1e-9 (``check_tables``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from feature_engine.encoding import OneHotEncoder, RareLabelEncoder
from feature_engine.imputation import AddMissingIndicator, CategoricalImputer, MeanMedianImputer
from feature_engine.transformation import LogCpTransformer, LogTransformer
from scipy.interpolate import BSpline, PPoly
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler

from regression_model.config.core import ModelConfig
from regression_model.scoring.tables import (
    LookupTerm,
    ModelTables,
    NumericTerm,
    Spline,
    TableScorer,
)
from regression_model.training.features import (
    FrequentLabelImputer,
    Mapper,
    SinglePassOneHotEncoder,
    SplineFeatures,
    TemporalVariableTransformer,
    spline_column,
)
from regression_model.training.linear_model import TrimmedLasso, TrimmedLassoCV
from regression_model.version import __version__

#: How far a compiled price may be from the pipeline's (relative).
TOLERANCE = 1e-9


class CompileError(RuntimeError):
    """The fitted pipeline cannot be written as model tables."""


# -- recipes: how each column the pipeline carries is made from the inputs --


@dataclass
class _Number:
    """A numerical variable, as transformed so far."""

    variable: str
    fill: float | None = None
    reference: tuple[str, float] | None = None
    log_offset: float | None = None


@dataclass
class _Label:
    """A categorical variable's label, as transformed so far."""

    variable: str
    fill: str | None = None
    #: (labels kept, label the others become)
    grouping: tuple[frozenset[str], str] | None = None
    known: frozenset[str] = frozenset()

    def final(self, label: str) -> str:
        if self.grouping is not None and label not in self.grouping[0]:
            return self.grouping[1]
        return label


@dataclass
class _Indicator:
    """1 where the variable is missing, else 0."""

    variable: str


@dataclass
class _Mapped:
    """A label turned into a number by a mapping."""

    label: _Label
    mapping: dict[str, float]


@dataclass
class _Dummy:
    """1 where the (final) label is ``category``, else 0."""

    label: _Label
    category: str


@dataclass
class _SplineBasis:
    """The ``index``-th column of ``spline`` (a fitted ``SplineTransformer``)
    at a numerical variable, as it was when the splines were made."""

    number: _Number
    spline: SplineTransformer
    index: int


_Recipe = _Number | _Label | _Indicator | _Mapped | _Dummy | _SplineBasis


@dataclass
class _State:
    columns: dict[str, _Recipe]
    #: column -> (center, scale), once standardised
    scaling: dict[str, tuple[float, float]] = field(default_factory=dict)
    coefficients: dict[str, float] | None = None
    intercept: float | None = None


def _require(state: _State, step: str, name: str, kind: type) -> Any:
    recipe = state.columns.get(name)
    if not isinstance(recipe, kind):
        raise CompileError(
            f"step {step!r}: column {name!r} is {type(recipe).__name__ if recipe else 'absent'}, "
            f"expected {kind.__name__.strip('_').lower()}; the tables cannot express this order "
            "of steps"
        )
    return recipe


def _scaling_done(state: _State, step: str) -> None:
    if state.scaling or state.coefficients is not None:
        raise CompileError(f"step {step!r} comes after scaling or the regression")


# -- one rule per step type --


def _missing_indicator(step: AddMissingIndicator, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable in map(str, step.variables_):
        recipe = _require(state, name, variable, _Number | _Label)  # type: ignore[arg-type]
        if recipe.fill is not None:
            raise CompileError(f"step {name!r}: {variable} was already imputed")
        state.columns[f"{variable}_na"] = _Indicator(variable)


def _categorical_imputer(step: CategoricalImputer, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable, fill in step.imputer_dict_.items():
        recipe = _require(state, name, str(variable), _Label)
        if recipe.fill is not None or recipe.grouping is not None:
            raise CompileError(f"step {name!r}: {variable} imputed after another transform")
        recipe.fill = str(fill)


def _median_imputer(step: MeanMedianImputer, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable, fill in step.imputer_dict_.items():
        recipe = _require(state, name, str(variable), _Number)
        if recipe.fill is not None or recipe.reference or recipe.log_offset is not None:
            raise CompileError(f"step {name!r}: {variable} imputed after another transform")
        recipe.fill = float(fill)


def _elapsed_years(step: TemporalVariableTransformer, name: str, state: _State) -> None:
    _scaling_done(state, name)
    reference = _require(state, name, step.reference_variable, _Number)
    if reference.fill is None or reference.reference or reference.log_offset is not None:
        raise CompileError(
            f"step {name!r}: the reference {step.reference_variable} must be imputed and "
            "otherwise unchanged"
        )
    for variable in step.variables:
        recipe = _require(state, name, variable, _Number)
        if recipe.fill is None or recipe.reference or recipe.log_offset is not None:
            raise CompileError(f"step {name!r}: {variable} must be imputed and unchanged")
        recipe.reference = (step.reference_variable, reference.fill)


def _log(offsets: dict[str, float], step: Any, name: str, state: _State) -> None:
    _scaling_done(state, name)
    if step.base != "e":
        raise CompileError(f"step {name!r}: only natural logs are compiled (base {step.base!r})")
    for variable, offset in offsets.items():
        recipe = _require(state, name, variable, _Number)
        if recipe.fill is None or recipe.log_offset is not None:
            raise CompileError(f"step {name!r}: {variable} must be imputed and not yet logged")
        recipe.log_offset = float(offset)


def _log_transformer(step: LogTransformer, name: str, state: _State) -> None:
    _log(dict.fromkeys(map(str, step.variables_), 0.0), step, name, state)


def _log_cp_transformer(step: LogCpTransformer, name: str, state: _State) -> None:
    if isinstance(step.C_, dict):
        offsets = {str(v): float(c) for v, c in step.C_.items()}
    else:
        offsets = dict.fromkeys(map(str, step.variables_), float(step.C_))
    _log(offsets, step, name, state)


def _splines(step: SplineFeatures, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable, spline in step.splines_.items():
        recipe = _require(state, name, variable, _Number)
        if recipe.fill is None:
            raise CompileError(f"step {name!r}: {variable} must be imputed first")
        for index in range(spline.n_features_out_):
            state.columns[spline_column(variable, index)] = _SplineBasis(
                replace(recipe), spline, index
            )


def _mapper(step: Mapper, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable in step.variables:
        recipe = _require(state, name, variable, _Label)
        state.columns[variable] = _Mapped(
            replace(recipe, known=recipe.known | set(step.mappings)),
            {str(k): float(v) for k, v in step.mappings.items()},
        )


def _rare_labels(step: RareLabelEncoder, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable, kept in step.encoder_dict_.items():
        recipe = _require(state, name, variable, _Label)
        if recipe.fill is None or recipe.grouping is not None:
            raise CompileError(f"step {name!r}: {variable} must be imputed and not yet grouped")
        labels = frozenset(map(str, kept))
        recipe.grouping = (labels, str(step.replace_with))
        recipe.known |= labels


def _one_hot(step: OneHotEncoder, name: str, state: _State) -> None:
    _scaling_done(state, name)
    for variable, categories in step.encoder_dict_.items():
        recipe = _require(state, name, variable, _Label)
        del state.columns[variable]
        known = recipe.known | set(map(str, categories))
        recipe = replace(recipe, known=known)
        for category in categories:
            state.columns[f"{variable}_{category}"] = _Dummy(recipe, str(category))


def _scaler(step: StandardScaler, name: str, state: _State) -> None:
    _scaling_done(state, name)
    columns = [str(c) for c in step.feature_names_in_]
    if set(columns) != set(state.columns):
        raise CompileError(
            f"step {name!r} scales columns {sorted(set(columns) ^ set(state.columns))} "
            "that the compiled steps do not produce (or misses some)"
        )
    centers = step.mean_ if step.with_mean else np.zeros(len(columns))
    scales = step.scale_ if step.with_std else np.ones(len(columns))
    state.scaling = {
        c: (float(m), float(s)) for c, m, s in zip(columns, centers, scales, strict=True)
    }


def _lasso(step: TrimmedLasso | TrimmedLassoCV, name: str, state: _State) -> None:
    if not state.scaling or state.coefficients is not None:
        raise CompileError(f"step {name!r}: the regression must follow the scaler, once")
    columns = [str(c) for c in step.feature_names_in_]
    if columns != list(state.scaling):
        raise CompileError(f"step {name!r}: its columns are not the scaler's")
    state.coefficients = dict(zip(columns, map(float, step.coef_), strict=True))
    state.intercept = float(step.intercept_)


#: The compile rule of each step type (exact classes: a subclass needs its own).
RULES: dict[type, Callable[[Any, str, _State], None]] = {
    AddMissingIndicator: _missing_indicator,
    CategoricalImputer: _categorical_imputer,
    FrequentLabelImputer: _categorical_imputer,
    MeanMedianImputer: _median_imputer,
    TemporalVariableTransformer: _elapsed_years,
    LogTransformer: _log_transformer,
    LogCpTransformer: _log_cp_transformer,
    SplineFeatures: _splines,
    Mapper: _mapper,
    RareLabelEncoder: _rare_labels,
    SinglePassOneHotEncoder: _one_hot,
    StandardScaler: _scaler,
    TrimmedLasso: _lasso,
    TrimmedLassoCV: _lasso,
}


def compile_tables(estimator: Any, config: ModelConfig) -> ModelTables:
    """The model tables of a fitted ``build_pipeline`` estimator."""
    if not isinstance(estimator, TransformedTargetRegressor):
        raise CompileError(f"expected a TransformedTargetRegressor, got {type(estimator)}")
    if estimator.func is not np.log or estimator.inverse_func is not np.exp:
        raise CompileError("only a log / exp target transform is compiled")
    pipeline = estimator.regressor_
    if not isinstance(pipeline, Pipeline):
        raise CompileError(f"expected a Pipeline inside, got {type(pipeline).__name__}")
    state = _State(
        columns={
            **{v: _Number(v) for v in config.numerical_vars},
            **{v: _Label(v) for v in config.categorical_vars},
        }
    )
    for name, step in pipeline.steps:
        rule = RULES.get(type(step))
        if rule is None:
            raise CompileError(
                f"pipeline step {name!r} ({type(step).__module__}.{type(step).__name__}) has no "
                "compile rule: add one to regression_model/training/compiler.py so the model "
                "tables can express it"
            )
        rule(step, name, state)
    if state.coefficients is None or state.intercept is None:
        raise CompileError("the pipeline does not end with the regression")
    return _fold(state, config)


def _weight(state: _State, column: str) -> tuple[float, float, float]:
    """(coefficient, center, scale) of a column."""
    assert state.coefficients is not None
    center, scale = state.scaling[column]
    return state.coefficients[column], center, scale


def _effect(state: _State, column: str, value: float) -> float:
    coefficient, center, scale = _weight(state, column)
    return coefficient * ((value - center) / scale)


def _fold(state: _State, config: ModelConfig) -> ModelTables:
    """Fold each variable's columns (value, indicator, dummies) into one term."""
    by_variable: dict[str, list[tuple[str, _Recipe]]] = {}
    for column, recipe in state.columns.items():
        if isinstance(recipe, _Mapped | _Dummy):
            variable = recipe.label.variable
        elif isinstance(recipe, _SplineBasis):
            variable = recipe.number.variable
        else:
            variable = recipe.variable
        by_variable.setdefault(variable, []).append((column, recipe))
    numeric: list[NumericTerm] = []
    lookup: list[LookupTerm] = []
    for variable in config.features:
        columns = by_variable.pop(variable, [])
        kinds = {type(recipe) for _, recipe in columns}
        if kinds <= {_Number, _Indicator, _SplineBasis} and _Number in kinds:
            numeric.append(_numeric_term(variable, columns, state))
        elif kinds in ({_Mapped}, {_Dummy}):
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


def _numeric_term(variable: str, columns: list[tuple[str, _Recipe]], state: _State) -> NumericTerm:
    values = [(c, r) for c, r in columns if isinstance(r, _Number)]
    indicators = [c for c, r in columns if isinstance(r, _Indicator)]
    bases = [(c, r) for c, r in columns if isinstance(r, _SplineBasis)]
    (column, recipe), *others = values
    assert isinstance(recipe, _Number)
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
    variable: str, number: _Number, bases: list[tuple[str, _SplineBasis]], state: _State
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


def _lookup_term(variable: str, columns: list[tuple[str, _Recipe]], state: _State) -> LookupTerm:
    recipes = [r for _, r in columns]
    label = recipes[0].label  # type: ignore[union-attr]
    if label.fill is None:
        raise CompileError(f"{variable}: no imputation learned, a missing value cannot be priced")
    known = label.known | {label.fill}

    def value(raw: object) -> float | None:
        final = label.final(raw) if isinstance(raw, str) else label.grouping and label.grouping[1]
        total = 0.0
        for column, recipe in columns:
            if isinstance(recipe, _Mapped):
                if final not in recipe.mapping:
                    return None
                total += _effect(state, column, recipe.mapping[final])
            else:
                assert isinstance(recipe, _Dummy)
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
