"""The regression step of the pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Lasso
from sklearn.utils.validation import check_is_fitted, validate_data


class RowIndependentLasso(Lasso):  # type: ignore[misc]
    """A Lasso whose prediction for a row never depends on the other rows.

    ``Lasso.predict`` computes ``X @ coef_`` with BLAS, whose blocking (and so
    the last bits of each row's sum) changes with the number of rows and the
    CPU kernel chosen at run time: the same house could be priced 1e-15 apart
    alone and in a batch. Here each row is reduced on its own, by NumPy's
    fixed-order pairwise summation over a contiguous row, so a house gets the
    same bits in any batch, chunk or process. Fitting is plain ``Lasso``.
    """

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        values = validate_data(self, X, reset=False, dtype=np.float64)
        rows = np.ascontiguousarray(values)
        return (rows * self.coef_).sum(axis=1) + self.intercept_  # type: ignore[no-any-return]
