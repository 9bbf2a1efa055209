"""The simpler models the model must beat, fitted and measured on the same
folds as the model (``training/evaluation.py``).

If a model with all 79 features, splines and a tuned penalty does not price
houses clearly better than the median price of their neighbourhood, or than
least squares on five obvious features, its complexity has not earned its
place. Both baselines follow the scikit-learn estimator contract and predict
prices in dollars, like the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import check_is_fitted


class GroupMedianPrice(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """The median training price of the house's group (e.g. its
    neighbourhood); the overall median for a group not seen in training or
    a missing label.

    Parameters
    ----------
    group : str
        The categorical column that forms the groups.

    Attributes
    ----------
    medians_ : dict, the median price of each group.
    overall_ : float, the median price of every training house.
    """

    def __init__(self, group: str) -> None:
        self.group = group

    def fit(self, X: pd.DataFrame, y: pd.Series) -> Self:
        prices = pd.Series(np.asarray(y, dtype="float64"), index=X.index)
        self.medians_ = {
            str(k): float(v) for k, v in prices.groupby(X[self.group]).median().items()
        }
        self.overall_ = float(prices.median())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        labels = X[self.group].astype(object)
        return np.array(
            [self.medians_.get(str(label), self.overall_) for label in labels], dtype="float64"
        )


class SmallLinearModel(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Least squares of log(price) on a few numerical features, each missing
    value replaced by the feature's training median.

    Parameters
    ----------
    variables : list of str
        The features, used as they are (no transforms, no interactions).

    Attributes
    ----------
    medians_ : dict, the fill of each feature.
    regression_ : the fitted ``LinearRegression`` (on log price).
    """

    def __init__(self, variables: Sequence[str]) -> None:
        self.variables = variables

    def fit(self, X: pd.DataFrame, y: pd.Series) -> Self:
        columns = X[list(self.variables)].astype("float64")
        self.medians_ = {str(k): float(v) for k, v in columns.median().items()}
        self.regression_ = LinearRegression().fit(
            self._filled(X), np.log(np.asarray(y, dtype="float64"))
        )
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        return np.exp(self.regression_.predict(self._filled(X)))  # type: ignore[no-any-return]

    def _filled(self, X: pd.DataFrame) -> np.ndarray:
        columns = X[list(self.variables)].astype("float64")
        return columns.fillna(self.medians_).to_numpy()
