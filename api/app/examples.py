"""Real houses from the package's copy of Kaggle's test.csv.

Used as OpenAPI request examples, as the canary the service prices before it
reports ready, and to pre-fill the page's form. Read on first use, not on
import.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from regression_model.config.core import get_config
from regression_model.processing.data_manager import load_dataset


@functools.cache
def example_houses(count: int = 3) -> tuple[dict[str, Any], ...]:
    """The first ``count`` houses of test.csv as JSON objects; fields that
    are empty in the file are left out (the model imputes them)."""
    frame = load_dataset(get_config().app.test_data_file).head(count)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    houses = tuple(
        {str(key): value for key, value in record.items() if value is not None}
        for record in records
    )
    # Round-trip through JSON: plain Python values, exactly what a client sends.
    return tuple(json.loads(json.dumps(house)) for house in houses)


def canary_house() -> dict[str, Any]:
    """The house the service must price before it reports ready."""
    return dict(example_houses()[0])
