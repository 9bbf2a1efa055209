"""Sold houses added to the training data: the config's ``market_data_files``.

Each file is a CSV in ``train.csv``'s format (``regression-model market-data``
writes one from the prediction log: the logged inputs of the houses whose sale
prices came back, with those prices). A name is looked up in the package's
``datasets/`` folder, as ``train.csv`` is (commit the file there, so the
release trains from what the repository holds); an absolute path is used as
it is.

Each file must pass what ``train.csv`` passes, and is checked on its own so a
problem names the file, the row (from 0, as ``/predict`` counts) and the
field: the same input schema as prediction, an integer ``Id`` on every row, a
sale price that is a positive number, no column ``train.csv`` lacks (a
misspelt one would be dropped unseen). Any problem stops training before
anything is fitted.

The rule for duplicates: one row per house (``Id``), the newest data wins.
The rows are taken in order — ``train.csv``, then each file in the order the
config lists them, each top to bottom — and a later row replaces an earlier
one with its ``Id`` (a house sold again is priced by its latest sale).

The manifest's ``training_data.market_data`` records each file's name,
sha256, rows and how many earlier rows it replaced; the quality gates and the
differential review then judge the model trained on the whole, as any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from regression_model.config.core import Config
from regression_model.data import dataset_path
from regression_model.scoring.artifact import sha256_file
from regression_model.scoring.validation import validate_inputs

#: Problems shown per file (all are counted).
SHOWN_PROBLEMS = 5


class MarketDataError(ValueError):
    """A market data file does not pass the training data's checks."""


@dataclass(frozen=True)
class MarketData:
    """The training rows with the market files' rows added, and what the
    manifest records of each file."""

    rows: pd.DataFrame
    files: list[dict[str, Any]]


def market_file_path(name: str) -> Path:
    """Where a name of ``market_data_files`` points: ``datasets/`` or an absolute path."""
    return dataset_path(name)


def _id_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "missing: every sold house needs its Id"
    if isinstance(value, float) and not value.is_integer():
        return f"{float(value)} is not an integer"
    if isinstance(value, str):
        return f"{value!r} is not an integer"
    return None


def _price_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return f"{value!r} is not a number"
    if not math.isfinite(value):
        return "missing: a sold house needs the price it sold for"
    if value <= 0:
        shown = int(value) if float(value).is_integer() else float(value)
        return f"{shown} is not a price: must be above 0"
    return None


def check_market_file(frame: pd.DataFrame, name: str, columns: list[str], config: Config) -> None:
    """Raise :class:`MarketDataError` naming every problem of one file's rows."""
    model = config.model
    problems: list[str] = []
    unknown = [column for column in frame.columns if column not in columns]
    if unknown:
        problems.append(f"columns train.csv does not have: {', '.join(map(str, unknown))}")
    for required in (model.id_column, model.target):
        if required not in frame.columns:
            problems.append(f"no {required} column")
    if not problems:
        found: list[tuple[int, str]] = []
        houses, prices = frame[model.id_column], frame[model.target]
        for row, (house, price) in enumerate(zip(houses, prices, strict=True)):
            if reason := _id_problem(house):
                found.append((row, f"{model.id_column}: {reason}"))
            if reason := _price_problem(price):
                found.append((row, f"{model.target}: {reason}"))
        checked = validate_inputs(frame, model)
        found += [(e.row, f"{e.field}: {e.message}") for e in checked.errors or []]
        problems += [f"row {row} {problem}" for row, problem in sorted(found)]
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        raise MarketDataError(f"{len(problems)} problem(s) in market data file {name}: {shown}")


def add_market_data(training_rows: pd.DataFrame, config: Config) -> MarketData:
    """``training_rows`` (``train.csv`` as read) with every market file's rows
    added by the duplicates rule (module docstring)."""
    names = config.app.market_data_files
    if not names:
        return MarketData(training_rows, [])
    id_column = config.model.id_column
    columns = [str(column) for column in training_rows.columns]
    frames, files = [training_rows], []
    seen = set(training_rows[id_column])
    for name in names:
        path = market_file_path(name)
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise MarketDataError(f"cannot read market data file {name} ({path}): {exc}") from exc
        check_market_file(frame, name, columns, config)
        houses = frame[id_column].astype("int64")
        before = len(seen)
        seen |= set(houses)
        files.append(
            {
                "file": path.name,
                "sha256": sha256_file(path),
                "rows": len(frame),
                # rows of this file or before it that a later row of it replaces
                "replaced": before + len(frame) - len(seen),
            }
        )
        frames.append(frame.assign(**{id_column: houses}))
    combined = pd.concat(frames, ignore_index=True)
    combined = combined.drop_duplicates(subset=id_column, keep="last")
    return MarketData(combined.reset_index(drop=True), files)
