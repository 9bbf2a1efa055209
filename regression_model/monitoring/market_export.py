"""Sold houses out of the prediction log, as training rows: each outcome (a
realised sale price) with the inputs of the logged house it refers to,
written in ``train.csv``'s format (its columns, Kaggle's names, ``Id`` first,
``SalePrice`` last), for a config's ``market_data_files`` to add to the
training data of the next version (``regression_model.training.market``).

Which logged house an outcome refers to is
:mod:`~regression_model.monitoring.outcome_join`'s rule, asked of every model
version the log holds (the inputs, not the version's price, make the row);
where houses of several versions match, the same rule's order chooses: the
latest logged on or before the sale day, else the latest logged after it.
Then one row per house (``Id``): its latest sale (by sale date, then by
reference). A house logged without an integer ``Id`` is left out and
counted: a training row is known by its id.

The row is the house as it was priced, with the price it sold for: fields
the client did not send are empty, as a missing value in ``train.csv``.

Needs the ``[log]`` extra (SQLAlchemy).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, func, select

from regression_model.config.core import Config
from regression_model.data import dataset_path
from regression_model.monitoring.log_location import log_files
from regression_model.monitoring.log_rows import Unreadable
from regression_model.monitoring.log_store import outcomes, predictions, utc
from regression_model.monitoring.outcome_join import MatchedSale, matched_outcomes
from regression_model.output_files import cannot_write, replacing


@dataclass(frozen=True)
class MarketExport:
    """What :func:`write_market_data` found and wrote."""

    outcomes: int
    #: outcomes that refer to no priced house of the log
    unmatched: int
    #: houses left out: logged without an integer id
    without_id: int
    #: outcomes of a house that sold again later (its latest sale is the row)
    superseded: int
    rows: int
    #: records of the log (outcomes or logged houses) skipped: a value their
    #: column cannot hold (:mod:`~regression_model.monitoring.log_rows`)
    unreadable: int = 0


def training_columns(config: Config) -> list[str]:
    """``train.csv``'s header: the columns, in order, of a training row."""
    with dataset_path(config.app.training_data_file).open(newline="") as handle:
        return next(csv.reader(handle))


def _logged_before_sale(sale: MatchedSale) -> bool:
    day_after = datetime.combine(sale.sale_date + timedelta(days=1), time.min)
    return sale.logged_at < utc(day_after)


def _precedence(sale: MatchedSale) -> tuple[bool, datetime]:
    """outcome_join's order among a sale's candidate houses."""
    return _logged_before_sale(sale), sale.logged_at


def _house_id(inputs: Mapping[str, Any], id_column: str) -> int | None:
    value = inputs.get(id_column)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def matched_sales(
    engine: Engine, config: Config, unreadable: Unreadable | None = None
) -> tuple[int, dict[str, MatchedSale]]:
    """Every outcome's logged house, whichever version priced it: (outcomes
    stored, reference -> its sale); the records skipped counted in ``unreadable``."""
    with engine.connect() as connection:
        versions = sorted(connection.scalars(select(predictions.c.model_version).distinct()))
        stored = int(connection.execute(select(func.count()).select_from(outcomes)).scalar_one())
    chosen: dict[str, MatchedSale] = {}
    for version in versions:
        for _, sales in matched_outcomes(
            engine, config, model_version=version, unreadable=unreadable
        ):
            for sale in sales:
                kept = chosen.get(sale.reference)
                if kept is None or _precedence(sale) > _precedence(kept):
                    chosen[sale.reference] = sale
    return stored, chosen


def _row(sale: MatchedSale, columns: list[str], config: Config) -> list[Any]:
    renamed = config.model.variables_to_rename
    target, id_column = config.model.target, config.model.id_column
    values: list[Any] = []
    for column in columns:
        if column == target:
            value: Any = sale.sale_price
        elif column == id_column:
            value = _house_id(sale.inputs, id_column)
        else:
            value = sale.inputs.get(renamed.get(column, column))
        values.append("" if value is None else value)
    return values


def write_market_data(engine: Engine, config: Config, output: IO[str]) -> MarketExport:
    """The sold houses of the log as ``train.csv`` rows, to ``output``."""
    skipped = Unreadable()
    read, sales = matched_sales(engine, config, skipped)
    id_column = config.model.id_column
    latest: dict[int, MatchedSale] = {}
    without_id = superseded = 0
    for sale in sales.values():
        house = _house_id(sale.inputs, id_column)
        if house is None:
            without_id += 1
            continue
        kept = latest.get(house)
        if kept is not None:
            superseded += 1
            if (kept.sale_date, kept.reference) > (sale.sale_date, sale.reference):
                continue
        latest[house] = sale
    columns = training_columns(config)
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(columns)
    for house in sorted(latest):
        writer.writerow(_row(latest[house], columns, config))
    return MarketExport(
        outcomes=read,
        unmatched=read - skipped.outcomes - len(sales),
        without_id=without_id,
        superseded=superseded,
        rows=len(latest),
        unreadable=skipped.records,
    )


def export_market_data(engine: Engine, config: Config, path: Path) -> MarketExport:
    """:func:`write_market_data` into the file ``path``, as every output is
    written (:func:`regression_model.output_files.replacing`: renamed into
    place when complete, a failed export leaves no half file; never the log
    itself, an :class:`~regression_model.output_files.OutputError`)."""
    with replacing(path, inputs=log_files(engine)) as handle:
        try:
            return write_market_data(engine, config, handle)
        except OSError as exc:
            raise cannot_write(path, exc) from None
