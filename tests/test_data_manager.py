from __future__ import annotations

from pandas._libs.parsers import STR_NA_VALUES

from regression_model.data import MISSING_CELLS


def test_missing_cells_are_the_ones_pandas_reads_as_missing() -> None:
    # The API reads example houses with the csv module; they must be the
    # houses pandas (and so training) reads.
    assert set(STR_NA_VALUES) == MISSING_CELLS
