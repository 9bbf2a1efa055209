"""Benchmark inputs: houses resampled from the bundled test.csv with a fixed seed."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pandas as pd

from regression_model import get_config, load_dataset

SEED = 0


@functools.cache
def _test_frame() -> pd.DataFrame:
    return load_dataset(get_config().app.test_data_file)


def resample_houses(rows: int, seed: int = SEED) -> pd.DataFrame:
    """``rows`` houses drawn with replacement from test.csv (every one of its
    1459 houses is priced), as a fresh DataFrame with a 0..rows-1 index."""
    test = _test_frame()
    picks = np.random.default_rng(seed).integers(0, len(test), size=rows)
    return test.iloc[picks].reset_index(drop=True)


def json_houses(rows: int, seed: int = SEED) -> list[dict[str, Any]]:
    """The same houses as a client sends them: one JSON object per house,
    fields that are empty in the file left out (the model imputes them)."""
    frame = resample_houses(rows, seed)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    houses = [
        {str(key): value for key, value in record.items() if value is not None}
        for record in records
    ]
    # Round-trip through JSON: plain Python values, exactly what a client sends.
    loaded: list[dict[str, Any]] = json.loads(json.dumps(houses))
    return loaded


def request_body(rows: int, seed: int = SEED) -> bytes:
    """A ``POST /api/v1/predict`` body with ``rows`` houses."""
    return json.dumps({"inputs": json_houses(rows, seed)}).encode()
