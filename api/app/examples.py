"""Real houses from the package's copy of Kaggle's test.csv.

Used as OpenAPI request examples, as the canary the service prices before it
reports ready, and to pre-fill the page's form. Read on first use, not on
import.
"""

from __future__ import annotations

import csv
import functools
import itertools
from typing import Any

from regression_model.config.core import get_config
from regression_model.processing.data_manager import MISSING_CELLS, dataset_path


def _json_value(text: str) -> int | float | str:
    """A CSV cell as a JSON client would send it: a number when it is one."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


@functools.cache
def example_houses(count: int = 3) -> tuple[dict[str, Any], ...]:
    """The first ``count`` houses of test.csv as JSON objects; fields that
    are empty in the file are left out (the model imputes them). Read with
    the csv module: the service does not need pandas."""
    path = dataset_path(get_config().app.test_data_file)
    with path.open(newline="") as handle:
        records = list(itertools.islice(csv.DictReader(handle), count))
    return tuple(
        {key: _json_value(text) for key, text in record.items() if text not in MISSING_CELLS}
        for record in records
    )


def canary_house() -> dict[str, Any]:
    """The house the service must price before it reports ready."""
    return dict(example_houses()[0])
