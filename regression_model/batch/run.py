"""Score files of any size: stream CSV or Parquet through the model in chunks.

``regression-model predict`` reads its input a chunk of rows at a time
(:mod:`~regression_model.batch.readers`), prices each chunk with
:meth:`regression_model.scoring.model.Model.price` and appends the result to
the output (:mod:`~regression_model.batch.writers`) (a chunk of junk
:data:`SCORED_ROWS` rows at a time), so memory depends on the chunk size,
not on the file. Every input
row gives one output row, in input order: its ``Id`` (or its row number,
from 0, when the file has no ``Id`` column), the price, its range at each
coverage (``SalePrice_low_80``, ``SalePrice_high_80``, ...: the model's, or
those asked; all empty when not priced) and the reasons it was not priced.

Which columns are read, and how a cell is read, is
:mod:`~regression_model.batch.columns`: a file whose columns are well typed
scores exactly as ``make_prediction`` of the whole file read by pandas, to
the last bit, whatever the chunk size.

An error or an interruption (Ctrl-C, SIGTERM) leaves nothing under the
target's name. ``-`` reads stdin or writes stdout (CSV only).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from regression_model.batch.columns import (
    ERRORS_COLUMN,
    RangeColumns,
    check_columns,
    ignored_columns,
    numeric_columns,
    output_columns,
    range_columns,
    table_to_frame,
)
from regression_model.batch.errors import BatchFileError, Interrupted, MissingDependencyError
from regression_model.batch.formats import file_format, require_pyarrow
from regression_model.batch.readers import Reader, open_input, read_ahead
from regression_model.batch.writers import open_output
from regression_model.config.core import ModelConfig
from regression_model.scoring.chunks import CHUNK_ROWS
from regression_model.scoring.model import Engine, load_model
from regression_model.scoring.priced_batch import PricedBatch
from regression_model.scoring.unknown_fields import IgnoredField

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Counts:
    """Rows read, and of those, priced; the rest were rejected."""

    read: int = 0
    priced: int = 0
    #: columns that are not model inputs, not read (in strict mode they are
    #: read, and refused in every row instead)
    ignored: list[IgnoredField] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return self.read - self.priced


def score_frame(
    frame: pd.DataFrame,
    price: Callable[[pd.DataFrame], PricedBatch],
    config: ModelConfig,
    row_numbers: Any,
    *,
    ranges: Sequence[RangeColumns],
) -> pd.DataFrame:
    """One output row per row of ``frame`` (same index): the ``Id`` (or
    ``row_numbers`` when there is no Id column), the price and its
    ``ranges``' lows and highs (NaN when not priced) and the reasons ("" when
    priced)."""
    import pandas as pd

    batch = price(frame)
    reasons = np.full(len(frame), "", dtype=object)
    for error in batch.errors:
        told = f"{error.field}: {error.message}"
        reasons[error.row] = f"{reasons[error.row]}; {told}" if reasons[error.row] else told
    ids = frame[config.id_column].array if config.id_column in frame.columns else row_numbers
    columns: dict[str, Any] = {config.id_column: ids, config.target: batch.prices}
    for level, low, high in ranges:
        columns[low], columns[high] = batch.lows[:, level], batch.highs[:, level]
    columns[ERRORS_COLUMN] = pd.array(reasons, dtype="str")
    return pd.DataFrame(columns, index=frame.index)


#: A chunk whose numerical columns hold text is priced and written this many
#: rows at a time: a row may carry an error per field, so a chunk of junk
#: holds its errors and their text (in the output's copies) for these rows
#: only (65,536 rows of 36 refused cells each took 1.3 GB). A chunk of
#: numbers is priced whole: slices cost their fixed part again (at 8,192
#: rows, 1M clean rows took 7.1 s instead of 4.7 s).
SCORED_ROWS = 8_192


def _scored_rows(frame: pd.DataFrame, numeric: set[str]) -> int:
    """How many rows of ``frame`` are priced at a time (see ``SCORED_ROWS``)."""
    texts = any(frame[c].dtype.kind not in "iufb" for c in numeric if c in frame.columns)
    return SCORED_ROWS if texts else max(len(frame), 1)


def score_file(
    source: str,
    target: str,
    *,
    config: ModelConfig,
    engine: Engine = "tables",
    input_format: str | None = None,
    output_format: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    allow_missing_columns: bool = False,
    strict: bool = False,
    coverages: Sequence[float] | None = None,
    progress: bool = False,
) -> Counts:
    """Price every row of ``source`` into ``target`` (paths, or ``-``), with
    the price's range at each of ``coverages`` (None: each the model has;
    another is an ``UnknownCoverageError``, before anything is written).
    Columns that are not model inputs are ignored and listed in the counts'
    ``ignored``; with ``strict`` they are an error of every row instead."""
    reading = file_format(source, input_format, role="input")
    writing = file_format(target, output_format, role="output")
    if chunk_rows < 1:
        raise BatchFileError(f"the chunk size must be at least 1 row, got {chunk_rows}")
    for name, kind, role in ((source, reading, "read"), (target, writing, "written")):
        if name == "-" and kind != "csv":
            raise BatchFileError(f"only CSV can be {role} through - (stdin/stdout)")
    require_pyarrow()
    counts = Counts()
    with open_input(source, reading, chunk_rows) as reader:
        used = check_columns(
            reader.columns,
            config,
            name=reader.name,
            allow_missing=allow_missing_columns,
            strict=strict,
        )
        if not strict:
            counts.ignored = ignored_columns(reader.columns, config)
        try:
            model = load_model(engine=engine)
        except ImportError as exc:
            raise MissingDependencyError(
                f"engine {engine!r} needs the training libraries: "
                f"pip install 'ames-regression-model[train]' ({exc})"
            ) from None
        ranges = range_columns(model, config, coverages)
        output = open_output(
            target,
            writing,
            source,
            output_columns(config, ranges),
            reader.id_type(config.id_column),
        )
        bar = _progress_bar(reader, enabled=progress)
        try:
            with output as write, sigterm_raises_interrupted():
                frames = (table_to_frame(table, config) for table in reader.chunks(used))

                def price(frame: pd.DataFrame) -> PricedBatch:
                    return model.price(frame, strict=strict)

                numeric = numeric_columns(config)
                for frame in read_ahead(frames):
                    step = _scored_rows(frame, numeric)
                    for start in range(0, len(frame), step):
                        part = frame.iloc[start : start + step]
                        rows = np.arange(counts.read, counts.read + len(part))
                        scored = score_frame(part, price, config, rows, ranges=ranges)
                        write(scored)
                        counts.read += len(part)
                        counts.priced += int(scored[config.target].notna().sum())
                        _advance(bar, len(part), counts.read)
                bar.total = counts.read  # the estimate, if any, is now a count
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT, counts.read) from None
        except Interrupted as stop:
            raise Interrupted(stop.signum, counts.read) from None
        finally:
            bar.close()
    return counts


# -- progress and signals ---------------------------------------------------


def _progress_bar(reader: Reader, *, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=reader.total_rows,
        desc=reader.name,
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        disable=not enabled,
        mininterval=0.5,
        dynamic_ncols=True,
    )


def _advance(bar: Any, rows: int, done: int) -> None:
    if bar.total is not None and done > bar.total:  # a CSV longer than estimated
        bar.total = done
    bar.update(rows)


@contextlib.contextmanager
def sigterm_raises_interrupted() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` (as Ctrl-C raises KeyboardInterrupt),
    so the temporary output is removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
