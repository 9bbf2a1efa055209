"""A priced batch: each row's price and ranges, or the reasons it has none.

Shared by both engines (``scoring/model.py``): what they score is turned into
verdicts here, the same way, so a row refused for an implausible price is
refused alike whichever engine priced it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regression_model.config.core import Config
from regression_model.scoring.unknown_fields import IgnoredField
from regression_model.scoring.validation_result import WHOLE_ROW, InputError, ValidationResult


@dataclass(frozen=True)
class PricedBatch:
    """A batch's verdicts: ``prices`` (dollars; NaN where a row is not
    priced) and ``errors`` (rows counted from the batch's first, in row order).
    With the tables, ``scored`` are the rows that passed validation and
    ``contributions`` their terms (one row each)."""

    prices: np.ndarray
    #: (rows, coverages): each row's low and high price at each coverage of
    #: the model (NaN where the row is not priced)
    lows: np.ndarray
    highs: np.ndarray
    errors: list[InputError]
    scored: np.ndarray
    contributions: np.ndarray
    #: seconds spent validating ("validate") and scoring ("score")
    timings: dict[str, float]
    #: fields that are not model inputs, ignored (see ``validate_inputs``)
    warnings: list[IgnoredField]

    @property
    def priced(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.prices)))


def verdicts(
    config: Config,
    checked: ValidationResult,
    rows: np.ndarray,
    prices: np.ndarray,
    *,
    ranges: tuple[np.ndarray, np.ndarray],
    contributions: np.ndarray,
    timings: dict[str, float],
) -> PricedBatch:
    """Prices outside the plausible range are refused, like invalid rows."""
    low, high = config.model.plausible_price_range
    plausible = (prices >= low) & (prices <= high)
    if len(rows) == checked.n_rows and plausible.all():
        # Every row priced (the common case): the arrays as they are.
        return PricedBatch(
            prices, *ranges, checked.errors, rows, contributions, timings, checked.ignored
        )
    all_prices = np.full(checked.n_rows, np.nan)
    all_prices[rows[plausible]] = prices[plausible]
    lows, highs = (np.full((checked.n_rows, r.shape[1]), np.nan) for r in ranges)
    lows[rows[plausible]] = ranges[0][plausible]
    highs[rows[plausible]] = ranges[1][plausible]
    implausible = [
        implausible_price(row, price, low, high)
        for row, price in zip(rows[~plausible].tolist(), prices[~plausible].tolist(), strict=True)
    ]
    errors = checked.errors
    if implausible:
        errors = sorted([*errors, *implausible], key=lambda e: e.row)
    return PricedBatch(
        all_prices, lows, highs, errors, rows, contributions, timings, checked.ignored
    )


#: What the scorers take: the numbers, the label codes and each label's categories.
Columns = tuple[np.ndarray, np.ndarray, list[list[str]]]


def columns(checked: ValidationResult, rows: np.ndarray) -> Columns:
    """A validation result's columns for the given (valid) rows, as the
    scorers take them."""
    numbers, codes = checked.numbers, checked.codes
    if len(rows) < checked.n_rows:  # no copy when every row passed
        numbers, codes = numbers[rows], codes[rows]
    return numbers, codes, checked.categories


def implausible_price(row: int, price: float, low: float, high: float) -> InputError:
    return InputError(
        row,
        WHOLE_ROW,
        f"the model cannot price this house: it predicts {price:,.6g} dollars, "
        f"outside the plausible range {low:,.0f} to {high:,.0f}, because its "
        "values are far outside the training data",
    )
