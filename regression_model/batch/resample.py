"""Make large input files by resampling the bundled houses, for tests and
benchmarks of scoring at scale.

    python -m regression_model.batch.resample --rows 1000000 --output /tmp/houses.csv
    python -m regression_model.batch.resample --rows 100000 --bad-share 0.01 \\
        --seed 3 --output /tmp/houses.parquet

Houses are drawn with replacement from the bundled test.csv (every one of its
1459 houses is priced) by a seeded generator, block by block, so any number
of rows is made in bounded memory and the same arguments give the same file.
Each row gets a fresh ``Id`` (1, 2, ...), so Ids are unique. With
``--bad-share``, that share of rows gets one impossible value (an area below
zero, an unknown code, ...), which scoring must refuse with its reason.
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regression_model.config.core import get_config
from regression_model.data import load_dataset

if TYPE_CHECKING:
    import pandas as pd

#: Rows drawn per block: the file's content does not depend on how it is written.
BLOCK_ROWS = 65_536

#: One impossible value per bad row, drawn from these (field, value) pairs.
#: The last is text in a numerical field, which only CSV can hold (a Parquet
#: column has one type): Parquet files get ``NUMBER_INSTEAD_OF_TEXT`` there,
#: so both formats have the same bad rows.
BAD_VALUES: tuple[tuple[str, object], ...] = (
    ("GrLivArea", -5),
    ("OverallQual", 11),
    ("YearBuilt", 1500),
    ("KitchenQual", "Excellent"),
    ("MSSubClass", 999),
    ("LotArea", "large"),
)
NUMBER_INSTEAD_OF_TEXT: tuple[str, object] = ("LotArea", -1)


def resampled_houses(
    rows: int, *, seed: int = 0, bad_share: float = 0.0, text_in_numbers: bool = True
) -> Iterator[pd.DataFrame]:
    """``rows`` resampled houses, in blocks of :data:`BLOCK_ROWS` rows (the
    last one shorter), each indexed by its row numbers in the whole file."""
    import pandas as pd

    if rows < 0 or not 0.0 <= bad_share <= 1.0:
        raise ValueError("rows must be >= 0 and bad_share between 0 and 1")
    config = get_config()
    source = load_dataset(config.app.test_data_file)
    id_column = config.model.id_column
    bad_values = BAD_VALUES if text_in_numbers else (*BAD_VALUES[:-1], NUMBER_INSTEAD_OF_TEXT)
    generator = np.random.default_rng(seed)
    for start in range(0, rows, BLOCK_ROWS):
        count = min(BLOCK_ROWS, rows - start)
        picks = generator.integers(0, len(source), size=count)
        block = source.iloc[picks].reset_index(drop=True)
        block.index = pd.RangeIndex(start, start + count)
        block[id_column] = np.arange(start + 1, start + count + 1)
        bad_rows = np.flatnonzero(generator.random(count) < bad_share)
        kinds = generator.integers(0, len(bad_values), size=len(bad_rows))
        for kind in np.unique(kinds):
            field, value = bad_values[kind]
            where = block.index[bad_rows[kinds == kind]]
            if isinstance(value, str) and block[field].dtype.kind in "iuf":
                block[field] = block[field].astype(object)
            block.loc[where, field] = value
        yield block


def write_houses(
    path: Path,
    rows: int,
    *,
    seed: int = 0,
    bad_share: float = 0.0,
    file_format: str | None = None,
) -> Path:
    """Write ``rows`` resampled houses to ``path`` (CSV, or Parquet when the
    name ends in .parquet/.pq or ``file_format="parquet"``; Parquet needs pyarrow)."""
    kind = file_format or ("parquet" if path.suffix in (".parquet", ".pq") else "csv")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    blocks = resampled_houses(rows, seed=seed, bad_share=bad_share, text_in_numbers=kind == "csv")
    try:
        if kind == "csv":
            _write_csv(partial, blocks)
        elif kind == "parquet":
            _write_parquet(partial, blocks)
        else:
            raise ValueError(f"unknown file format {kind!r}: csv or parquet")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_csv(path: Path, blocks: Iterator[pd.DataFrame]) -> None:
    with path.open("w", newline="") as handle:
        header = True
        for block in blocks:
            block.to_csv(handle, index=False, header=header, lineterminator="\n")
            header = False
        if header:  # no rows: the header alone
            handle.write(",".join(load_dataset(get_config().app.test_data_file).columns) + "\n")


def _write_parquet(path: Path, blocks: Iterator[pd.DataFrame]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: Any = None
    try:
        for block in blocks:
            table = pa.Table.from_pandas(block, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is None:
            empty = load_dataset(get_config().app.test_data_file).head(0)
            pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), path)
    finally:
        if writer is not None:
            writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m regression_model.batch.resample",
        description="Write a large input file by resampling the bundled test.csv houses.",
    )
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True, help=".csv, .parquet or .pq")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bad-share", type=float, default=0.0, help="share of rows given one impossible value"
    )
    parser.add_argument("--format", choices=("csv", "parquet"), default=None)
    args = parser.parse_args(argv)
    write_houses(
        args.output, args.rows, seed=args.seed, bad_share=args.bad_share, file_format=args.format
    )
    print(f"wrote {args.rows:,} houses to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
