"""A price's ranges: the low and high price at each coverage the model was
calibrated for, computed from the compiled :class:`PriceIntervals`.

A house's range is its log price plus its scale times the conformal
quantiles of the scaled log error (``training/intervals.py`` derives them).
The scale, the house's difficulty, is a sum of terms like the price's own,
so the same :class:`TableScorer` computes it, row by row or in blocks: a
house gets the same bits alone and in any batch. Both engines call this with
their own log price, so their ranges agree as closely as their prices.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from regression_model.config.core import ModelConfig
from regression_model.scoring.tables import PriceIntervals, TableScorer


class PriceRange(TypedDict):
    """A priced house's range at one coverage, in dollars: the sale price of a
    house like it is within ``low``..``high`` with probability ``coverage``."""

    coverage: float
    low: float
    high: float


def price_ranges(
    lows: np.ndarray, highs: np.ndarray, coverages: Sequence[float], unpriced: Sequence[int]
) -> list[list[PriceRange] | None]:
    """Each row's ranges (``lows``/``highs``: a column per coverage) as
    :class:`PriceRange` dicts, None for the ``unpriced`` rows. Built a coverage
    at a time and then zipped into rows: a loop per row and coverage took
    40 % of pricing a large frame."""
    per_coverage: list[list[PriceRange]] = [
        [
            {"coverage": coverage, "low": low, "high": high}
            for low, high in zip(lows[:, k].tolist(), highs[:, k].tolist(), strict=True)
        ]
        for k, coverage in enumerate(coverages)
    ]
    rows: list[list[PriceRange] | None] = (
        [list(ranges) for ranges in zip(*per_coverage, strict=True)]
        if per_coverage
        else [[] for _ in range(len(lows))]
    )
    for row in unpriced:
        rows[row] = None
    return rows


class UnknownCoverageError(ValueError):
    """A coverage was asked for that the model was not calibrated for."""


def range_names(price: str, coverage: float) -> tuple[str, str]:
    """The names of the low and high prices at ``coverage`` beside a price
    named ``price``, where ranges are columns (files, SQL):
    ``SalePrice_low_80``, ``SalePrice_high_80``."""
    percent = f"{coverage * 100:g}"
    return f"{price}_low_{percent}", f"{price}_high_{percent}"


class IntervalScorer:
    """The ranges of priced houses, at each calibrated coverage."""

    def __init__(self, intervals: PriceIntervals, config: ModelConfig) -> None:
        self.coverages = intervals.coverages
        self.lows = np.array([low for low, _ in intervals.quantiles])
        self.highs = np.array([high for _, high in intervals.quantiles])
        self.difficulty = (
            None if intervals.difficulty is None else TableScorer(intervals.difficulty, config)
        )

    def levels(self, coverages: Sequence[float] | None) -> list[int]:
        """The positions of the asked ``coverages`` (None: all), refusing any
        the model was not calibrated for. A coverage asked twice gets one
        range, at its first place. Anything but a sequence (a list, a tuple) of
        numbers is a ``TypeError``: a single number or a string is not one."""
        if coverages is None:
            return list(range(len(self.coverages)))
        if not isinstance(coverages, Sequence | np.ndarray) or isinstance(coverages, str | bytes):
            raise TypeError(
                "coverages must be a sequence of coverages, such as [0.8] or "
                f"[0.8, 0.9], got {type(coverages).__name__} {coverages!r}"
            )
        for coverage in coverages:
            if not isinstance(coverage, numbers.Real) or isinstance(coverage, bool):
                raise TypeError(
                    "coverages must be numbers, such as 0.8, got "
                    f"{type(coverage).__name__} {coverage!r}"
                )
        unknown = [c for c in coverages if c not in self.coverages]
        if unknown:
            raise UnknownCoverageError(
                f"no price range at coverage {', '.join(map(str, unknown))}: this model "
                f"has ranges at {', '.join(map(str, self.coverages))}"
            )
        return [self.coverages.index(c) for c in dict.fromkeys(coverages)]

    def scales(
        self, numbers: np.ndarray, codes: np.ndarray, categories: list[list[str]]
    ) -> np.ndarray:
        """Each row's scale (its difficulty), from a validation result's
        columns for the rows to score."""
        if self.difficulty is None:
            return np.ones(len(numbers))
        terms = self.difficulty.contributions(numbers, codes, categories)
        return np.exp(self.difficulty.log_prices(terms))  # type: ignore[no-any-return]

    def bounds(self, log_prices: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The low and high prices, one row per house and one column per
        coverage (element-wise: a row's bits never depend on the others)."""
        spread = scales[:, None]
        low = np.exp(np.ascontiguousarray(log_prices[:, None] + spread * self.lows))
        high = np.exp(np.ascontiguousarray(log_prices[:, None] + spread * self.highs))
        return low, high
