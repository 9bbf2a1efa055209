"""The regression step of the pipeline: a Lasso, refitted without the
houses it cannot explain, with its penalty chosen by cross-validation."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Lasso, lasso_path
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted, validate_data

#: MAD * this estimates the standard deviation of normally distributed residuals.
_MAD_TO_STD = 1.4826


def _row_sums(estimator: Any, X: Any) -> np.ndarray:
    """``X @ coef_ + intercept_``, such that a row's prediction never depends
    on the other rows.

    ``Lasso.predict`` computes ``X @ coef_`` with BLAS, whose blocking (and so
    the last bits of each row's sum) changes with the number of rows and the
    CPU kernel chosen at run time: the same house could be priced 1e-15 apart
    alone and in a batch. Here each row is reduced on its own, by NumPy's
    fixed-order pairwise summation over a contiguous row, so a house gets the
    same bits in any batch, chunk or process.
    """
    check_is_fitted(estimator)
    values = validate_data(estimator, X, reset=False, dtype=np.float64)
    rows = np.ascontiguousarray(values)
    return (rows * estimator.coef_).sum(axis=1) + estimator.intercept_  # type: ignore[no-any-return]


class TrimmedLasso(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A Lasso refitted without the training rows it cannot explain.

    Fits a Lasso on every row, estimates the residuals' spread robustly
    (1.4826 x their median absolute deviation, the standard deviation were
    they normal), then fits again on the rows whose residual is within
    ``trim`` of those standard deviations. A handful of sales far from what
    the other 1,400 houses say (a family sale, a house sold with its
    contents, a data error) no longer pull every coefficient towards them.
    The model is still one linear function of the columns, so it compiles
    like a Lasso; predictions sum each row on its own (see ``_row_sums``),
    so a house gets the same bits in any batch.

    Parameters
    ----------
    alpha : float
        The Lasso's L1 penalty (scikit-learn's ``alpha``), for both fits.
    trim : float
        Rows whose first-fit residual is beyond this many robust standard
        deviations are left out of the second fit.
    max_iter : int
        Coordinate-descent iterations allowed per fit.

    Attributes
    ----------
    coef_, intercept_ : the second fit's coefficients and intercept.
    trimmed_ : ndarray of bool, one per training row: left out of the second fit.
    residual_scale_ : float, the robust standard deviation of the first fit's residuals.
    feature_names_in_, n_features_in_ : the columns seen in ``fit``.
    """

    coef_: np.ndarray
    intercept_: float
    trimmed_: np.ndarray
    residual_scale_: float

    def __init__(self, alpha: float = 1.0, trim: float = 4.0, max_iter: int = 1000) -> None:
        self.alpha = alpha
        self.trim = trim
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> Self:
        values, target = validate_data(self, X, y, reset=True, dtype=np.float64, y_numeric=True)
        [fit] = _trimmed_fits(values, target, [self.alpha], self.trim, self.max_iter)
        (self.coef_, self.intercept_, self.trimmed_, self.residual_scale_) = fit
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _row_sums(self, X)


class TrimmedLassoCV(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A :class:`TrimmedLasso` whose ``alpha`` is chosen by cross-validation
    on the rows it is fitted on (as scikit-learn's ``LassoCV`` does).

    For each of ``cv`` folds of the training rows, a trimmed Lasso is fitted
    on the other folds for every penalty in ``alphas`` and scored on the fold
    (root mean squared error over all its rows, trimmed or not); the penalty
    with the lowest mean wins (the larger one on a tie), and the model is
    fitted with it on every row. Placed after the feature steps of a
    pipeline, which learn from the features alone, this is the inner loop of
    a nested cross-validation: the penalty never sees the prices it is
    evaluated on.

    Parameters
    ----------
    alphas : list of float
        Candidate penalties.
    trim, max_iter : as for :class:`TrimmedLasso`.
    cv : int
        Folds of the search.
    random_state : int
        Seed of the folds' shuffle.

    Attributes
    ----------
    alpha_ : float, the chosen penalty.
    cv_rmse_ : dict, the mean validation RMSE of each candidate penalty.
    coef_, intercept_, trimmed_, residual_scale_ : as for :class:`TrimmedLasso`,
        fitted with ``alpha_`` on every row.
    """

    coef_: np.ndarray
    intercept_: float
    trimmed_: np.ndarray
    residual_scale_: float

    def __init__(
        self,
        alphas: list[float],
        trim: float = 4.0,
        cv: int = 5,
        random_state: int = 0,
        max_iter: int = 1000,
    ) -> None:
        self.alphas = alphas
        self.trim = trim
        self.cv = cv
        self.random_state = random_state
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> Self:
        values, target = validate_data(self, X, y, reset=True, dtype=np.float64, y_numeric=True)
        alphas = sorted(set(map(float, self.alphas)), reverse=True)
        squared = np.zeros(len(alphas))
        folds = KFold(self.cv, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(values):
            fits = _trimmed_path(values[train], target[train], alphas, self.trim, self.max_iter)
            for i, (coef, intercept) in enumerate(fits):
                errors = target[test] - (values[test] @ coef + intercept)
                squared[i] += float(np.mean(errors**2))
        rmse = np.sqrt(squared / self.cv)
        best = int(np.argmin(rmse))  # first minimum: the larger penalty on a tie
        self.alpha_ = alphas[best]
        self.cv_rmse_ = dict(zip(alphas, map(float, rmse), strict=True))
        [final] = _trimmed_fits(values, target, [self.alpha_], self.trim, self.max_iter)
        (self.coef_, self.intercept_, self.trimmed_, self.residual_scale_) = final
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _row_sums(self, X)


def _trimmed_fits(
    X: np.ndarray, y: np.ndarray, alphas: list[float], trim: float, max_iter: int
) -> list[tuple[np.ndarray, float, np.ndarray, float]]:
    """``(coef, intercept, trimmed rows, residual scale)`` of a trimmed Lasso
    for each penalty: two scikit-learn ``Lasso`` fits (cyclic coordinate
    descent on the Gram matrix, from zero: deterministic, so training is
    reproducible and anyone can refit it with ``Lasso`` alone)."""
    fits = []
    for alpha in alphas:
        first = Lasso(alpha=alpha, max_iter=max_iter, precompute=True).fit(X, y)
        residuals = y - first.predict(X)
        scale = float(_MAD_TO_STD * np.median(np.abs(residuals - np.median(residuals))))
        trimmed = np.abs(residuals) > trim * scale
        second = Lasso(alpha=alpha, max_iter=max_iter, precompute=True)
        second.fit(X[~trimmed], y[~trimmed])
        fits.append((second.coef_, float(second.intercept_), trimmed, scale))
    return fits


def _trimmed_path(
    X: np.ndarray, y: np.ndarray, alphas: list[float], trim: float, max_iter: int
) -> list[tuple[np.ndarray, float]]:
    """``(coef, intercept)`` of a trimmed Lasso for each penalty (largest
    first), for the search: the same fits as :func:`_trimmed_fits` up to the
    solver's tolerance, several times faster. The first fits of all
    penalties are one warm-started path; each second fit starts from the
    previous penalty's, on a Gram matrix updated for the rows left out
    rather than recomputed."""
    x_mean = X.mean(axis=0)
    centred = X - x_mean
    products = centred.T @ centred + len(X) * np.outer(x_mean, x_mean)  # sum of x x^T
    first = _centred_path(X, y, alphas, max_iter=max_iter, start=None, gram=centred.T @ centred)
    fits = []
    previous = None
    for alpha, (coef, intercept) in zip(alphas, first, strict=True):
        residuals = y - (X @ coef + intercept)
        scale = _MAD_TO_STD * np.median(np.abs(residuals - np.median(residuals)))
        kept = np.abs(residuals) <= trim * scale
        left_out = X[~kept]
        kept_mean = X[kept].mean(axis=0)
        gram = products - left_out.T @ left_out - kept.sum() * np.outer(kept_mean, kept_mean)
        [fit] = _centred_path(
            X[kept], y[kept], [alpha], max_iter=max_iter, start=previous, gram=gram
        )
        fits.append(fit)
        previous = fit[0]
    return fits


def _centred_path(
    X: np.ndarray,
    y: np.ndarray,
    alphas: list[float],
    *,
    max_iter: int,
    start: np.ndarray | None,
    gram: np.ndarray,
) -> list[tuple[np.ndarray, float]]:
    """Lasso with an intercept, as ``Lasso`` fits it: centre, solve on the
    (centred) ``gram``, shift."""
    x_mean, y_mean = X.mean(axis=0), float(y.mean())
    target = y - y_mean
    _, coefs, _ = lasso_path(
        X,  # only its shape is read: the solver works on the Gram matrix
        target,
        alphas=alphas,
        precompute=gram,
        Xy=(X - x_mean).T @ target,
        coef_init=start,
        max_iter=max_iter,
        check_input=False,
    )
    return [(coefs[:, i], y_mean - float(x_mean @ coefs[:, i])) for i in range(len(alphas))]
