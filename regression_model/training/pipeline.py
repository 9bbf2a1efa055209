"""Assemble the model from config: feature-engine steps, splines, then a
trimmed Lasso that picks its own penalty.

Nothing here is learned or decided: every variable group, mapping,
hyperparameter and candidate penalty comes from ``config.yml``.
"""

from __future__ import annotations

import numpy as np
from feature_engine.encoding import RareLabelEncoder
from feature_engine.imputation import (
    AddMissingIndicator,
    CategoricalImputer,
    MeanMedianImputer,
)
from feature_engine.transformation import LogCpTransformer, LogTransformer
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from regression_model.config.core import ModelConfig
from regression_model.training.features import (
    FrequentLabelImputer,
    Mapper,
    SinglePassOneHotEncoder,
    SplineFeatures,
    TemporalVariableTransformer,
)
from regression_model.training.linear_model import TrimmedLassoCV


def _names(variables: list[str]) -> list[str | int]:
    # feature-engine types `variables` as list[str | int]; list is invariant.
    return list(variables)


def build_pipeline(config: ModelConfig) -> TransformedTargetRegressor:
    """An unfitted estimator whose ``predict`` returns prices in dollars.

    The Lasso is fitted on log(SalePrice), where errors are relative and the
    target is close to normal; ``TransformedTargetRegressor`` keeps the log
    and its inverse inside the artifact so no caller can forget them. Every
    step before the regression learns from the features alone, never the
    prices; the regression chooses its penalty by cross-validation within
    the rows it is fitted on, so cross-validating this estimator is a nested
    cross-validation.
    """
    features = Pipeline(
        [
            (
                "missing_indicator",
                AddMissingIndicator(
                    variables=_names(config.numerical_vars_with_na_indicator),
                    missing_only=False,
                ),
            ),
            (
                "categorical_none_imputation",
                CategoricalImputer(
                    imputation_method="missing",
                    fill_value=config.missing_label,
                    variables=_names(config.categorical_vars_na_means_none),
                ),
            ),
            (
                "categorical_frequent_imputation",
                FrequentLabelImputer(variables=config.categorical_vars_imputed_frequent),
            ),
            (
                "numerical_median_imputation",
                MeanMedianImputer(
                    imputation_method="median", variables=_names(config.numerical_vars)
                ),
            ),
            (
                "elapsed_years",
                TemporalVariableTransformer(
                    variables=config.temporal_vars,
                    reference_variable=config.temporal_reference_var,
                ),
            ),
            ("log", LogTransformer(variables=_names(config.log_vars))),
            ("log1p", LogCpTransformer(variables=_names(config.log1p_vars), C=1)),
            ("splines", SplineFeatures(variables=config.spline_vars, n_knots=config.spline_knots)),
            (
                "quality_mapping",
                Mapper(variables=config.quality_vars, mappings=config.quality_mappings),
            ),
            (
                "rare_label_encoding",
                RareLabelEncoder(
                    tol=config.rare_label_tolerance,
                    n_categories=config.rare_label_n_categories,
                    replace_with=config.rare_label,
                    variables=_names(config.nominal_vars),
                ),
            ),
            ("one_hot_encoding", SinglePassOneHotEncoder(variables=_names(config.nominal_vars))),
            ("scaler", StandardScaler().set_output(transform="pandas")),
            (
                "lasso",
                TrimmedLassoCV(
                    alphas=config.alpha_grid,
                    trim=config.trim_threshold,
                    cv=config.tuning_folds,
                    random_state=config.random_state,
                    max_iter=config.max_iter,
                ),
            ),
        ]
    )
    return TransformedTargetRegressor(
        regressor=features, func=np.log, inverse_func=np.exp, check_inverse=False
    )
