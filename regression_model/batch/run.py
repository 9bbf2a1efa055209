"""Score files of any size: stream CSV or Parquet through the model in chunks.

``regression-model predict`` reads its input a chunk of rows at a time
(pyarrow's CSV and Parquet readers), prices each chunk with
:func:`regression_model.scoring.model.price_batch` and appends the result to the
output, so memory depends on the chunk size, not on the file. Every input row
gives one output row, in input order: its ``Id`` (or its row number, from 0,
when the file has no ``Id`` column), the price (empty when not priced) and
the reasons it was not priced.

Reading is strict where a silent guess would misprice houses: a CSV row with
the wrong number of fields (a truncated or malformed file) stops the run with
its line number, and a file lacking some of the model's input columns is
refused unless ``allow_missing_columns`` (every row would be priced with
imputed values for them). Cells are read one at a time, whatever the rest of
the file holds: in a numerical or coded field a cell that is a number is that
number and any other text stays text (and that row is refused, saying so);
pandas' missing-value markers (``NA``, empty, ...) are missing. A file whose
columns are well typed therefore scores exactly as ``make_prediction`` of the
whole file read by pandas, to the last bit, whatever the chunk size.

The output is written under a temporary name beside the target and renamed
when complete: an error or an interruption (Ctrl-C, SIGTERM) leaves nothing
under the target's name. ``-`` reads stdin or writes stdout (CSV only).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import queue
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, TypeVar

import numpy as np

from regression_model.config.core import ModelConfig
from regression_model.data import MISSING_CELLS
from regression_model.scoring.model import CHUNK_ROWS, Engine, PricedBatch, load_model
from regression_model.scoring.validation import IgnoredField, schema_for, shown_name

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

T = TypeVar("T")

FORMATS = ("csv", "parquet")
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
ARROW_HINT = "pip install 'ames-regression-model[arrow]'"
#: Output column with the reasons a row was not priced ("" when priced).
ERRORS_COLUMN = "errors"


class BatchFileError(Exception):
    """A file cannot be scored as given; the message says which and why."""


class InputFileError(BatchFileError):
    """The input is missing, unreadable, malformed or lacks columns."""


class OutputFileError(BatchFileError):
    """The output cannot be written where asked."""


class ScoringSetupError(Exception):
    """Scoring cannot start here (a missing extra, an unreachable cluster)."""


class MissingDependencyError(ScoringSetupError, ImportError):
    """An optional dependency is needed; the message says how to install it."""


class Interrupted(Exception):  # noqa: N818 - it is not an error of the program
    """The run was stopped by a signal after ``rows`` rows (None: not known,
    as on Dask); nothing was kept."""

    def __init__(self, signum: int, rows: int | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.rows = signum, rows


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


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading and writing CSV and Parquet files needs pyarrow: {ARROW_HINT}"
        ) from exc


def file_format(name: str, explicit: str | None, *, role: str) -> str:
    """``explicit``, else the format the name's extension says."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise BatchFileError(f"unknown {role} format {explicit!r}: {' or '.join(FORMATS)}")
        return explicit
    if name == "-":
        return "csv"
    suffix = Path(name).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        error = InputFileError if role == "input" else OutputFileError
        raise error(
            f"cannot tell the format of {name!r} from its extension: use {known}, "
            f"or say it with --{role}-format {'|'.join(FORMATS)}"
        )
    return EXTENSIONS[suffix]


def input_columns(config: ModelConfig) -> dict[str, list[str]]:
    """Each model input and the column names that may carry it, preferred first
    (validation's own list: a Python-safe name, then Kaggle's raw one)."""
    return {rule.name: list(rule.sources) for rule in schema_for(config).rules}


def ignored_columns(columns: list[str], config: ModelConfig) -> list[IgnoredField]:
    """The columns that are not model inputs (nor the id column), each named
    with the input it is closest to: scoring ignores them, and says so."""
    schema = schema_for(config)
    return [
        IgnoredField(None, shown_name(column), schema.ignored_message(column, strict=False))
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
    numbers: dict[str, np.ndarray] = {}
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


def _numbers_or_text(text: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
    except pa.ArrowInvalid:
        pass
    # Some cell is not a number: decide for each distinct cell, with the same parser.
    encoded = pc.dictionary_encode(text)
    values: list[object] = []
    for cell in encoded.dictionary.to_pylist():
        try:
            values.append(pc.cast(pa.array([cell]), pa.float64())[0].as_py())
        except pa.ArrowInvalid:
            values.append(cell)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return np.array([*values, np.nan], dtype=object)[indices]  # type: ignore[no-any-return]


# -- scoring ----------------------------------------------------------------


def score_frame(
    frame: pd.DataFrame,
    price: Callable[[pd.DataFrame], PricedBatch],
    config: ModelConfig,
    row_numbers: Any,
) -> pd.DataFrame:
    """One output row per row of ``frame`` (same index): the ``Id`` (or
    ``row_numbers`` when there is no Id column), the price (NaN when not
    priced) and the reasons ("" when priced)."""
    import pandas as pd

    batch = price(frame)
    reasons = np.full(len(frame), "", dtype=object)
    for error in batch.errors:
        told = f"{error.field}: {error.message}"
        reasons[error.row] = f"{reasons[error.row]}; {told}" if reasons[error.row] else told
    ids = frame[config.id_column].array if config.id_column in frame.columns else row_numbers
    return pd.DataFrame(
        {
            config.id_column: ids,
            config.target: batch.prices,
            ERRORS_COLUMN: pd.array(reasons, dtype="str"),
        },
        index=frame.index,
    )


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
    progress: bool = False,
) -> Counts:
    """Price every row of ``source`` into ``target`` (paths, or ``-``).
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
    with _open_input(source, reading, chunk_rows) as reader:
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
        output = _open_output(
            target,
            writing,
            source,
            [config.id_column, config.target, ERRORS_COLUMN],
            reader.id_type(config.id_column),
        )
        bar = _progress_bar(reader, enabled=progress)
        try:
            with output as write, _signals_raise_interrupted():
                frames = (table_to_frame(table, config) for table in reader.chunks(used))

                def price(frame: pd.DataFrame) -> PricedBatch:
                    return model.price(frame, strict=strict)

                for frame in _read_ahead(frames):
                    rows = np.arange(counts.read, counts.read + len(frame))
                    scored = score_frame(frame, price, config, rows)
                    write(scored)
                    counts.read += len(frame)
                    counts.priced += int(scored[config.target].notna().sum())
                    _advance(bar, len(frame), counts.read)
                bar.total = counts.read  # the estimate, if any, is now a count
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT, counts.read) from None
        except Interrupted as stop:
            raise Interrupted(stop.signum, counts.read) from None
        finally:
            bar.close()
    return counts


# -- reading ----------------------------------------------------------------


class _Failed(NamedTuple):
    error: BaseException


_DONE = object()


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
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


class _Reader:
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
def _open_input(source: str, kind: str, chunk_rows: int) -> Iterator[_Reader]:
    if source == "-":
        yield _CsvReader("stdin", sys.stdin.buffer, chunk_rows, seekable=False)
        return
    path = Path(source)
    with contextlib.ExitStack() as stack:
        # Only opening is guarded here: errors of the run itself pass through.
        try:
            if kind == "csv":
                handle = stack.enter_context(path.open("rb"))
                reader: _Reader = _CsvReader(source, handle, chunk_rows, seekable=True)
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


class _CsvReader(_Reader):
    def __init__(self, name: str, handle: BinaryIO, chunk_rows: int, *, seekable: bool) -> None:
        self.name, self.handle, self.chunk_rows = name, handle, chunk_rows
        header = handle.readline()
        if not header.strip():
            raise InputFileError(f"{name} is empty: expected a header line naming the columns")
        try:
            self.columns = next(csv.reader([header.decode("utf-8-sig")]))
        except UnicodeDecodeError:
            raise InputFileError(
                f"{name} is not a CSV file (its first line is not UTF-8 text)"
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
        import pyarrow.csv as pa_csv

        bad_rows: list[Any] = []

        def refuse(row: Any) -> str:
            bad_rows.append(row)
            return "error"

        # Single-threaded parsing keeps each bad row's line number (a chunk is
        # parsed while the previous one is scored, so little is lost).
        reader = pa_csv.open_csv(
            self.stream,
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=1 << 20),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=refuse),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in self.columns},
                include_columns=columns or self.columns[:1],
                null_values=sorted(MISSING_CELLS),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        pending: list[pa.RecordBatch] = []
        held = 0
        try:
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= self.chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield table.slice(0, self.chunk_rows)
                    rest = table.slice(self.chunk_rows)
                    pending, held = rest.to_batches(), rest.num_rows
        except pa.ArrowInvalid as exc:
            raise InputFileError(self._explain(exc, bad_rows)) from None
        if held:
            yield pa.Table.from_batches(pending)

    def _explain(self, exc: Exception, bad_rows: list[Any]) -> str:
        if bad_rows:
            row = bad_rows[0]
            where = f"line {row.number}" if row.number is not None else "a line"
            text = row.text if len(row.text) <= 60 else row.text[:57] + "..."
            return (
                f"{self.name}, {where}: expected {row.expected_columns} fields, found "
                f"{row.actual_columns} (the file is truncated or malformed): {text!r}"
            )
        return f"{self.name} is not a readable CSV file: {exc}"


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


class _ParquetReader(_Reader):
    def __init__(self, path: Path, chunk_rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.name, self.chunk_rows = str(path), chunk_rows
        if path.is_dir():
            raise IsADirectoryError(path)
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
            return found
        return pa.int64()

    def chunks(self, columns: list[str]) -> Iterator[pa.Table]:
        import pyarrow as pa

        try:
            for batch in self.file.iter_batches(batch_size=self.chunk_rows, columns=columns):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as exc:
            raise InputFileError(f"{self.name} is not a readable Parquet file: {exc}") from None


# -- writing ----------------------------------------------------------------


@contextlib.contextmanager
def _open_output(
    target: str, kind: str, source: str, columns: list[str], id_type: pa.DataType
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function appending scored chunks to ``target``: written to a
    temporary file beside it, renamed over it only when the run completes."""
    if target == "-":
        stdout = _CsvAppender(sys.stdout, columns)
        yield stdout
        stdout.finish()
        sys.stdout.flush()
        return
    path = Path(target)
    if path.is_dir():
        raise OutputFileError(f"{target} is a directory: give a file name")
    if not path.parent.is_dir():
        raise OutputFileError(f"cannot write {target}: directory {path.parent} does not exist")
    if source != "-" and path.exists() and path.resolve() == Path(source).resolve():
        raise OutputFileError(f"{target} is also the input: write the prices elsewhere")
    try:
        descriptor, partial = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        )
    except PermissionError:
        raise OutputFileError(f"cannot write in {path.parent}: permission denied") from None
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            appender: _CsvAppender | _ParquetAppender = (
                _CsvAppender(handle, columns)
                if kind == "csv"
                else _ParquetAppender(handle.buffer, columns, id_type)  # type: ignore[arg-type]
            )
            yield appender
            appender.finish()
        os.chmod(partial, 0o666 & ~_umask())
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def write_scored(path: Path, kind: str, scored: pd.DataFrame, id_type: pa.DataType) -> None:
    """Write one scored frame as a whole file, as the streamed output is written
    (a Dask partition's part file)."""
    columns = [str(c) for c in scored.columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        appender: _CsvAppender | _ParquetAppender = (
            _CsvAppender(handle, columns)
            if kind == "csv"
            else _ParquetAppender(handle.buffer, columns, id_type)  # type: ignore[arg-type]
        )
        appender(scored)
        appender.finish()


def _umask() -> int:
    # Read by setting it (there is no other way); nothing else runs meanwhile.
    current = os.umask(0)
    os.umask(current)
    return current


class _CsvAppender:
    """CSV rendered by Arrow: a value is quoted only when it holds a comma,
    a quote or a line break (pyarrow's own writer quotes every text value)."""

    def __init__(self, handle: IO[str], columns: list[str]) -> None:
        self.handle = handle
        handle.write(",".join(_csv_cell(name) for name in columns) + "\n")

    def __call__(self, scored: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        identifier, price, reason = scored.columns
        ids = pa.array(scored[identifier].array, from_pandas=True)
        prices = scored[price].to_numpy(dtype="float64")
        cells = [
            _quoted(ids.cast(pa.string()).fill_null("")),
            pc.cast(pa.array(prices, mask=np.isnan(prices)), pa.string()).fill_null(""),
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
    """Prices are null where not priced, reasons null where none."""

    def __init__(self, handle: BinaryIO, columns: list[str], id_type: pa.DataType) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.columns = columns
        self.schema = pa.schema(
            [(columns[0], id_type), (columns[1], pa.float64()), (columns[2], pa.string())]
        )
        self.writer = pq.ParquetWriter(handle, self.schema)

    def __call__(self, scored: pd.DataFrame) -> None:
        import pyarrow as pa

        identifier, price, reason = self.columns
        prices = scored[price].to_numpy(dtype="float64")
        reasons = scored[reason].to_numpy(dtype=object)
        ids = pa.array(scored[identifier].array, from_pandas=True)
        self.writer.write_table(
            pa.table(
                [
                    ids.cast(self.schema.field(0).type),
                    pa.array(prices, mask=np.isnan(prices)),
                    pa.array(reasons, type=pa.string(), mask=reasons == ""),
                ],
                schema=self.schema,
            )
        )

    def finish(self) -> None:
        self.writer.close()


# -- progress and signals ---------------------------------------------------


def _progress_bar(reader: _Reader, *, enabled: bool) -> Any:
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
def _signals_raise_interrupted() -> Iterator[None]:
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
