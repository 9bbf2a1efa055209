"""Read the bundled data sets."""

from __future__ import annotations

import csv
import functools
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regression_model.config.core import DATASET_DIR, get_config

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
    """The first ``count`` houses of the bundled test.csv as a JSON client
    sends them (numbers as numbers; fields empty in the file left out, for the
    model to impute). Read with the csv module: serving does not need pandas."""
    path = dataset_path(get_config().app.test_data_file)
    with path.open(newline="") as handle:
        records = list(itertools.islice(csv.DictReader(handle), count))
    return tuple(
        {key: _json_value(text) for key, text in record.items() if text not in MISSING_CELLS}
        for record in records
    )
