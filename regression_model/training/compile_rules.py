"""The compile rules: one per pipeline step type, each turning what a fitted
step learned into recipes (see ``training/compiler.py``, which walks the
pipeline through them and folds the recipes into model tables).

A recipe says how one column the pipeline carries is made from the inputs;
:data:`RULES` maps each step type (its exact class) to its rule, which reads
what the step learned (``imputer_dict_``, ``encoder_dict_``, ``mean_``,
``coef_``, ...) and updates the columns' recipes. A step composed in a way the
tables cannot express stops training with a :class:`CompileError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import UnionType
from typing import Any, get_args

import numpy as np
from feature_engine.encoding import OneHotEncoder, RareLabelEncoder
from feature_engine.imputation import AddMissingIndicator, CategoricalImputer, MeanMedianImputer
from feature_engine.transformation import LogCpTransformer, LogTransformer
from sklearn.preprocessing import SplineTransformer, StandardScaler

from regression_model.training.features import (
    FrequentLabelImputer,
    Mapper,
    SinglePassOneHotEncoder,
    SplineFeatures,
    TemporalVariableTransformer,
    spline_column,
)
from regression_model.training.linear_model import TrimmedLasso, TrimmedLassoCV


class CompileError(RuntimeError):
    """The fitted pipeline cannot be written as model tables."""


# -- recipes: how each column the pipeline carries is made from the inputs --


@dataclass
class Number:
    """A numerical variable, as transformed so far."""

    variable: str
    fill: float | None = None
    reference: tuple[str, float] | None = None
    log_offset: float | None = None


@dataclass
class Label:
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
class Indicator:
    """1 where the variable is missing, else 0."""

    variable: str


@dataclass
class Mapped:
    """A label turned into a number by a mapping."""

    label: Label
    mapping: dict[str, float]


@dataclass
class Dummy:
    """1 where the (final) label is ``category``, else 0."""

    label: Label
    category: str


@dataclass
class SplineBasis:
    """The ``index``-th column of ``spline`` (a fitted ``SplineTransformer``)
    at a numerical variable, as it was when the splines were made."""

    number: Number
    spline: SplineTransformer
    index: int


Recipe = Number | Label | Indicator | Mapped | Dummy | SplineBasis


@dataclass
class CompileState:
    """What the rules have learned so far: each column's recipe, then the
    scaler's centers and scales and the regression's weights."""

    columns: dict[str, Recipe]
    #: column -> (center, scale), once standardised
    scaling: dict[str, tuple[float, float]] = field(default_factory=dict)
    coefficients: dict[str, float] | None = None
    intercept: float | None = None


def _require(state: CompileState, step: str, name: str, kind: type | UnionType) -> Any:
    recipe = state.columns.get(name)
    if not isinstance(recipe, kind):
        found = type(recipe).__name__.lower() if recipe else "absent"
        # A union (Number | Label) has no __name__: name each of its types.
        expected = " or ".join(t.__name__.lower() for t in (get_args(kind) or (kind,)))
        raise CompileError(
            f"step {step!r}: column {name!r} is {found}, "
            f"expected {expected}; the tables cannot express this order of steps"
        )
    return recipe


def _scaling_done(state: CompileState, step: str) -> None:
    if state.scaling or state.coefficients is not None:
        raise CompileError(f"step {step!r} comes after scaling or the regression")


# -- one rule per step type --


def _missing_indicator(step: AddMissingIndicator, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable in map(str, step.variables_):
        recipe = _require(state, name, variable, Number | Label)
        if recipe.fill is not None:
            raise CompileError(f"step {name!r}: {variable} was already imputed")
        state.columns[f"{variable}_na"] = Indicator(variable)


def _categorical_imputer(step: CategoricalImputer, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable, fill in step.imputer_dict_.items():
        recipe = _require(state, name, str(variable), Label)
        if recipe.fill is not None or recipe.grouping is not None:
            raise CompileError(f"step {name!r}: {variable} imputed after another transform")
        recipe.fill = str(fill)


def _median_imputer(step: MeanMedianImputer, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable, fill in step.imputer_dict_.items():
        recipe = _require(state, name, str(variable), Number)
        if recipe.fill is not None or recipe.reference or recipe.log_offset is not None:
            raise CompileError(f"step {name!r}: {variable} imputed after another transform")
        recipe.fill = float(fill)


def _elapsed_years(step: TemporalVariableTransformer, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    reference = _require(state, name, step.reference_variable, Number)
    if reference.fill is None or reference.reference or reference.log_offset is not None:
        raise CompileError(
            f"step {name!r}: the reference {step.reference_variable} must be imputed and "
            "otherwise unchanged"
        )
    for variable in step.variables:
        recipe = _require(state, name, variable, Number)
        if recipe.fill is None or recipe.reference or recipe.log_offset is not None:
            raise CompileError(f"step {name!r}: {variable} must be imputed and unchanged")
        recipe.reference = (step.reference_variable, reference.fill)


def _log(offsets: dict[str, float], step: Any, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    if step.base != "e":
        raise CompileError(f"step {name!r}: only natural logs are compiled (base {step.base!r})")
    for variable, offset in offsets.items():
        recipe = _require(state, name, variable, Number)
        if recipe.fill is None or recipe.log_offset is not None:
            raise CompileError(f"step {name!r}: {variable} must be imputed and not yet logged")
        recipe.log_offset = float(offset)


def _log_transformer(step: LogTransformer, name: str, state: CompileState) -> None:
    _log(dict.fromkeys(map(str, step.variables_), 0.0), step, name, state)


def _log_cp_transformer(step: LogCpTransformer, name: str, state: CompileState) -> None:
    if isinstance(step.C_, dict):
        offsets = {str(v): float(c) for v, c in step.C_.items()}
    else:
        offsets = dict.fromkeys(map(str, step.variables_), float(step.C_))
    _log(offsets, step, name, state)


def _splines(step: SplineFeatures, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable, spline in step.splines_.items():
        recipe = _require(state, name, variable, Number)
        if recipe.fill is None:
            raise CompileError(f"step {name!r}: {variable} must be imputed first")
        for index in range(spline.n_features_out_):
            state.columns[spline_column(variable, index)] = SplineBasis(
                replace(recipe), spline, index
            )


def _mapper(step: Mapper, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable in step.variables:
        recipe = _require(state, name, variable, Label)
        state.columns[variable] = Mapped(
            replace(recipe, known=recipe.known | set(step.mappings)),
            {str(k): float(v) for k, v in step.mappings.items()},
        )


def _rare_labels(step: RareLabelEncoder, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable, kept in step.encoder_dict_.items():
        recipe = _require(state, name, variable, Label)
        if recipe.fill is None or recipe.grouping is not None:
            raise CompileError(f"step {name!r}: {variable} must be imputed and not yet grouped")
        labels = frozenset(map(str, kept))
        recipe.grouping = (labels, str(step.replace_with))
        recipe.known |= labels


def _one_hot(step: OneHotEncoder, name: str, state: CompileState) -> None:
    _scaling_done(state, name)
    for variable, categories in step.encoder_dict_.items():
        recipe = _require(state, name, variable, Label)
        del state.columns[variable]
        known = recipe.known | set(map(str, categories))
        recipe = replace(recipe, known=known)
        for category in categories:
            state.columns[f"{variable}_{category}"] = Dummy(recipe, str(category))


def _scaler(step: StandardScaler, name: str, state: CompileState) -> None:
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


def _lasso(step: TrimmedLasso | TrimmedLassoCV, name: str, state: CompileState) -> None:
    if not state.scaling or state.coefficients is not None:
        raise CompileError(f"step {name!r}: the regression must follow the scaler, once")
    columns = [str(c) for c in step.feature_names_in_]
    if columns != list(state.scaling):
        raise CompileError(f"step {name!r}: its columns are not the scaler's")
    state.coefficients = dict(zip(columns, map(float, step.coef_), strict=True))
    state.intercept = float(step.intercept_)


#: The compile rule of each step type (exact classes: a subclass needs its own).
RULES: dict[type, Callable[[Any, str, CompileState], None]] = {
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
