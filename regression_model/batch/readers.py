"""Reading input files a chunk of rows at a time: CSV (from a file or stdin)
and Parquet through pyarrow, each chunk an Arrow table of the columns asked
for, and the next chunk read in a thread while the current one is scored.

Reading is strict where a silent guess would misprice houses: a CSV row with
the wrong number of fields (a truncated or malformed file) stops the run with
its line number. CSV cells are read as text (pandas' missing-value markers,
``NA``, empty, ..., are missing); :mod:`regression_model.batch.columns`
decides what they mean. A line longer than a block (1 MB) makes a file be
read again in larger blocks, up to ``_MAX_BLOCK``, past the rows already
read: that row is refused by validation, never the whole file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import queue
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, TypeVar

from regression_model.batch.errors import InputFileError
from regression_model.data import MISSING_CELLS

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")


class _Failed(NamedTuple):
    error: BaseException


_DONE = object()


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, the next one made in a thread while the caller works on the
    current one: pyarrow parses and converts without holding the GIL, so
    reading overlaps scoring on a second core. At most one item waits."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            hand_over(_Failed(exc))

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)  # it stops after the item it is making


class Reader:
    """An input file: its name, its columns, and its rows in chunks."""

    name: str
    columns: list[str]
    #: The row count when known (Parquet) or estimated (a CSV file), for the bar.
    total_rows: int | None = None

    def chunks(self, columns: list[str]) -> Iterator[pa.Table]:
        raise NotImplementedError

    def id_type(self, id_column: str) -> pa.DataType:
        import pyarrow as pa

        return pa.int64()


@contextlib.contextmanager
def open_input(source: str, kind: str, chunk_rows: int) -> Iterator[Reader]:
    """``source`` (a path, or ``-`` for stdin) opened as ``kind``; a file that
    cannot be opened is an :class:`InputFileError` saying why."""
    if source == "-":
        yield _CsvReader("stdin", sys.stdin.buffer, chunk_rows, seekable=False)
        return
    path = Path(source)
    with contextlib.ExitStack() as stack:
        # Only opening is guarded here: errors of the run itself pass through.
        try:
            if kind == "csv":
                handle = stack.enter_context(path.open("rb"))
                # A FIFO or /dev/stdin is streamed as stdin is.
                seekable = handle.seekable()
                reader: Reader = _CsvReader(source, handle, chunk_rows, seekable=seekable)
            else:
                reader = _ParquetReader(path, chunk_rows)
        except FileNotFoundError:
            raise InputFileError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise InputFileError(
                f"{source} is a directory: give a file (directories and globs are read "
                "with --dask)"
            ) from None
        except PermissionError:
            raise InputFileError(f"{source}: permission denied") from None
        yield reader


class _CsvReader(Reader):
    def __init__(self, name: str, handle: BinaryIO, chunk_rows: int, *, seekable: bool) -> None:
        self.name, self.handle, self.chunk_rows = name, handle, chunk_rows
        self.seekable = seekable
        header = handle.readline()
        if not header.strip():
            raise InputFileError(f"{name} is empty: expected a header line naming the columns")
        try:
            self.columns = next(csv.reader([header.decode("utf-8-sig")]))
        except UnicodeDecodeError:
            raise InputFileError(
                f"{name} is not a CSV file (its first line is not UTF-8 text)"
            ) from None
        except csv.Error as exc:
            old_mac = b"\r" in header.rstrip(b"\r\n") and not header.endswith(b"\n")
            raise InputFileError(
                f"{name}, line 1: the header is not a CSV line ({exc})"
                + ("; its lines end with CR only: convert them to LF or CRLF" if old_mac else "")
            ) from None
        if seekable:
            handle.seek(0)
            # Rows are not counted ahead; the first MB's lines give an estimate
            # (for the bar's time left).
            sample = handle.read(1 << 20)
            lines = sample.count(b"\n") - 1
            if lines > 0:
                size = os.fstat(handle.fileno()).st_size
                self.total_rows = round((size - len(header)) * lines / (len(sample) - len(header)))
            handle.seek(0)
            self.stream: Any = handle
        else:
            self.stream = _Prefixed(header, handle)

    def id_type(self, id_column: str) -> pa.DataType:
        import pyarrow as pa

        return pa.string()  # Ids are copied as written

    def chunks(self, columns: list[str]) -> Iterator[pa.Table]:
        import pyarrow as pa

        bad_rows: list[Any] = []
        pending: list[pa.RecordBatch] = []
        held = done = 0  # rows held for the next chunk; rows read (held or yielded)
        block = _BLOCK
        while True:
            try:
                for batch in self._batches(columns, block, done, bad_rows):
                    pending.append(batch)
                    held += batch.num_rows
                    done += batch.num_rows
                    while held >= self.chunk_rows:
                        table = pa.Table.from_batches(pending)
                        yield table.slice(0, self.chunk_rows)
                        rest = table.slice(self.chunk_rows)
                        pending, held = rest.to_batches(), rest.num_rows
                break
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc) or bad_rows:
                    raise InputFileError(self._explain(exc, bad_rows)) from None
                # A line longer than a block: read again in larger blocks
                # (from a file), past the rows already read.
                if not self.seekable or block >= _MAX_BLOCK:
                    raise InputFileError(self._too_long(done + 2, block)) from None
                block = min(block * 8, _MAX_BLOCK)
                self.stream.seek(0)
        if held:
            yield pa.Table.from_batches(pending)

    def _batches(
        self, columns: list[str], block: int, skip: int, bad_rows: list[Any]
    ) -> Iterator[pa.RecordBatch]:
        """The rows after the first ``skip``, parsed ``block`` bytes at a time."""
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        def refuse(row: Any) -> str:
            bad_rows.append(row)
            return "error"

        # Single-threaded parsing keeps each bad row's line number (a chunk is
        # parsed while the previous one is scored, so little is lost).
        # Opening parses the first block: its errors are the file's too.
        reader = pa_csv.open_csv(
            self.stream,
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=block),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=refuse),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in self.columns},
                include_columns=columns or self.columns[:1],
                null_values=sorted(MISSING_CELLS),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            yield batch.slice(skip) if skip else batch
            skip = 0

    def _too_long(self, line: int, block: int) -> str:
        where = f"{self.name}, line {line}: the line is longer than {block >> 20} MB, the most"
        if self.seekable:
            return f"{where} read in one line"
        return (
            f"{where} read in one line from a stream; give it as a file (a line of up to "
            f"{_MAX_BLOCK >> 20} MB is read from a file)"
        )

    def _explain(self, exc: Exception, bad_rows: list[Any]) -> str:
        if bad_rows:
            row = bad_rows[0]
            where = f"line {row.number}" if row.number is not None else "a line"
            text = row.text if len(row.text) <= 60 else row.text[:57] + "..."
            return (
                f"{self.name}, {where}: expected {row.expected_columns} fields, found "
                f"{row.actual_columns} (the file is truncated or malformed): {text!r}"
            )
        utf8 = _NOT_UTF8.search(str(exc))
        if utf8 is not None:
            index, line = int(utf8["column"]), utf8["line"]
            column = self.columns[index] if index < len(self.columns) else f"#{index + 1}"
            return f"{self.name}, line {line}, column {column}: the cell is not UTF-8 text"
        return f"{self.name} is not a readable CSV file: {exc}"


#: CSV is parsed a block of this many bytes at a time; a line longer than a
#: block is read again (from a file) in blocks of up to _MAX_BLOCK bytes.
_BLOCK = 1 << 20
_MAX_BLOCK = 32 << 20

#: Arrow's message for a cell that is not UTF-8: its column's index in the
#: file, its line (the header is line 1).
_NOT_UTF8 = re.compile(r"CSV column #(?P<column>\d+): Row #(?P<line>\d+): .*invalid UTF8")


class _Prefixed(io.RawIOBase):
    """``rest`` with ``head`` put back in front (stdin cannot be rewound)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            count = min(len(buffer), len(self.head))
            buffer[:count] = self.head[:count]
            self.head = self.head[count:]
            return count
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ParquetReader(Reader):
    def __init__(self, path: Path, chunk_rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.name, self.chunk_rows = str(path), chunk_rows
        if path.is_dir():
            raise IsADirectoryError(path)
        if path.exists() and not path.is_file():
            raise InputFileError(
                f"{path} is a FIFO or a device: Parquet is read from a file (its footer is "
                "read first); stream CSV instead"
            )
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            raise InputFileError(f"{path} is not a Parquet file ({exc})") from None
        self.columns = list(self.file.schema_arrow.names)
        self.total_rows = self.file.metadata.num_rows
        self.schema = self.file.schema_arrow

    def id_type(self, id_column: str) -> pa.DataType:
        import pyarrow as pa

        if id_column in self.columns:
            found: pa.DataType = self.schema.field(id_column).type
            if pa.types.is_nested(found):
                raise InputFileError(
                    f"{self.name}: column {id_column} holds {found} values: an id is a number "
                    "or a text"
                )
            return found
        return pa.int64()

    def chunks(self, columns: list[str]) -> Iterator[pa.Table]:
        import pyarrow as pa

        try:
            for batch in self.file.iter_batches(batch_size=self.chunk_rows, columns=columns):
                table = pa.Table.from_batches([batch])
                table.schema.pandas_metadata  # noqa: B018 - read to convert it: damaged?
                yield table
        except (pa.ArrowException, OSError) as exc:
            raise InputFileError(f"{self.name} is not a readable Parquet file: {exc}") from None
        except ValueError as exc:  # the pandas metadata: a UnicodeDecodeError, a JSONDecodeError
            raise InputFileError(
                f"{self.name} is not a readable Parquet file: its pandas metadata is damaged "
                f"({exc})"
            ) from None
