"""Read the bundled data sets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from regression_model.config.core import DATASET_DIR

if TYPE_CHECKING:
    import pandas as pd


def dataset_path(file_name: str) -> Path:
    """Path of a data set shipped in ``regression_model/datasets``."""
    return DATASET_DIR / file_name


def load_dataset(file_name: str) -> pd.DataFrame:
    """Read a bundled CSV exactly as the Kaggle files are written."""
    import pandas as pd  # only data-handling callers need it, not the API

    return pd.read_csv(dataset_path(file_name))
