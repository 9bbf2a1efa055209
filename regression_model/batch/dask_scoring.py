"""Score on Dask: the same scorer as ``regression-model predict``, partition by
partition, on a cluster on this machine or an existing one.

    predict_dask(ddf)   # a Dask DataFrame of Id, SalePrice, its ranges, errors; same partitions

Each partition goes through exactly the steps of a streamed chunk
(:func:`regression_model.batch.columns.numbers_from_text`, then
:func:`regression_model.batch.score_frame` with
:meth:`regression_model.scoring.model.Model.price`), and a row's price never
depends on its batch, so the prices are those of the in-process path to the
last bit.

The model is loaded (and verified against its manifest) once, in the client
process, and shipped to every worker once, as plain data (the tables and the
config) in a worker plugin: workers need this package installed at the same
version, not the artifact files, and partitions carry no model. Needs the
``[dask]`` extra. (This module is not named ``dask`` so that it can never be
mistaken for the library itself.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regression_model.batch.columns import (
    RangeColumns,
    check_columns,
    ignored_columns,
    numbers_from_text,
    output_columns,
    range_columns,
)
from regression_model.batch.errors import (
    BatchFileError,
    InputFileError,
    Interrupted,
    MissingDependencyError,
    OutputFileError,
    ScoringSetupError,
)
from regression_model.batch.formats import EXTENSIONS, FORMATS
from regression_model.batch.run import Counts, score_frame, sigterm_raises_interrupted
from regression_model.batch.writers import write_scored
from regression_model.config.core import Config, get_config
from regression_model.scoring.model import CompiledModel, load_model
from regression_model.scoring.tables import ModelTables
from regression_model.version import __version__

DASK_HINT = "pip install 'ames-regression-model[dask]'"

try:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, WorkerPlugin, get_client
except ImportError as missing:  # pragma: no cover - exercised without the extra
    raise MissingDependencyError(f"scoring on Dask needs Dask: {DASK_HINT}") from missing

#: The models this process was given, by token (a worker holds the ones
#: shipped to it; the client the ones it loaded).
_MODELS: dict[str, CompiledModel] = {}


class ClusterError(ScoringSetupError):
    """The Dask cluster cannot be reached or started."""


class ShipModel(WorkerPlugin):  # type: ignore[misc]
    """Gives each worker the model once, as plain data: the compiled tables
    (their JSON layout) and the config. Workers that join later get it too."""

    def __init__(
        self, token: str, tables: dict[str, Any], config: Config, manifest: dict[str, Any]
    ) -> None:
        self.name = f"regression-model-{token}"
        self.token, self.tables, self.config, self.manifest = token, tables, config, manifest
        self.version = __version__

    def setup(self, worker: Any) -> None:
        if self.version != __version__:
            raise RuntimeError(
                f"this worker has ames-regression-model {__version__}, the client "
                f"{self.version}: install the same version on every worker"
            )
        tables = ModelTables.from_dict(self.tables)
        _MODELS[self.token] = CompiledModel(self.config, tables, self.manifest)


def ship_model(model: CompiledModel, client: Client | None) -> str:
    """Make ``model`` available to ``client``'s workers (and to this process,
    for Dask's local schedulers); returns the token partitions look it up by."""
    tables = model.tables.to_dict()
    digest = hashlib.sha256(
        json.dumps([tables, model.config.model.model_dump()], sort_keys=True, default=str).encode()
    )
    token = digest.hexdigest()[:16]
    _MODELS[token] = model
    if client is not None:
        client.register_plugin(ShipModel(token, tables, model.config, model.manifest))
    return token


def _current_client() -> Client | None:
    try:
        return get_client()
    except ValueError:
        return None


def _score_partition(
    frame: pd.DataFrame,
    token: str,
    offsets: list[int] | None,
    *,
    strict: bool,
    ranges: tuple[RangeColumns, ...],
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    model = _MODELS.get(token)
    if model is None:
        raise RuntimeError(
            "this process was not given the model: score through predict_dask(), which "
            "ships it to the workers"
        )
    config = model.config.model
    frame = numbers_from_text(frame, config)
    if offsets is not None and partition_info is not None:
        start = offsets[partition_info["number"]]
        row_numbers: Any = np.arange(start, start + len(frame))
    else:
        row_numbers = frame.index.to_numpy()
    return score_frame(
        frame, lambda data: model.price(data, strict=strict), config, row_numbers, ranges=ranges
    )


class UnknownColumnsWarning(UserWarning):
    """The Dask DataFrame has columns that are not model inputs: not read."""


def predict_dask(
    ddf: dd.DataFrame,
    *,
    client: Client | None = None,
    allow_missing_columns: bool = False,
    row_offsets: list[int] | None = None,
    strict: bool = False,
    coverages: Sequence[float] | None = None,
) -> dd.DataFrame:
    """Price every row of ``ddf`` (Kaggle columns): a Dask DataFrame with the
    same partitions and index, of ``Id`` (the index's values when ``ddf`` has
    no Id column, or row numbers from ``row_offsets``, each partition's first),
    the price and its range at each of ``coverages`` (None: each the model
    has), as ``SalePrice_low_80``, ``SalePrice_high_80``, ... (NaN when not
    priced), and ``errors`` ("" when priced).

    The model is shipped to ``client``'s workers (default: the current
    client, if any) once; without a client, Dask's local scheduler uses it
    in this process. Columns that are not model inputs are not read, and each
    is named in an :class:`UnknownColumnsWarning`; with ``strict`` they are an
    error of every row.
    """
    config = get_config().model
    if not strict:
        for ignored in ignored_columns([str(c) for c in ddf.columns], config):
            warnings.warn(
                f"column {ignored.field!r}: {ignored.message}", UnknownColumnsWarning, stacklevel=2
            )
    used = check_columns(
        [str(c) for c in ddf.columns],
        config,
        name="the Dask DataFrame",
        allow_missing=allow_missing_columns,
        strict=strict,
    )
    model = load_model()
    ranges = tuple(range_columns(model, config, coverages))
    token = ship_model(model, client or _current_client())
    if config.id_column in ddf.columns:
        id_dtype: Any = ddf[config.id_column].dtype
    else:
        id_dtype = "int64" if row_offsets is not None else ddf.index.dtype
    identifier, *prices, reasons = output_columns(config, ranges)
    meta = pd.DataFrame(
        {
            identifier: pd.Series(dtype=id_dtype),
            **{name: pd.Series(dtype="float64") for name in prices},
            reasons: pd.Series(dtype="str"),
        }
    )
    return ddf[used].map_partitions(
        _score_partition, token, row_offsets, strict=strict, ranges=ranges, meta=meta
    )


# -- the command line's --dask ------------------------------------------------


def score_files(
    source: str,
    target: str,
    *,
    address: str,
    config: Any,
    input_format: str | None = None,
    output_format: str | None = None,
    allow_missing_columns: bool = False,
    strict: bool = False,
    coverages: Sequence[float] | None = None,
    progress: bool = False,
) -> Counts:
    """Read ``source`` (a file, directory or glob of CSV or Parquet), price it
    on the cluster at ``address`` ("local": one started on this machine) and
    write a directory of CSV or Parquet parts to ``target`` (the columns of
    :func:`predict_dask`)."""
    reading = input_format or _format_of_input(source)
    writing = output_format or EXTENSIONS.get(Path(target).suffix.lower(), reading)
    if "-" in (source, target):
        raise BatchFileError("--dask reads and writes files, directories or globs, not - (stdio)")
    for kind in (reading, writing):
        if kind not in FORMATS:
            raise BatchFileError(f"unknown format {kind!r}: {' or '.join(FORMATS)}")
    destination = Path(target)
    if not destination.parent.is_dir():
        raise OutputFileError(
            f"cannot write {target}: directory {destination.parent} does not exist"
        )
    with _cluster(address) as client:
        ddf = _read(source, reading)
        id_column = config.id_column
        offsets = None
        if id_column not in ddf.columns:
            lengths = _computed(client, ddf.map_partitions(len))
            offsets = [0, *np.cumsum(list(lengths)).tolist()]
        with warnings.catch_warnings():  # named by the command itself, from the counts
            warnings.simplefilter("ignore", UnknownColumnsWarning)
            scored = predict_dask(
                ddf,
                client=client,
                allow_missing_columns=allow_missing_columns,
                row_offsets=offsets,
                strict=strict,
                coverages=coverages,
            )
        partial = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}."))
        try:
            with sigterm_raises_interrupted():
                counts = _write(scored, partial, kind=writing, progress=progress, client=client)
            if not strict:
                counts.ignored = ignored_columns([str(c) for c in ddf.columns], config)
            _replace_directory(partial, destination)
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT, None) from None
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return counts


@contextlib.contextmanager
def _cluster(address: str) -> Iterator[Client]:
    with contextlib.ExitStack() as stack:
        try:
            if address == "local":
                # Sized to the machine (a worker process per core or so); loopback
                # only. Workers' own logs are silenced: a task's failure (a
                # malformed file) reaches this process as an exception, reported once.
                cluster = stack.enter_context(
                    LocalCluster(
                        host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL
                    )
                )
                client = stack.enter_context(Client(cluster))
            else:
                client = stack.enter_context(Client(address, timeout="20s"))
        except OSError as exc:
            raise ClusterError(f"cannot reach the Dask cluster at {address}: {exc}") from None
        yield client


def _computed(client: Client, collection: Any, *, progress: bool = False) -> Any:
    """``collection`` computed on the cluster; a file that cannot be read
    (malformed, vanished) is a :class:`BatchFileError`."""
    try:
        future = client.compute(collection)
        if progress:
            from distributed import progress as show_progress

            show_progress(future)
        return future.result()
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFileError(f"cannot read the input: {exc}") from None
    except OSError as exc:
        raise BatchFileError(f"reading or writing failed: {exc}") from None


def _format_of_input(source: str) -> str:
    path = Path(source)
    if path.is_dir():
        found = {
            EXTENSIONS[p.suffix.lower()] for p in path.iterdir() if p.suffix.lower() in EXTENSIONS
        }
        if len(found) == 1:
            return found.pop()
        raise InputFileError(
            f"{source}: cannot tell whether to read CSV or Parquet files from it: "
            "say it with --input-format"
        )
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise InputFileError(
            f"cannot tell the format of {source!r} from its extension: use "
            f"{', '.join(EXTENSIONS)}, or say it with --input-format"
        )
    return kind


def _read(source: str, kind: str) -> dd.DataFrame:
    try:
        if kind == "csv":
            if Path(source).is_dir():
                source = str(Path(source) / "*.csv")
            # Text cells (read one at a time afterwards, as in the streamed path),
            # parsed by pyarrow, which refuses rows with the wrong number of
            # fields; files in name order.
            return dd.read_csv(source, dtype=str, blocksize="32MB", engine="pyarrow")
        return dd.read_parquet(source)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise InputFileError(f"cannot read {source}: {exc}") from None


def _write_partition(
    frame: pd.DataFrame,
    directory: str,
    kind: str,
    id_type: Any,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Write one scored partition as ``part-NNNNN`` (names sort in row order),
    exactly as the streamed path writes; return its counts."""
    number = partition_info["number"] if partition_info else 0
    path = Path(directory) / f"part-{number:05d}.{kind}"
    write_scored(path, kind, frame, id_type)
    priced = int(frame.iloc[:, 1].notna().sum())
    return pd.DataFrame({"read": [len(frame)], "priced": [priced]})


def _write(
    scored: dd.DataFrame, directory: Path, *, kind: str, progress: bool, client: Client
) -> Counts:
    import pyarrow as pa

    id_type = pa.array(scored._meta.iloc[:, 0]).type
    meta = pd.DataFrame({"read": pd.Series(dtype="int64"), "priced": pd.Series(dtype="int64")})
    tallies = scored.map_partitions(_write_partition, str(directory), kind, id_type, meta=meta)
    totals = _computed(client, tallies.sum(), progress=progress)
    return Counts(read=int(totals["read"]), priced=int(totals["priced"]))


def _replace_directory(partial: Path, destination: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise OutputFileError(f"{destination} exists and is not a directory")
    old = None
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
        os.replace(destination, old)
    os.replace(partial, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["ShipModel", "predict_dask", "score_files", "ship_model"]
