"""A house's difficulty: how large the model's log error tends to be for a
house like it, from inputs known when it is priced. It sets the width of the
house's price ranges (``training/intervals.py``).

A ridge regression of ``log(|out-of-fold log error| + ERROR_FLOOR)`` on the
configured inputs: one coefficient per label of each categorical variable
(labels seen on fewer than ``difficulty_min_label_houses`` houses share
one, which unknown labels get too), and a straight line in each numerical
variable after the model's own rules for it (years before the sale, log).
It compiles to lookup and numeric terms like the price's, so serving scores
it with the same scorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.preprocessing import OneHotEncoder

from regression_model.config.core import ModelConfig
from regression_model.scoring.arithmetic import logs, years_before
from regression_model.scoring.tables import ModelTables
from regression_model.scoring.terms import LookupTerm, NumericTerm

#: Added to a house's absolute log error before its log is taken: a house
#: priced almost exactly would otherwise pull the fit towards log(0).
ERROR_FLOOR = 0.02


@dataclass(frozen=True)
class NumericInput:
    """How a numerical input enters the difficulty: the model's rules for it."""

    variable: str
    fill: float
    reference: str | None
    reference_fill: float | None
    log_offset: float | None

    def values(self, X: pd.DataFrame) -> np.ndarray:
        t = X[self.variable].to_numpy(dtype="float64")
        t = np.where(np.isnan(t), self.fill, t)
        if self.reference is not None and self.reference_fill is not None:
            year = X[self.reference].to_numpy(dtype="float64")
            t = years_before(np.where(np.isnan(year), self.reference_fill, year), t)
        if self.log_offset is not None:
            t = logs(t, np.full(len(t), self.log_offset))
        return t


class Difficulty:
    """The fitted difficulty model: its log scale for houses, and its tables."""

    def __init__(self, config: ModelConfig, X: pd.DataFrame, log_errors: np.ndarray) -> None:
        """Fit on validated features ``X`` and their out-of-fold log errors
        (one row per house and repeat: ``X`` may repeat houses)."""
        settings = config.intervals
        self.config = config
        self.categorical = settings.difficulty_categorical_vars
        reference = config.temporal_reference_var
        offsets = {**dict.fromkeys(config.log_vars, 0.0), **dict.fromkeys(config.log1p_vars, 1.0)}
        self.numeric = [
            NumericInput(
                variable=name,
                fill=float(X[name].median()),
                reference=reference if name in config.temporal_vars else None,
                reference_fill=(
                    float(X[reference].median()) if name in config.temporal_vars else None
                ),
                log_offset=offsets.get(name),
            )
            for name in settings.difficulty_numerical_vars
        ]
        self.encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=settings.difficulty_min_label_houses,
            sparse_output=False,
        )
        numbers = self._numbers(X)
        self.centers = numbers.mean(axis=0)
        self.spreads = np.where(numbers.std(axis=0) > 0, numbers.std(axis=0), 1.0)
        if self.categorical:
            self.encoder.fit(self._labels(X))
        self.ridge = Ridge(alpha=settings.difficulty_penalty).fit(
            self._design(X), np.log(np.abs(log_errors) + ERROR_FLOOR)
        )

    def _labels(self, X: pd.DataFrame) -> np.ndarray:
        labels = X[self.categorical].astype(object)
        return labels.where(labels.notna(), self.config.missing_label).astype(str).to_numpy()

    def _numbers(self, X: pd.DataFrame) -> np.ndarray:
        if not self.numeric:
            return np.empty((len(X), 0))
        return np.column_stack([term.values(X) for term in self.numeric])

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        parts = [(self._numbers(X) - self.centers) / self.spreads]
        if self.categorical:
            parts.append(self.encoder.transform(self._labels(X)))
        return np.hstack(parts)

    def log_scales(self, X: pd.DataFrame) -> np.ndarray:
        """Each house's log scale, as the fitted regression computes it."""
        return np.asarray(self.ridge.predict(self._design(X)), dtype="float64")

    def tables(self, version: str) -> ModelTables:
        """The same regression as model tables (``exp`` of their sum is the scale)."""
        coefficients = self.ridge.coef_.tolist()
        weights = coefficients[: len(self.numeric)]
        numeric = [
            NumericTerm(
                variable=term.variable,
                fill=term.fill,
                center=float(center),
                weight=weight / float(spread),
                reference=term.reference,
                reference_fill=term.reference_fill,
                log_offset=term.log_offset,
            )
            for term, center, spread, weight in zip(
                self.numeric, self.centers, self.spreads, weights, strict=True
            )
        ]
        lookup = []
        if self.categorical:
            position = len(self.numeric)
            infrequent = self.encoder.infrequent_categories_
            for variable, categories, rare in zip(
                self.categorical, self.encoder.categories_, infrequent, strict=True
            ):
                rare_labels = set() if rare is None else {str(label) for label in rare}
                frequent = [str(c) for c in categories if str(c) not in rare_labels]
                table = {label: coefficients[position + i] for i, label in enumerate(frequent)}
                position += len(frequent)
                other = 0.0
                if rare_labels:
                    other = coefficients[position]
                    position += 1
                    table.update(dict.fromkeys(sorted(rare_labels), other))
                missing = table.get(self.config.missing_label, other)
                lookup.append(LookupTerm(variable, table, missing=missing, other=other))
        return ModelTables(
            version=version,
            intercept=float(self.ridge.intercept_),
            numeric=numeric,
            lookup=lookup,
        )
