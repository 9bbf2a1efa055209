"""Writing scored rows: ``Id``, the price and its ranges' lows and highs, and
the reasons, as CSV (to a file or stdout) or Parquet, chunk after chunk. A
file is written as :mod:`regression_model.output_files` writes every output:
under a temporary name beside the target, renamed when complete, so an error
or an interruption leaves nothing under the target's name."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy as np

from regression_model.batch.errors import OutputFileError
from regression_model.output_files import OutputError, cannot_write, replacing

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@contextlib.contextmanager
def open_output(
    target: str, kind: str, source: str, columns: list[str], id_type: pa.DataType
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function appending scored chunks to ``target``, a file written as
    :func:`regression_model.output_files.replacing` writes (renamed into place
    only when the run completes; a device or FIFO written directly; never the
    input), or ``-``: stdout. A failure to write is an :class:`OutputFileError`."""
    if target == "-":
        with _writing("stdout"):
            stdout = _CsvAppender(sys.stdout, columns)
        yield _guarded(stdout, "stdout")
        with _writing("stdout"):
            stdout.finish()
            sys.stdout.flush()
        return
    try:
        with replacing(target, inputs={source: "the input"}) as handle:
            with _writing(target):
                appender = _appender(handle, kind, columns, id_type)
            yield _guarded(appender, target)
            with _writing(target):
                appender.finish()
    except OutputError as exc:
        raise OutputFileError(str(exc)) from None


@contextlib.contextmanager
def _writing(target: str) -> Iterator[None]:
    """The file system's errors writing ``target`` as :class:`OutputFileError`
    (a closed pipe stays a BrokenPipeError: the command stops quietly)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputFileError(str(cannot_write(target, exc))) from None


def _guarded(
    appender: Callable[[pd.DataFrame], None], target: str
) -> Callable[[pd.DataFrame], None]:
    def write(scored: pd.DataFrame) -> None:
        with _writing(target):
            appender(scored)

    return write


def write_scored(path: Path, kind: str, scored: pd.DataFrame, id_type: pa.DataType) -> None:
    """Write one scored frame as a whole file, as the streamed output is written
    (a Dask partition's part file)."""
    columns = [str(c) for c in scored.columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        appender = _appender(handle, kind, columns, id_type)
        appender(scored)
        appender.finish()


def _appender(
    handle: IO[str], kind: str, columns: list[str], id_type: pa.DataType
) -> _CsvAppender | _ParquetAppender:
    if kind == "csv":
        return _CsvAppender(handle, columns)
    return _ParquetAppender(handle.buffer, columns, id_type)  # type: ignore[attr-defined]


class _CsvAppender:
    """CSV rendered by Arrow: a value is quoted only when it holds a comma,
    a quote or a line break (pyarrow's own writer quotes every text value)."""

    def __init__(self, handle: IO[str], columns: list[str]) -> None:
        self.handle = handle
        handle.write(",".join(_csv_cell(name) for name in columns) + "\n")

    def __call__(self, scored: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        identifier, *prices, reason = scored.columns
        ids = pa.array(scored[identifier].array, from_pandas=True)
        cells = [
            _quoted(ids.cast(pa.string()).fill_null("")),
            *(pc.cast(_dollars(scored[name]), pa.string()).fill_null("") for name in prices),
            _quoted(pa.array(scored[reason].to_numpy(dtype=object), type=pa.string())),
        ]
        cells[-1] = pc.binary_join_element_wise(cells[-1], "\n", "")
        lines = pc.binary_join_element_wise(*cells, ",")
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        lines = lines.cast(pa.string())  # 32-bit offsets
        # The lines lie end to end in one buffer: write it as it is.
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
        text = memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]
        self.handle.flush()
        raw = getattr(self.handle, "buffer", None)
        if raw is None:
            self.handle.write(bytes(text).decode("utf-8"))
        else:
            raw.write(text)

    def finish(self) -> None:
        self.handle.flush()


def _dollars(column: pd.Series) -> pa.Array:
    """A column of prices (the price, a range's low or high): null where NaN,
    not priced."""
    import pyarrow as pa

    values = column.to_numpy(dtype="float64")
    return pa.array(values, mask=np.isnan(values))


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _quoted(values: Any) -> Any:
    """Text values as CSV cells: quoted (quotes doubled) where needed."""
    import pyarrow.compute as pc

    needs = pc.match_substring_regex(values, r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return values
    wrapped = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(needs, wrapped, values)


class _ParquetAppender:
    """Prices (and ranges) are null where not priced, reasons null where none."""

    def __init__(self, handle: BinaryIO, columns: list[str], id_type: pa.DataType) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.columns = columns
        identifier, *prices, reason = columns
        self.schema = pa.schema(
            [
                (identifier, id_type),
                *((name, pa.float64()) for name in prices),
                (reason, pa.string()),
            ]
        )
        self.writer = pq.ParquetWriter(handle, self.schema)

    def __call__(self, scored: pd.DataFrame) -> None:
        import pyarrow as pa

        identifier, *prices, reason = self.columns
        reasons = scored[reason].to_numpy(dtype=object)
        ids = pa.array(scored[identifier].array, from_pandas=True)
        self.writer.write_table(
            pa.table(
                [
                    ids.cast(self.schema.field(0).type),
                    *(_dollars(scored[name]) for name in prices),
                    pa.array(reasons, type=pa.string(), mask=reasons == ""),
                ],
                schema=self.schema,
            )
        )

    def finish(self) -> None:
        self.writer.close()
