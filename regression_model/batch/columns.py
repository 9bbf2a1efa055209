"""What a file must hold and how its cells are read.

A file lacking some of the model's input columns is refused unless
``allow_missing`` (every row would be priced with imputed values for them);
columns that are not model inputs are ignored and named (or, strict, read
for validation to refuse). Cells are read one at a time, whatever the rest of
the file holds: in a numerical or coded field a cell that is a number is that
number and any other text stays text (and that row is refused, saying so).
Streamed chunks (Arrow tables, :func:`table_to_frame`) and Dask partitions
(pandas frames, :func:`numbers_from_text`) are read by that one rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from regression_model.batch.errors import InputFileError
from regression_model.config.core import ModelConfig
from regression_model.scoring.intervals import range_names
from regression_model.scoring.schema import schema_for
from regression_model.scoring.unknown_fields import IgnoredField, shown_name

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from regression_model.scoring.model import Model

#: Output column with the reasons a row was not priced ("" when priced).
ERRORS_COLUMN = "errors"


class RangeColumns(NamedTuple):
    """A price range in the output: its position among the model's coverages
    (a column of ``PricedBatch.lows`` and ``highs``) and its columns' names."""

    level: int
    low: str
    high: str


def range_columns(
    model: Model, config: ModelConfig, coverages: Sequence[float] | None = None
) -> list[RangeColumns]:
    """The ranges an output carries: at each of ``coverages`` (None: each the
    model was calibrated for); another coverage is an ``UnknownCoverageError``."""
    return [
        RangeColumns(level, *range_names(config.target, model.coverages[level]))
        for level in model.interval_scorer.levels(coverages)
    ]


def output_columns(config: ModelConfig, ranges: Sequence[RangeColumns]) -> list[str]:
    """A scored output's columns: the id, the price, each range's low and
    high, the reasons."""
    bounds = [name for columns in ranges for name in (columns.low, columns.high)]
    return [config.id_column, config.target, *bounds, ERRORS_COLUMN]


def input_columns(config: ModelConfig) -> dict[str, list[str]]:
    """Each model input and the column names that may carry it, preferred first
    (validation's own list: a Python-safe name, then Kaggle's raw one)."""
    return {rule.name: list(rule.sources) for rule in schema_for(config).rules}


def ignored_columns(columns: list[str], config: ModelConfig) -> list[IgnoredField]:
    """The columns that are not model inputs (nor the id column), each named
    with the input it is closest to: scoring ignores them, and says so."""
    schema = schema_for(config)
    return [
        IgnoredField(
            None, shown_name(column), schema.unknown.ignored_message(column, strict=False)
        )
        for column in schema.unknown_fields(columns)
    ]


def check_columns(
    columns: list[str],
    config: ModelConfig,
    *,
    name: str,
    allow_missing: bool,
    strict: bool = False,
) -> list[str]:
    """The columns scoring reads; refuses a file lacking model inputs (unless
    ``allow_missing``) or without any of them. With ``strict``, columns that
    are not model inputs are read too, for validation to refuse in every row."""
    present = set(columns)
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise InputFileError(f"{name}: duplicated column names: {', '.join(duplicated)}")
    sources = input_columns(config)
    missing = [var for var, names in sources.items() if not present.intersection(names)]
    optional = f"optional: {config.id_column} (row numbers are used without it)"
    if len(missing) == len(sources):
        shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise InputFileError(
            f"{name} has none of the model's {len(sources)} input columns "
            f"(it has: {shown or 'no columns'}); expected the Kaggle house columns "
            f"({', '.join(list(sources)[:4])}, ...); {optional}"
        )
    if missing and not allow_missing:
        raise InputFileError(
            f"{name} lacks {len(missing)} of the model's {len(sources)} input columns: "
            f"{', '.join(missing)}. They are required so that no house is priced with a "
            f"guessed value by accident: add them (an empty cell is imputed for that row), or "
            f"pass --allow-missing-columns to impute them for every row; {optional}; other "
            "columns are ignored and named, or refused with --strict"
        )
    if strict:
        return columns
    wanted = {config.id_column, *(n for names in sources.values() for n in names)}
    return [c for c in columns if c in wanted]


# -- cells ------------------------------------------------------------------


def numeric_columns(config: ModelConfig) -> set[str]:
    """Columns whose cells are read as numbers when they are numbers: the
    numerical inputs and the coded ones (MSSubClass 60 and "60" are one code)."""
    numeric = set(config.numerical_vars) | set(config.coded_vars)
    return {n for var, names in input_columns(config).items() if var in numeric for n in names}


def numbers_from_text(frame: pd.DataFrame, config: ModelConfig) -> pd.DataFrame:
    """``frame`` with the text columns of numerical and coded inputs read cell
    by cell: a number where the cell is one (pyarrow's syntax), else the text."""
    import pandas as pd
    import pyarrow as pa

    targets = numeric_columns(config)
    parsed = {
        str(name): _numbers_or_text(pa.array(frame[name].array, from_pandas=True))
        for name in frame.columns
        if name in targets and pd.api.types.is_string_dtype(frame[name].dtype)
    }
    return frame.assign(**parsed) if parsed else frame


def table_to_frame(table: pa.Table, config: ModelConfig) -> pd.DataFrame:
    """A chunk as read (text cells for CSV) as the frame validation takes:
    :func:`numbers_from_text`, done on the Arrow columns before pandas sees them."""
    import pyarrow as pa

    targets = numeric_columns(config)
    numbers: dict[str, Any] = {}
    for index, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):  # Parquet's categoricals: plain values
            table = table.set_column(
                index, table.field(index).name, column.cast(column.type.value_type)
            )
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in targets and (
            pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        ):
            numbers[name] = _numbers_or_text(column)
    frame: pd.DataFrame = table.drop_columns(list(numbers)).to_pandas()
    if numbers:
        frame = frame.assign(**numbers)[table.column_names]
    return frame


#: pyarrow's syntax of a float (its string cast: fast_float's ``general``
#: format, a leading ``+`` allowed), NaN's spellings left out: they are text.
#: Whole-column regex and cast, so a file of distinct junk costs what a clean
#: one does (a cast per distinct cell took 77 s for 100,000 rows of it).
_NUMBER = r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))$"


def _numbers_or_text(text: Any) -> Any:
    """Each cell as a number where it is one, else as its text. Missing cells
    (pandas' markers) are already null; a spelling of NaN that pandas does not
    read as missing (``NAN``, ``+nan``, ``nan(1)``: pyarrow parses any) is
    text, refused as ``make_prediction`` of the file read by pandas refuses it."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    try:
        numbers = pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        pass
    else:
        if not pc.any(pc.is_nan(numbers)).as_py():
            return numbers.to_numpy(zero_copy_only=False)
    # Some cell is not a number: those of a number's syntax are cast together.
    number = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    shaped = pc.if_else(number, text, pa.scalar(None, text.type))
    try:
        found = pc.cast(shaped, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # a cell of that syntax pyarrow refuses: each decides
        found = np.array([_number(cell) for cell in shaped.to_pylist()], dtype="float64")
    is_number = number.to_numpy(zero_copy_only=False) & ~np.isnan(found)
    if not is_number.any():  # text alone: as pandas holds text (Arrow strings
        alone = text.to_pandas()  # since pandas 3), no object made for each cell
        if isinstance(alone.dtype, pd.StringDtype):
            return alone.array
    cells = text.to_numpy(zero_copy_only=False)
    cells[is_number] = found[is_number]
    cells[text.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return cells


def _number(cell: str | None) -> float:
    """A cell as pyarrow's cast reads it; NaN for null or text it refuses."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        number = pc.cast(pa.array([cell], pa.string()), pa.float64())[0].as_py()
    except pa.ArrowInvalid:
        return math.nan
    return math.nan if number is None else float(number)
