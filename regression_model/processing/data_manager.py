"""Read the bundled data sets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from regression_model.config.core import DATASET_DIR

if TYPE_CHECKING:
    import pandas as pd


#: The cells ``pandas.read_csv`` reads as missing by default, which is how the
#: bundled files are read for training (so ``MasVnrType`` "None" is missing).
#: Readers that do without pandas use this set to read them the same way; a
#: test keeps it equal to pandas' own.
MISSING_CELLS = frozenset(
    {
        *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"),
        *("1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
    }
)


def dataset_path(file_name: str) -> Path:
    """Path of a data set shipped in ``regression_model/datasets``."""
    return DATASET_DIR / file_name


def load_dataset(file_name: str) -> pd.DataFrame:
    """Read a bundled CSV exactly as the Kaggle files are written."""
    import pandas as pd  # only data-handling callers need it, not the API

    return pd.read_csv(dataset_path(file_name))
