"""Read the bundled data sets and hash files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from regression_model.config.core import DATASET_DIR


def dataset_path(file_name: str) -> Path:
    """Path of a data set shipped in ``regression_model/datasets``."""
    return DATASET_DIR / file_name


def load_dataset(file_name: str) -> pd.DataFrame:
    """Read a bundled CSV exactly as the Kaggle files are written."""
    return pd.read_csv(dataset_path(file_name))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
