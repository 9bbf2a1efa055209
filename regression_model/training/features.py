"""Custom transformers that feature-engine does not provide.

All follow the scikit-learn estimator contract: ``__init__`` stores its
parameters unchanged, ``fit`` only checks its input (there is nothing to
learn), ``transform`` returns a new frame and never mutates its input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import numpy as np
import pandas as pd
from feature_engine.encoding import OneHotEncoder
from feature_engine.imputation import CategoricalImputer
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import SplineTransformer
from sklearn.utils.validation import check_is_fitted


class TemporalVariableTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Replace year variables by the years elapsed until a reference year.

    Parameters
    ----------
    variables : list of str
        Year columns to transform (e.g. ``YearBuilt``).
    reference_variable : str
        The year they are measured against (e.g. ``YrSold``); kept as is.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns seen in ``fit``.
    """

    def __init__(self, variables: Sequence[str], reference_variable: str) -> None:
        self.variables = variables
        self.reference_variable = reference_variable

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None) -> Self:
        _require_columns(X, [*self.variables, self.reference_variable])
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        _require_columns(X, [*self.variables, self.reference_variable])
        X = X.copy()
        for variable in self.variables:
            X[variable] = X[self.reference_variable] - X[variable]
        return X


class Mapper(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Map the labels of ordinal variables to numbers.

    Parameters
    ----------
    variables : list of str
        Columns to map.
    mappings : dict
        Label to number. A label without a mapping is an error, not a silent
        NaN: input validation must have refused it before.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns seen in ``fit``.
    """

    def __init__(self, variables: Sequence[str], mappings: Mapping[str, float]) -> None:
        self.variables = variables
        self.mappings = mappings

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None) -> Self:
        _require_columns(X, self.variables)
        self._check_labels(X)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        _require_columns(X, self.variables)
        self._check_labels(X)
        X = X.copy()
        for variable in self.variables:
            X[variable] = X[variable].map(self.mappings).astype("float64")
        return X

    def _check_labels(self, X: pd.DataFrame) -> None:
        for variable in self.variables:
            unknown = set(X[variable].unique()) - set(self.mappings)
            if unknown:
                raise ValueError(
                    f"{variable}: labels without a mapping: {sorted(map(str, unknown))}"
                )


class SinglePassOneHotEncoder(OneHotEncoder):
    """feature-engine's ``OneHotEncoder``, with ``transform`` in one pass.

    Fitting, parameters and output (columns, order, values, dtypes) are the
    parent's; its ``transform`` appends each dummy column with its own
    ``pd.concat``, which copies the frame ~200 times and took ~120 ms for a
    single house. Here the dummies are built first and joined once.
    """

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = pd.DataFrame(self._check_transform_input_and_state(X))
        _check_no_missing(X, self.variables_)
        dummies = {
            f"{feature}_{category}": np.where(X[feature] == category, 1, 0)
            for feature in self.variables_
            for category in self.encoder_dict_[feature]
        }
        encoded = pd.concat([X, pd.DataFrame(dummies, index=X.index)], axis=1)
        return encoded.drop(columns=list(self.variables_))


class FrequentLabelImputer(CategoricalImputer):
    """feature-engine's ``CategoricalImputer(imputation_method="frequent")``,
    with ties broken by label order instead of refused.

    feature-engine raises when two labels are equally frequent. The full
    training data has no tie, but a cross-validation fold can
    (``Foundation``: PConc 647 and CBlock 634 houses): with the tie broken by
    the label that sorts first, every fold of every seed fits, and the same
    rows always give the same fill. Without a tie the fill is the parent's.

    Parameters
    ----------
    variables : list of str
        Categorical columns to impute.

    Attributes
    ----------
    imputer_dict_ : dict
        The fill label of each variable.
    """

    # The parent's other parameters, fixed: this class does one job.
    imputation_method = "frequent"
    return_object = False
    ignore_format = False

    def __init__(self, variables: Sequence[str]) -> None:
        self.variables = variables

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None) -> Self:
        _require_columns(X, self.variables)
        self.variables_ = list(self.variables)
        # Series.mode() lists every most frequent label, sorted: take the first.
        self.imputer_dict_ = {v: X[v].mode().iloc[0] for v in self.variables_}
        self._get_feature_names_in(X)  # type: ignore[no-untyped-call]
        return self


class SplineFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Add cubic spline columns of numerical variables, so that a linear model
    can bend each variable's term into a smooth curve.

    For each variable, knots are placed at evenly spaced quantiles of its
    training values (repeated quantiles merged: a variable that is mostly 0
    gets fewer knots; one with a single value in training gets none, there
    being nothing to bend), and scikit-learn's ``SplineTransformer`` makes
    the B-spline columns on them. Beyond the outermost knots (the training
    range) each column continues as a straight line, so a house larger than
    any in training gets a price that grows steadily, not a cubic's swing.
    The variable itself stays: the model adds a weighted sum of its spline
    columns to its straight-line term, still a function of this variable
    alone.

    Parameters
    ----------
    variables : list of str
        Numerical columns (already imputed and transformed) to add splines of.
    n_knots : int
        Quantiles to place knots at (before merging repeats), at least 2.
    degree : int, default 3
        Degree of the spline pieces.

    Attributes
    ----------
    splines_ : dict
        The fitted ``SplineTransformer`` of each variable with more than one
        training value; its knots are the variable's training quantiles.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    """

    def __init__(self, variables: Sequence[str], n_knots: int, degree: int = 3) -> None:
        self.variables = variables
        self.n_knots = n_knots
        self.degree = degree

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None) -> Self:
        _require_columns(X, self.variables)
        if self.n_knots < 2:
            raise ValueError(f"n_knots must be at least 2, got {self.n_knots}")
        self.splines_: dict[str, SplineTransformer] = {}
        for variable in self.variables:
            values = self._values(X, variable)
            knots = np.unique(np.quantile(values, np.linspace(0.0, 1.0, self.n_knots)))
            if len(knots) < 2:
                continue
            self.splines_[variable] = SplineTransformer(
                knots=knots.reshape(-1, 1),
                degree=self.degree,
                extrapolation="linear",
                include_bias=False,
            ).fit(values.reshape(-1, 1))
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        _require_columns(X, self.variables)
        columns: dict[str, np.ndarray] = {}
        for variable, spline in self.splines_.items():
            basis = spline.transform(self._values(X, variable).reshape(-1, 1))
            for j in range(basis.shape[1]):
                columns[spline_column(variable, j)] = basis[:, j]
        return pd.concat([X, pd.DataFrame(columns, index=X.index)], axis=1)

    @staticmethod
    def _values(X: pd.DataFrame, variable: str) -> np.ndarray:
        values = X[variable].to_numpy(dtype="float64")
        if np.isnan(values).any():
            raise ValueError(f"{variable}: missing values; impute before the splines")
        return values


def spline_column(variable: str, index: int) -> str:
    """The name of a variable's ``index``-th spline column."""
    return f"{variable}_spline{index}"


def _check_no_missing(X: pd.DataFrame, variables: Sequence[str]) -> None:
    if X[list(variables)].isna().any().any():
        raise ValueError("one-hot encoding: categorical variables contain NaN")


def _require_columns(X: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(X).__name__}")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(f"missing columns: {missing}")
